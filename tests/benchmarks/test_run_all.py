"""run_all.py's discovery, --quick detection, --only and report writing, on stub scripts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

RUN_ALL = Path(__file__).resolve().parents[2] / "benchmarks" / "run_all.py"


@pytest.fixture(scope="module")
def run_all():
    spec = importlib.util.spec_from_file_location("bench_run_all", RUN_ALL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


@pytest.fixture
def stubs(tmp_path) -> Path:
    (tmp_path / "bench_fast.py").write_text(
        "import argparse\n"
        "p = argparse.ArgumentParser()\n"
        "p.add_argument('--quick', action='store_true')\n"
        "a = p.parse_args()\n"
        "print('| x | ratio |')\n"
        "print('quick' if a.quick else 'full', 'ratio 1.00x')\n")
    (tmp_path / "bench_broken.py").write_text(
        "import sys\nprint('partial table')\nprint('boom', file=sys.stderr)\nsys.exit(3)\n")
    (tmp_path / "helper.py").write_text("raise SystemExit('not a benchmark')\n")
    return tmp_path


def test_discover_select_and_quick_flag(run_all, stubs):
    scripts = run_all.discover(stubs)
    assert [p.name for p in scripts] == ["bench_broken.py", "bench_fast.py"]
    assert [p.name for p in run_all.select(scripts, ["fast"])] == ["bench_fast.py"]
    assert [p.name for p in run_all.select(scripts, ["bench_fast.py"])] == ["bench_fast.py"]
    with pytest.raises(SystemExit, match="no such benchmark"):
        run_all.select(scripts, ["missing"])
    assert run_all.supports_quick(stubs / "bench_fast.py")
    assert not run_all.supports_quick(stubs / "bench_broken.py")
    assert run_all.command_for(stubs / "bench_broken.py", "py", quick=True) == ["py", str(stubs / "bench_broken.py")]


def test_report_holds_each_output_exit_code_and_header(run_all, stubs, tmp_path):
    out = tmp_path / "out" / "REPORT.md"
    code = run_all.main(["--quick", "--bench-dir", str(stubs), "--out", str(out), "--python", sys.executable])
    assert code == 1  # bench_broken exits 3
    text = out.read_text()
    assert text.startswith("# Benchmark report")
    assert "- CPU: " in text and "torch" in text and "- CUDA device: " in text
    assert "| bench_fast.py | 0 |" in text and "| bench_broken.py | 3 |" in text
    assert "quick ratio 1.00x" in text  # --quick reached the script that accepts it
    assert "partial table" in text and "boom" in text
    assert "helper.py" not in text


def test_only_runs_a_subset_and_passes(run_all, stubs, tmp_path):
    out = tmp_path / "r.md"
    assert run_all.main(["--only", "fast", "--bench-dir", str(stubs), "--out", str(out)]) == 0
    text = out.read_text()
    assert "full ratio 1.00x" in text and "bench_broken" not in text
