"""``--help`` of every command: found by walking the sources (a module of ``src/dmm`` with an
``if __name__ == "__main__":`` block, a package's ``__main__.py``, every ``src/tools/*.py``), so
a new command is covered without being listed here.

Each command's parser is caught where its ``main`` parses ``--help``; its ``prog`` must be what a
user types, every option must say what it does, a required option shows no default, an option
with a value shows its default once (or says it is deprecated), and ``--debug`` is listed.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
TOOLS = SRC / "tools"


def _has_main_block(path: Path) -> bool:
    """Whether the file runs something under a top-level ``if __name__ == "__main__":``."""
    for node in ast.parse(path.read_text()).body:
        test = node.test if isinstance(node, ast.If) else None
        if isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__" \
                and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators):
            return True
    return False


def command_modules() -> list[str]:
    """``dmm.x.y`` of every runnable module (``dmm.x`` for ``dmm/x/__main__.py``)."""
    found = []
    for path in sorted((SRC / "dmm").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if path.name == "__main__.py":
            found.append(".".join(parts[:-1]))
        elif _has_main_block(path):
            found.append(".".join(parts))
    return found


def commands() -> list[tuple[str, str]]:
    """(prog a user types, how to load it) of every command."""
    found = [(f"python -m {m}", m) for m in command_modules()]
    found += [(f"python src/tools/{p.name}", str(p)) for p in sorted(TOOLS.glob("*.py"))]
    return found


def _load(target: str):
    if target.endswith(".py"):
        spec = importlib.util.spec_from_file_location(Path(target).stem, target)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module
    module = importlib.import_module(target)
    if hasattr(module, "main"):
        return module
    return importlib.import_module(f"{target}.__main__")


class _Caught(Exception):
    pass


def parser_of(target: str, monkeypatch) -> argparse.ArgumentParser:
    """The parser the command's ``main`` builds, caught when it parses."""
    module = _load(target)
    caught: list[argparse.ArgumentParser] = []

    def catch(self, args=None, namespace=None):
        caught.append(self)
        raise _Caught

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", catch)
    with pytest.raises(_Caught):
        module.main(["--help"])
    return caught[0]


def _help_line(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = parser._get_formatter()
    text = formatter._get_help_string(action)
    return formatter._expand_help(action) if text else ""


def test_commands_are_discovered():
    progs = {prog for prog, _ in commands()}
    assert {"python -m dmm.train", "python -m dmm.test", "python -m dmm.metrics", "python -m dmm.segment",
            "python -m dmm.proposals.extract", "python src/tools/make_splits.py"} <= progs
    assert "python -m dmm.cli" not in progs  # its docstring shows the block, it runs nothing


@pytest.mark.parametrize("prog, target", commands(), ids=[p for p, _ in commands()])
def test_help_of_every_command(prog, target, monkeypatch):
    parser = parser_of(target, monkeypatch)
    assert parser.prog == prog
    options = {s for a in parser._actions for s in a.option_strings}
    assert "--debug" in options
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        line = _help_line(parser, action)
        assert line.strip(), f"{prog} {name}: no help text"
        assert line.count("(default") <= 1, f"{prog} {name}: default shown twice: {line}"
        one_of_required = any(g.required and action in g._group_actions for g in parser._mutually_exclusive_groups)
        if (action.required or one_of_required) and action.option_strings:
            assert "(default" not in line, f"{prog} {name} is required but shows a default: {line}"
        elif action.option_strings and action.nargs != 0:
            assert "default" in line or "deprecated" in line, f"{prog} {name}: no default shown: {line}"


def test_help_runs_as_a_user_types_it():
    """One real ``--help`` end to end (the others are caught in-process above)."""
    done = subprocess.run([sys.executable, "-m", "dmm.train", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m dmm.train")
    for name in ("train", "train_r101", "online", "synthetic"):
        assert name in done.stdout
    assert "(default: train)" in done.stdout and "--debug" in done.stdout


def test_metrics_help_states_its_protocol_default(monkeypatch):
    parser = parser_of("dmm.metrics", monkeypatch)
    protocol = next(a for a in parser._actions if "--protocol" in a.option_strings)
    assert protocol.default == "auto" and "(default: auto)" in _help_line(parser, protocol)
    assert "The default, auto," in parser.description
