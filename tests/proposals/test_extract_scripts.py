"""``scripts/extract/*.sh``: 2019's per-split settings reach ``dmm.proposals.extract`` (DRY_RUN=1:
the commands are printed, nothing runs), and a missing input is one ``error:`` line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SH = shutil.which("sh") or "/bin/sh"

#: script -> (split, SCORE_THRESH, DETECTIONS_PER_IMG, reduce TOPK or None), from DMM_Net's
#: scripts/extract/*.sh and maskrcnn-benchmark's config defaults (MODEL_ZOO.md)
SETTINGS = {
    "extract_coco_train3k.sh": ("train", "0.05", "50", "50"),
    "extract_coco_trainval.sh": ("trainval", "0.0", "50", "50"),
    "extract_coco_online.sh": ("train_testdev_ot", "0.0", "50", "90"),
    "extract_ytb_trainval.sh": ("trainval", "0.05", "100", None),
    "extract_online_valid.sh": ("valid", "0.0", "50", None),
}


@pytest.fixture
def dataset(tmp_path):
    for folder in ("train", "valid", "train_testdev_ot"):
        (tmp_path / "data" / folder / "JPEGImages").mkdir(parents=True)
    (tmp_path / "splits").mkdir()
    for name in ("train3k", "val200"):
        (tmp_path / "splits" / f"{name}_meta.json").write_text(json.dumps({"videos": {}}))
    (tmp_path / "net.pth").write_bytes(b"")
    return tmp_path


def run(script: str, tmp: Path, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("DATA_ROOT", "SPLIT_DIR", "WEIGHTS", "OUT_DIR")}
    full.update({"DRY_RUN": "1", "DATA_ROOT": str(tmp / "data"), "SPLIT_DIR": str(tmp / "splits"),
                 "WEIGHTS": str(tmp / "net.pth"), "OUT_DIR": str(tmp / "out"), **env})
    return subprocess.run([SH, str(REPO / "scripts" / "extract" / script), "--device", "cpu"], cwd=tmp,
                          env=full, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("script", sorted(SETTINGS))
def test_2019_settings_per_split(script, dataset):
    split, score, detections, topk = SETTINGS[script]
    done = run(script, dataset)
    assert done.returncode == 0, done.stderr
    commands = [line for line in done.stdout.splitlines() if line.startswith("+ ")]
    extract = commands[0].split()
    assert extract[2:4] == ["-m", "dmm.proposals.extract"]
    value = {extract[i]: extract[i + 1] for i in range(len(extract) - 1) if extract[i].startswith("--")}
    assert (value["--split"], value["--score-thresh"], value["--detections"]) == (split, score, detections)
    assert value["--out"] == str(dataset / "out" / "videos_all")
    assert value["--predictions"] == str(dataset / "out" / "predictions.pth") and extract[-2:] == ["--device", "cpu"]
    if topk is None:
        assert len(commands) == 1
    else:
        reduce = commands[1].split()
        assert reduce[2:6] == ["src/tools/reduce_pth_size_by_videos.py", str(dataset / "out" / "predictions.pth"),
                               split, topk]


def test_missing_weights_are_one_error_line(dataset):
    done = run("extract_ytb_trainval.sh", dataset, WEIGHTS=str(dataset / "nowhere.pth"))
    assert done.returncode == 2
    assert done.stderr.startswith("error: proposal-net weights not found: ") and "nowhere.pth" in done.stderr
    assert "MODEL_ZOO.md" in done.stderr
