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


def test_on_cuda_each_target_gets_pass_or_fail_from_the_parts_records(tmp_path):
    """The records as the parts write them on CUDA (their keys), one figure on each side of its target."""
    work = tmp_path / "work"
    (work / "logs").mkdir(parents=True)
    (work / "parts.tsv").write_text("".join(f"{p}\t0\t1.0\t10\n" for p in PARTS))
    layout = {"backbone": 10.0, "frame": 19.0, "step": 9.0}
    records = {
        "env": {"device": "cuda", "gpu": "NVIDIA H100 80GB HBM3", "driver": "580.159.04"},
        "tests": {"runs": {r: {"tests": 3, "passed": 3, "failures": 0, "errors": 0, "skipped": 0, "seconds": 1.0,
                                "command": "pytest", "failed_tests": []} for r in ("cuda-marked", "faithfulness")}},
        "golden": {"implementations": {i: {"labels_identical": i != "exact", "label_pixels_differing": int(i == "exact"),
                                           "label_pixels": 10, "max_refined_difference": 1e-6, "seconds": 1.0,
                                           "label_pixels_differing_from_2019": 0, "cpu_seconds": 2.0,
                                           "speedup_over_cpu": 2.0, "cpu_baseline": i}
                                       for i in ("exact", "batched", "triton")}},
        "model": {"backbone": "resnet50", "input": [255, 448],
                  "ms": {"cuda": {"5": {"default": layout, "2019 layout": layout, "fast": layout}}}},
        "engine": {"settings": {"short_frames": 20, "long_frames": 200, "batch_videos": 8, "matching": "batched",
                                "batch_size": 4},
                   "training": {"clips_per_s": 15.0, "compute_clips_per_s": 20.0},
                   "inference": {"default: one video, 20 frames": {"fps": 61.0, "peak_bytes": 2**30},
                                 "default: 8 videos in lockstep": {"fps": 149.0, "peak_bytes": 2**30}},
                   "memory_ratio": 1.01},
        "matching": {"ms_per_problem": {"cuda": {"eval": {"1": {"exact": 5.0, "batched": 1.0, "triton": 0.4}}}}},
        "ddp": {"backend": "nccl", "max_relative_gradient_difference": 2e-4, "parameters": 1,
                "max_buffer_difference": 0.0, "one_process_seconds": 1.0, "two_process_seconds": 1.0},
    }
    for name, record in records.items():
        (work / f"{name}.json").write_text(json.dumps(record))
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "report", "--work", str(work),
           "--out", str(tmp_path / "out")]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=60).returncode == 0
    verdicts = {t["name"]: t["verdict"] for t in json.loads((tmp_path / "out" / "gpu_report.json").read_text())["targets"]}
    assert verdicts == {
        "cuda-marked tests failing": "PASS", "faithfulness tests failing": "PASS",
        "exact: label pixels differing from the CPU": "FAIL", "batched: label pixels differing from the CPU": "PASS",
        "triton: label pixels differing from the CPU": "PASS", "frame / backbone, 5 objects (fast settings)": "PASS",
        "frames/s, one video (batched matching)": "PASS", "frames/s, 8 videos in lockstep": "FAIL",
        "training clips/s, loading included, batch 4": "FAIL", "peak memory 200 / 20 frames": "PASS",
        "Triton forward, B = 1 (eval iterations)": "PASS",
        "max relative gradient difference, 2 processes vs 1 accumulating": "FAIL"}
    md = (tmp_path / "out" / "GPU_REPORT.md").read_text()
    assert "device: cuda" in md and "NVIDIA H100 80GB HBM3" in md
