"""Where the project's shared reference files are (``shared/reference`` beside the checkout).

They are not in git (the golden fixtures alone are 18 MB). Looked up in order:
``$DMM_SHARED_REFERENCE``, ``<checkout>/../shared/reference``, ``/work/shared/reference`` (the
project machine, for a clone made elsewhere). Tests that need a missing file skip, naming it.
"""

from __future__ import annotations

import os
from pathlib import Path

_CANDIDATES = [
    *([Path(os.environ["DMM_SHARED_REFERENCE"])] if os.environ.get("DMM_SHARED_REFERENCE") else []),
    Path(__file__).resolve().parents[2] / "shared" / "reference",
    Path("/work/shared/reference"),
]


def reference_path(name: str) -> Path | None:
    """``name`` (a file or folder under ``shared/reference``) in the first place that has it, else None."""
    for root in _CANDIDATES:
        if (root / name).exists():
            return root / name
    return None


def missing_reason(name: str) -> str:
    """The skip reason for a missing ``name``: what was looked for, and where."""
    return (f"shared reference {name!r} not found in {', '.join(str(c) for c in _CANDIDATES)}; "
            "set DMM_SHARED_REFERENCE to the folder holding it")
