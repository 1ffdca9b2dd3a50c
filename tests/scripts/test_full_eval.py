"""scripts/metric/full_eval.sh: the ground truth and split meta follow the results' split."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.metrics.metric_masks import write_video

REPO = Path(__file__).resolve().parents[2]
SH = shutil.which("sh") or "/bin/sh"
SCRIPT = REPO / "scripts" / "metric" / "full_eval.sh"


def frames(shift: int) -> list[np.ndarray]:
    """Four 20x30 frames with object 1 (a box moving right), shifted by ``shift`` pixels."""
    out = []
    for t in range(4):
        f = np.zeros((20, 30), np.uint8)
        f[5:15, 3 + t + shift:13 + t + shift] = 1
        out.append(f)
    return out


def dataset(root: Path) -> Path:
    """``root/ytb`` with a synthetic-style ``valid`` (GroundTruth/ holds every frame) and
    ``train`` (Annotations/ and meta.json)."""
    ytb = root / "ytb"
    meta = {"videos": {"v1": {"objects": {"1": {"category": "box", "frames": ["00000"]}}}}}
    for folder, gt in (("valid", "GroundTruth"), ("train", "Annotations")):
        write_video(ytb / folder / gt, "v1", frames(0))
        (ytb / folder / "meta.json").write_text(json.dumps(meta))
    return ytb


def full_eval(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("GT_DIR", "SPLIT_META", "SPLIT", "DATA_ROOT", "SPLIT_DIR", "OUT_DIR")}
    full_env.update(PYTHON=sys.executable, **env)
    return subprocess.run([SH, str(SCRIPT), *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=120)


def test_valid_results_are_scored_against_valid_ground_truth(tmp_path: Path):
    ytb = dataset(tmp_path)
    results = tmp_path / "exp" / "eval" / "valid" / "merged"
    write_video(results, "v1", frames(1))
    done = full_eval(tmp_path, str(results), "--processes", "1", DATA_ROOT=str(ytb))
    assert done.returncode == 0, done.stderr
    assert f"split valid: ground truth {ytb / 'valid' / 'GroundTruth'}" in done.stdout
    summary = json.loads((tmp_path / "exp" / "eval" / "valid" / "merged_metrics" / "summary.json").read_text())
    assert list(summary["videos"]) == ["v1"] and 0 < summary["global"]["J_mean"] < 1


def test_split_argument_wins_over_the_path(tmp_path: Path):
    ytb = dataset(tmp_path)
    results = tmp_path / "res"
    write_video(results, "v1", frames(0))
    done = full_eval(tmp_path, "res", "--split", "train_all", "--processes", "1", DATA_ROOT=str(ytb))
    assert done.returncode == 0, done.stderr
    assert f"split train_all: ground truth {ytb / 'train' / 'Annotations'}" in done.stdout
    assert "--split" not in json.dumps(json.loads((tmp_path / "res_metrics" / "summary.json").read_text()))


def test_youtubevos_valid_without_ground_truth_points_at_the_server(tmp_path: Path):
    ytb = dataset(tmp_path)
    shutil.rmtree(ytb / "valid" / "GroundTruth")
    results = tmp_path / "exp" / "eval" / "valid" / "merged"
    write_video(results, "v1", frames(0))
    done = full_eval(tmp_path, str(results), DATA_ROOT=str(ytb))
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: ") and "no per-frame ground truth" in line
    assert "evaluation server" in line and "sh scripts/submit.sh" in line
    unknown = full_eval(tmp_path, str(results), "--split", "val", DATA_ROOT=str(ytb))
    assert unknown.returncode == 2 and "unknown split 'val'" in unknown.stderr
