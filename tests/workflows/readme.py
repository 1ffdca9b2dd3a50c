"""The README's commands, taken from its code blocks, run as written in a scratch copy of the
repository layout (``scripts/`` and ``src/`` linked, ``datasets/``, ``experiments/`` and ``data/``
its own): the same script and arguments, plus only the environment variables and ``KEY VALUE``
overrides the README or the script's header documents."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SH = shutil.which("sh") or "/bin/sh"
_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")


def readme_commands(readme: Path = REPO / "README.md") -> list[list[str]]:
    """Every command line of the README's ``bash`` blocks, continuation lines joined, comments
    dropped, split into words."""
    commands, block, line = [], False, ""
    for raw in readme.read_text().splitlines():
        if raw.startswith("```"):
            block = raw.strip() == "```bash"
            continue
        if not block:
            continue
        line += raw.rstrip()
        if line.endswith("\\"):
            line = line[:-1] + " "
            continue
        words = shlex.split(line, comments=True)
        line = ""
        if words:
            commands.append(words)
    return commands


def readme_command(*start: str, containing: str = "") -> list[str]:
    """The one README command whose words begin with ``start`` and that contains ``containing``."""
    found = [words for words in readme_commands()
             if words[: len(start)] == list(start) and containing in " ".join(words)]
    assert len(found) == 1, (start, containing, found)
    return found[0]


@dataclass
class Workspace:
    """A repository layout at ``root`` whose commands run with this interpreter and no GPU."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, root: Path) -> "Workspace":
        root.mkdir(parents=True)
        for name in ("scripts", "src"):
            (root / name).symlink_to(REPO / name)
        env = {k: v for k, v in os.environ.items() if k not in ("DRY_RUN", "NGPUS", "DATA_ROOT", "CHECKPOINT",
                                                                "OUTPUT_DIR", "INIT_CKPT", "MODEL", "SPLIT")}
        src = str(REPO / "src")
        env.update(DMM_PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="",
                   PYTHONPATH=os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])]))
        return cls(root, env)

    def run(self, words: list[str], *extra: str, ok: bool = True, **env: str) -> subprocess.CompletedProcess:
        """Run a README command (``python`` is this interpreter; leading ``VAR=value`` words, then
        ``env``, set variables) with ``extra`` words appended; check its exit status."""
        variables = dict(self.env)
        while words and _ASSIGNMENT.match(words[0]):
            key, _, value = words[0].partition("=")
            variables[key] = value
            words = words[1:]
        variables.update(env)
        argv = [sys.executable if w == "python" and i == 0 else w for i, w in enumerate(words)]
        if argv[0] == "sh":
            argv[0] = SH
        done = subprocess.run([*argv, *extra], cwd=self.root, env=variables, capture_output=True, text=True,
                              timeout=1800)
        print(f"$ {' '.join(words + list(extra))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        if ok:
            assert done.returncode == 0, f"{' '.join(words)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        return done
