"""scripts/setup_env.sh installs once per content of requirements.txt and setup.py, not per mtime."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAKE_PYTHON = """#!/bin/sh
echo "$*" >> "$(dirname "$0")/../../calls.log"
"""


def fake_repo(tmp: Path) -> Path:
    """A copy of the script beside requirements.txt and setup.py, and a .venv whose python only
    logs what it is asked to do (nothing is installed)."""
    (tmp / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "setup_env.sh", tmp / "scripts" / "setup_env.sh")
    (tmp / "requirements.txt").write_text("torch==2.14.1\n")
    (tmp / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    python = tmp / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return tmp


def installs(repo: Path) -> int:
    """Run setup_env.sh; return how many `pip install -r requirements.txt` it ran so far."""
    done = subprocess.run(["bash", str(repo / "scripts" / "setup_env.sh")], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHON": "false"})
    assert done.returncode == 0, done.stderr
    log = repo / "calls.log"
    return log.read_text().count("install -q -r requirements.txt") if log.exists() else 0


def test_reinstalls_only_when_the_contents_change(tmp_path: Path):
    repo = fake_repo(tmp_path)
    assert installs(repo) == 1
    assert installs(repo) == 1
    stamp = repo / ".venv" / ".dmm-installed"
    os.utime(stamp, (1_000_000, 1_000_000))  # a fresh clone: requirements.txt newer than the stamp
    assert installs(repo) == 1
    (repo / "requirements.txt").write_text("torch==2.14.1\nnumpy\n")
    assert installs(repo) == 2
    (repo / "setup.py").write_text("from setuptools import setup\nsetup(name='dmm')\n")
    assert installs(repo) == 3
    assert installs(repo) == 3
