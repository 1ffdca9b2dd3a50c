"""The command line and full_eval.sh on generated ground truth against damaged predictions."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from dmm.cli import run
from dmm.metrics.__main__ import main

from .metric_masks import write_video

REPO = Path(__file__).resolve().parents[2]
SHAPE = (60, 90)  # radius ceil(0.008 * 108.2) = 1


def ground_truth(n_frames: int, seed: int) -> list[np.ndarray]:
    """Two disjoint moving ellipses (ids 1 and 2, far apart), uint8 (h, w) per frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    frames = []
    for t in range(n_frames):
        out = np.zeros(SHAPE, np.uint8)
        for obj, (cy, cx) in ((1, (18, 20 + t)), (2, (42, 65 - t))):
            ry, rx = 9 + rng.integers(0, 3), 12 + rng.integers(0, 3)
            out[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = obj
        frames.append(out)
    return frames


def damage(frames: list[np.ndarray], kind: str) -> list[np.ndarray]:
    """Predictions made from the ground truth: shifted, eroded or with the two ids swapped."""
    out = []
    for f in frames:
        if kind.startswith("shift"):
            g = np.roll(f, int(kind[5:]), axis=1)
        elif kind.startswith("erode"):
            g = np.zeros_like(f)
            for obj in (1, 2):
                g[ndimage.binary_erosion(f == obj, iterations=int(kind[5:]))] = obj
        elif kind == "swap":
            g = np.where(f == 1, 2, np.where(f == 2, 1, 0)).astype(np.uint8)
        else:
            g = f.copy()
        out.append(g)
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    for i in range(3):
        gt = ground_truth(7, seed=i)
        write_video(root / "gt", f"vid{i}", gt)
        for kind in ("perfect", "shift2", "shift6", "erode1", "erode4", "swap"):
            write_video(root / kind, f"vid{i}", damage(gt, kind))
    meta = {"videos": {f"vid{i}": {"objects": {"1": {"category": "cat", "frames": []},
                                               "2": {"category": "owl" if i else "cat", "frames": []}}}
                       for i in (0, 1)}}
    (root / "meta.json").write_text(json.dumps(meta))
    (root / "seen.txt").write_text("cat\n")
    return root


def run_cli(root: Path, kind: str, *extra: str) -> dict:
    out = root / f"{kind}_out.json"
    assert main(["--gt-dir", str(root / "gt"), "--results-dir", str(root / kind), "--json", str(out),
                 "--processes", "1", *extra]) == 0
    return json.loads(out.read_text())


def test_damage_orders_the_scores(dataset: Path):
    scores = {kind: run_cli(dataset, kind)["global"]
              for kind in ("perfect", "shift2", "shift6", "erode1", "erode4", "swap")}
    assert all(scores["perfect"][k] == 1.0 for k in ("J_mean", "F_mean", "J_recall", "F_recall", "JF_mean"))
    assert scores["perfect"]["J_decay"] == 0.0
    for metric in ("J_mean", "F_mean"):
        assert scores["perfect"][metric] > scores["shift2"][metric] > scores["shift6"][metric] > scores["swap"][metric]
        assert scores["perfect"][metric] >= scores["erode1"][metric] > scores["erode4"][metric]
    assert scores["swap"]["J_mean"] == 0.0 and scores["swap"]["F_mean"] == 0.0


def test_cli_writes_json_csv_plot_and_youtube_summary(dataset: Path, capsys):
    out = dataset / "reports"
    summary = run_cli(dataset, "shift2", "--split-meta", str(dataset / "meta.json"),
                      "--seen-categories", str(dataset / "seen.txt"),
                      "--csv-dir", str(out), "--plot", str(out / "jf.png"))
    printed = capsys.readouterr().out
    assert "| Method" in printed and "J_mean" in printed and "F_decay" in printed
    assert set(summary) == {"global", "videos", "youtubevos"}
    assert list(summary["videos"]) == ["vid0", "vid1"]  # restricted by --split-meta
    assert set(summary["global"]) == {"J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay", "JF_mean"}
    yt = summary["youtubevos"]
    assert (yt["n_seen"], yt["n_unseen"]) == (3, 1)
    with open(out / "per_object.csv") as fh:
        objects = list(csv.DictReader(fh))
    assert [(r["video"], r["object"]) for r in objects] == [("vid0", "1"), ("vid0", "2"), ("vid1", "1"), ("vid1", "2")]
    assert float(objects[3]["J_mean"]) == pytest.approx(yt["J_unseen"])
    with open(out / "per_video.csv") as fh:
        videos = list(csv.DictReader(fh))
    assert [r["video"] for r in videos] == ["vid0", "vid1", "GLOBAL"]
    assert float(videos[-1]["JF_mean"]) == pytest.approx(summary["global"]["JF_mean"])
    assert (out / "jf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_reports_missing_video(dataset: Path, tmp_path: Path, capsys):
    write_video(tmp_path / "res", "vid0", ground_truth(7, seed=0))
    args = ["--gt-dir", str(dataset / "gt"), "--results-dir", str(tmp_path / "res"), "--processes", "1"]
    assert run(main, args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "miss 2 of 3 videos: vid1, vid2" in err and err.count("\n") == 1
    assert "(--allow-missing scores only the videos present)" in err and "allow_missing" not in err
    assert run(main, args + ["--allow-missing"]) == 0


def test_table_has_jf_and_says_why_g_is_missing(dataset: Path, tmp_path: Path, capsys):
    (tmp_path / "all_seen.txt").write_text("cat\nowl\n")
    assert main(["--gt-dir", str(dataset / "gt"), "--results-dir", str(dataset / "perfect"), "--processes", "1",
                 "--split-meta", str(dataset / "meta.json"), "--seen-categories", str(tmp_path / "all_seen.txt")]) == 0
    out = capsys.readouterr().out
    header, _, row = [line for line in out.splitlines() if line.startswith("|")][:3]
    assert header.split("|")[-2].strip() == "JF_mean" and row.split("|")[-2].strip() == "1.000"
    assert "G: - (no unseen categories in this split)" in out


def test_full_eval_script(dataset: Path, tmp_path: Path):
    env = dict(os.environ, GT_DIR=str(dataset / "gt"), SPLIT_META=str(dataset / "meta.json"),
               OUT_DIR=str(tmp_path / "metrics"), PYTHON=sys.executable)
    script = str(REPO / "scripts" / "metric" / "full_eval.sh")
    # one protocol (without --protocol a train-annotation split also prints the 2019 code's row:
    # tests/scripts/test_full_eval.py)
    done = subprocess.run(["sh", script, str(dataset / "erode1") + "/", "--processes", "1", "--protocol", "youtubevos"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "| erode1" in done.stdout and "protocol youtubevos" in done.stdout and "dmm2019" not in done.stdout
    assert set(json.loads((tmp_path / "metrics" / "summary.json").read_text())["videos"]) == {"vid0", "vid1"}
    assert (tmp_path / "metrics" / "per_video.csv").exists()
    env["GT_DIR"] = str(tmp_path / "nowhere")
    done = subprocess.run(["sh", script, str(dataset / "erode1")], env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "ground truth" in done.stderr and "nowhere" in done.stderr


def _method(printed: str) -> str:
    header, _, row = [line for line in printed.splitlines() if line.startswith("|")][:3]
    assert header.split("|")[1].strip() == "Method"
    return row.split("|")[1].strip()


def test_method_is_what_produced_the_results(dataset: Path, tmp_path: Path, capsys):
    """Not ``merged`` for every run: the checkpoint of the results' record, else the folders, or --name."""
    merged = tmp_path / "eval" / "valid" / "merged"
    for i in range(3):
        write_video(merged, f"vid{i}", ground_truth(7, seed=i))
    args = ["--gt-dir", str(dataset / "gt"), "--results-dir", str(merged), "--processes", "1"]
    assert main(args) == 0
    assert _method(capsys.readouterr().out) == "eval/valid/merged"
    checkpoint = tmp_path / "runs" / "synthetic" / "epo02_iter00150" / "trainer.pt"
    (tmp_path / "eval" / "valid" / "merged.source.json").write_text(json.dumps(
        {"producer": f"{checkpoint} (1234 bytes, modified 1700000000000000000)", "config": "abc"}))
    assert main(args) == 0
    assert _method(capsys.readouterr().out) == "synthetic/epo02_iter00150"
    assert main(args + ["--name", "DMM-Net R50"]) == 0
    assert _method(capsys.readouterr().out) == "DMM-Net R50"
    assert main(["--gt-dir", str(dataset / "gt"), "--results-dir", str(dataset / "shift2"), "--processes", "1"]) == 0
    assert _method(capsys.readouterr().out) == "shift2"
