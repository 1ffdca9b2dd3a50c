"""``benchmarks/gpu_check.sh``: its budget, its dependency check (a missing module named, wheels
from a local folder), its report writer when parts fail, and (slow) the whole smoke run."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
PARTS = ("env", "tests", "golden", "model", "engine", "matching", "amp", "ddp")

#: a sitecustomize that hides one module's installed copy, as an interpreter without it would
HIDE = """
import importlib.abc, importlib.machinery, sys
HIDDEN, WHERE = {name!r}, {where!r}

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == HIDDEN:
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is not None and (spec.origin or "").startswith(WHERE):
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Hide())
"""


def run_script(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def python_without(tmp_path: Path, module: str) -> Path:
    """An executable that runs this interpreter with ``module``'s installed copy hidden."""
    where = str(Path(importlib.util.find_spec(module).origin).parent.parent)
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(HIDE.format(name=module, where=where))
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{hide}${{PYTHONPATH:+:$PYTHONPATH}}" exec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def wheel_of_installed(module: str, out: Path) -> Path:
    """A pure-Python wheel of an installed package's files (what ``pip download`` would have fetched)."""
    version = importlib.metadata.version(module)
    package = Path(importlib.util.find_spec(module).origin).parent
    info = f"{module}-{version}.dist-info"
    files = {f"{module}/{p.relative_to(package)}": p.read_bytes() for p in sorted(package.rglob("*.py"))}
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {module}\nVersion: {version}\n".encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = [f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
              f"{len(data)}" for name, data in files.items()]
    files[f"{info}/RECORD"] = ("\n".join(record + [f"{info}/RECORD,,"]) + "\n").encode()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def test_gpu_time_limits_sum_to_at_most_five_minutes():
    out = run_script("--budget")
    assert out.returncode == 0, out.stderr
    limits = dict(re.findall(r"^\s+([\w-]+)\s+(\d+)\b", out.stdout, re.M))
    assert set(PARTS) <= set(limits)
    assert sum(int(limits[p]) for p in PARTS) == int(limits["total"]) <= 300
    assert int(limits["engine-prep"]) <= sum(int(limits[p]) for p in ("tests", "golden", "model"))


def test_a_missing_module_is_named_and_stops_the_check(tmp_path):
    out = run_script("--smoke", str(tmp_path / "out"), env={"PYTHON": str(python_without(tmp_path, "yacs"))})
    assert out.returncode == 3
    lines = [line for line in out.stdout.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "yacs" in lines[0] and "WHEELS=DIR" in lines[0], out.stdout
    assert not (tmp_path / "out" / "GPU_REPORT.md").exists()


def test_wheels_from_a_local_folder_supply_the_missing_module(tmp_path):
    wheels = tmp_path / "wheels"
    wheel_of_installed("yacs", wheels)
    env = {"PYTHON": str(python_without(tmp_path, "yacs")), "WHEELS": str(wheels),
           "GPU_CHECK_WORK": str(tmp_path / "work")}
    out = run_script("--deps-only", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "installing 1 wheel(s)" in out.stdout and re.search(r"all \d+ of requirements.txt found", out.stdout)
    assert (tmp_path / "work" / "site" / "yacs" / "__init__.py").is_file()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_cuda_the_plain_command_points_to_the_smoke_mode():
    """README's command as written, here: no CUDA, so one error line and nothing written."""
    before = sorted(p.name for p in (ROOT / "benchmarks").iterdir())
    out = run_script()
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].endswith("run: bash benchmarks/gpu_check.sh --smoke")
    assert sorted(p.name for p in (ROOT / "benchmarks").iterdir()) == before


def test_an_empty_wheel_folder_is_refused(tmp_path):
    out = run_script("--deps-only", env={"WHEELS": str(tmp_path)})
    assert out.returncode == 2 and f"error: WHEELS={tmp_path} holds no .whl file" in out.stderr


def test_the_report_lists_failed_and_timed_out_parts_with_their_errors(tmp_path):
    """A part that failed or ran out of time leaves no figures: the report says so, quotes its log,
    marks its targets not measured, and exits 1; the parts that ran keep their figures."""
    work = tmp_path / "work"
    (work / "logs").mkdir(parents=True)
    rows = [("env", 0, 1.0, 10), ("tests", 1, 5.0, 70), ("golden", 124, 25.0, 25)]
    (work / "parts.tsv").write_text("".join(f"{n}\t{rc}\t{s}\t{lim}\n" for n, rc, s, lim in rows))
    (work / "logs" / "tests.log").write_text("collected 0 items\nerror: something broke in tests\n")
    (work / "env.json").write_text(json.dumps({"device": "cpu (smoke)", "torch": "x"}))
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "report", "--work", str(work),
           "--out", str(tmp_path / "out"), "--smoke"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    report = json.loads((tmp_path / "out" / "gpu_report.json").read_text())
    assert list(report["parts"]) == list(PARTS)
    assert report["parts"]["tests"]["status"] == "failed (exit 1)"
    assert "something broke in tests" in report["parts"]["tests"]["log_tail"]
    assert report["parts"]["golden"]["status"] == "timed out after 25 s"
    assert report["parts"]["amp"]["status"] == "not run"
    assert {t["verdict"] for t in report["targets"] if t["part"] in ("tests", "golden")} == {"not measured"}
    md = (tmp_path / "out" / "GPU_REPORT.md").read_text()
    assert "device: cpu (smoke)" in md and "### tests" in md and "something broke in tests" in md


@pytest.mark.slow
def test_smoke_run_writes_both_reports_with_every_part(tmp_path):
    out = run_script("--smoke", str(tmp_path / "out"), timeout=900)
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "gpu_report.json").read_text())
    assert report["device"] == "cpu (smoke)" and report["smoke"] is True
    for part in PARTS:
        assert report["parts"][part]["rc"] == 0, (part, report["parts"][part])
        assert report["parts"][part]["figures"], part
    assert report["parts"]["ddp"]["figures"]["max_relative_gradient_difference"] <= 1e-4
    golden = report["parts"]["golden"]["figures"]["implementations"]["exact"]
    assert golden["labels_identical"] and golden["label_pixels_differing_from_2019"] == 0
    assert all(t["verdict"] == "n/a (smoke)" for t in report["targets"] if t["value"] is not None)
    md = (tmp_path / "out" / "GPU_REPORT.md").read_text()
    assert "device: cpu (smoke)" in md
    for part in PARTS:
        assert re.search(rf"^\| {part} \| .* \| ok \| 0 \|", md, re.M), part
    assert "===== ddp" in (tmp_path / "out" / "gpu_check.log").read_text()
