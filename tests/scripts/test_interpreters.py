"""Every shell script runs under ``sh`` (the README's interpreter for them) and ``bash`` alike:
POSIX sh, executable, stopping at the first failing step; one variable, DMM_PYTHON, names the
interpreter."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCED = {"lib.sh", "common.sh"}  # sourced by the others, never run
SCRIPTS = sorted(p for p in (REPO / "scripts").rglob("*.sh") if p.name not in SOURCED)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_posix_executable_and_stops_at_the_first_failure(script: Path):
    text = script.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert os.access(script, os.X_OK)
    assert "\nset -eu\n" in text
    for shell in ("sh", "bash"):
        done = subprocess.run([shutil.which(shell) or shell, "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, (shell, done.stderr)
    assert "pipefail" not in text and "BASH_SOURCE" not in text and "[[" not in text


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_entry_scripts_run_under_either_shell_with_dmm_python(shell: str):
    env = {**os.environ, "DMM_PYTHON": sys.executable}
    done = subprocess.run([shell, str(REPO / "scripts/run_synthetic.sh"), "--help"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0 and "python -m dmm.pipeline" in done.stdout, done.stderr
    done = subprocess.run([shell, str(REPO / "scripts/test.sh"), "--version"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0 and "pytest" in (done.stdout + done.stderr), done.stderr
