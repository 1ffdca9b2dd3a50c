"""Import a command-line tool of ``src/tools`` (they are scripts, not package modules)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TOOLS = Path(__file__).resolve().parents[2] / "src" / "tools"


def tool_path(name: str) -> Path:
    return TOOLS / f"{name}.py"


def load_tool(name: str) -> ModuleType:
    """The module of ``src/tools/<name>.py``, registered in ``sys.modules`` as ``<name>``."""
    spec = importlib.util.spec_from_file_location(name, tool_path(name))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
