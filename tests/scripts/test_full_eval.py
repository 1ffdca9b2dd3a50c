"""scripts/metric/full_eval.sh: the ground truth and split meta follow the results' split; splits
scored against the train annotations print the standard and the 2019 code's rows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from dmm.engine.results import record_path
from dmm.io import write_json
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


def write_record(results: Path, input_size: tuple[int, int]) -> None:
    """The record python -m dmm.test writes beside its results (maps made at ``input_size``)."""
    write_json(record_path(results), {"producer": "test", "config": "-", "input_size": list(input_size),
                                      "labels_at": "input"})


STANDARD = "protocol youtubevos: the standard rule, each object from its first appearance at the frame size: " \
           "comparable with other methods"
PAPER = "protocol dmm2019: the 2019 code's scoring: comparable with the paper's table"


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
    assert STANDARD in done.stdout and "dmm2019" not in done.stdout  # valid: the standard row only


def test_split_argument_wins_over_the_path(tmp_path: Path):
    ytb = dataset(tmp_path)
    results = tmp_path / "res"
    write_video(results, "v1", frames(0))
    write_record(results, (20, 30))  # the maps are at the input size, which is the frame size
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


def test_trainval_prints_the_standard_and_the_2019_row(tmp_path: Path):
    """This project's results (frame-size maps made from 10x15 input-size maps, with the record):
    both rows, labelled, each with its JSON; without the record the 2019 row is one error line
    after the standard row, and ``--input-size`` reaches it (``--protocol`` keeps one row:
    tests/metrics/test_metrics_cli.py)."""
    ytb = dataset(tmp_path)
    split_dir = tmp_path / "splits"
    split_dir.mkdir()
    (split_dir / "val200_meta.json").write_text((ytb / "train" / "meta.json").read_text())
    results = tmp_path / "exp" / "eval" / "trainval" / "merged"
    small = []
    for t in range(4):
        f = np.zeros((10, 15), np.uint8)
        f[3:7, 2 + t:7 + t] = 1
        small.append(f)
    write_video(results, "v1", [cv2.resize(f, (30, 20), interpolation=cv2.INTER_NEAREST_EXACT) for f in small])
    write_record(results, (10, 15))
    done = full_eval(tmp_path, str(results), "--processes", "1", DATA_ROOT=str(ytb), SPLIT_DIR=str(split_dir))
    assert done.returncode == 0, done.stderr
    assert done.stdout.index(STANDARD) < done.stdout.index(PAPER)
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and not line.startswith("| Method")]
    assert len(rows) == 2
    out = results.parent / "merged_metrics"
    standard = json.loads((out / "summary.json").read_text())
    paper = json.loads((out / "summary_dmm2019.json").read_text())
    assert "protocol" not in standard and paper["protocol"] == "dmm2019"
    assert rows[1].split("|")[2].strip() == paper["printed"][0]
    assert standard["global"]["F_mean"] != paper["global"]["F_mean"]  # F at 10x15 with the 20x30 tolerance
    assert (out / "per_object.csv").is_file() and (out / "dmm2019" / "per_object.csv").is_file()
    record_path(results).unlink()
    failed = full_eval(tmp_path, str(results), "--processes", "1", DATA_ROOT=str(ytb), SPLIT_DIR=str(split_dir))
    assert failed.returncode == 2 and STANDARD in failed.stdout
    (line,) = failed.stderr.splitlines()
    assert line.startswith(f"error: {results / 'v1' / '00005.png'}: a frame-size map") and "--input-size" in line
    again = full_eval(tmp_path, str(results), "--processes", "1", "--input-size", "10", "15", DATA_ROOT=str(ytb),
                      SPLIT_DIR=str(split_dir))
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "summary_dmm2019.json").read_text()) == paper
