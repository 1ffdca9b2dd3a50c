"""The modules of ``src/dmm`` import each other without a cycle, counting every import statement
(a function's lazy import too; not those under ``if TYPE_CHECKING:``), and every module imports."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted((SRC / "dmm").rglob("*.py")) if p.name != "__main__.py"}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    return skipped


def imports_of(name: str, path: Path) -> set[str]:
    """The project modules ``name`` imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    tree = ast.parse(path.read_text())
    skipped = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_in_dmm():
    graph = {name: imports_of(name, path) for name, path in MODULES.items()}
    assert "dmm.metrics.inputs" in graph["dmm.metrics.evaluate"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_metrics_protocols_import_neither_each_other_nor_more_than_the_leaf():
    evaluate = imports_of("dmm.metrics.evaluate", MODULES["dmm.metrics.evaluate"])
    dmm2019 = imports_of("dmm.metrics.dmm2019", MODULES["dmm.metrics.dmm2019"])
    assert "dmm.metrics.dmm2019" not in evaluate and "dmm.metrics.evaluate" not in dmm2019
    assert imports_of("dmm.metrics.inputs", MODULES["dmm.metrics.inputs"]) <= {"dmm.errors"}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_imports(name):
    importlib.import_module(name)


def test_the_modules_the_shell_scripts_checks_read_load_without_torch():
    """``scripts/lib.sh`` reads the config, the entry points' options, the split paths and run
    folders before it launches anything, several times per script: without torch (seconds to
    import) a dry run's checks take a fraction of a second."""
    code = ("import sys; import dmm.train, dmm.test, dmm.data.splits, dmm.checkpoint_names, dmm.config; "
            "print([m for m in ('torch', 'torchvision', 'numpy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]"
