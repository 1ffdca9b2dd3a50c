"""Checkpoint folder names, ``epoXX_iterXXXXX``; no torch, so that the shell scripts' checks can
read run folders quickly (``scripts/lib.sh``)."""

from __future__ import annotations

import re

_NAME = re.compile(r"^epo(\d+)_iter(\d+)$")


def checkpoint_name(epoch: int, iteration: int) -> str:
    """``epoXX_iterXXXXX``: written during epoch ``epoch`` (0-based) after ``iteration`` steps in all."""
    return f"epo{epoch:02d}_iter{iteration:05d}"


def parse_name(name: str) -> tuple[int, int] | None:
    """(epoch, iteration) of a checkpoint folder name, or None."""
    match = _NAME.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None
