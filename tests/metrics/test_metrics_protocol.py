"""Which objects are scored on which frames: the DAVIS 2017 rule (davis2017-evaluation) and the
YouTube-VOS rule, on a hand-computed video, and how the rule is chosen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dmm.cli import run
from dmm.metrics import MetricsInputError, evaluate_folders, resolve_protocol, score_folders
from dmm.metrics.__main__ import main

from .metric_masks import rect, write_video

SHAPE = (24, 32)
ONE = rect(SHAPE, 2, 2, 8, 8)  # object 1's place
TWO = rect(SHAPE, 12, 16, 8, 10)  # object 2's place
BLOB = rect(SHAPE, 14, 2, 6, 6)  # a false detection of object 1, away from everything


def labels(*objects: tuple[int, np.ndarray]) -> np.ndarray:
    out = np.zeros(SHAPE, np.uint8)
    for obj, mask in objects:
        out[mask] = obj
    return out


def write_case(gt_dir: Path, res_dir: Path) -> None:
    """Five frames; object 1 is absent from the first ground-truth frame and appears in frame 2.

    Predictions: object 2 perfect throughout; object 1 a false blob in frame 1 (where it is
    absent), missed in frame 2, perfect in frame 3.
    """
    gt = [labels((2, TWO)), labels((2, TWO)), labels((1, ONE), (2, TWO)), labels((1, ONE), (2, TWO)),
          labels((1, ONE), (2, TWO))]
    pred = [labels((2, TWO)), labels((1, BLOB), (2, TWO)), labels((2, TWO)), labels((1, ONE), (2, TWO)),
            labels((1, ONE), (2, TWO))]
    write_video(gt_dir, "v", gt)
    write_video(res_dir, "v", pred)


def test_davis_rule_scores_ids_up_to_the_first_frames_max_on_every_frame(tmp_path: Path):
    write_case(tmp_path / "gt", tmp_path / "res")
    (video,) = score_folders(tmp_path / "gt", tmp_path / "res", processes=1, protocol="davis")
    obj1, obj2 = video.objects
    # object 1 is scored on frames 1..3 although it is absent from frames 0 and 1
    assert obj1.frames == ("00005", "00010", "00015")
    assert obj1.j.tolist() == [0.0, 0.0, 1.0] and obj1.f.tolist() == [0.0, 0.0, 1.0]
    assert obj2.j.tolist() == [1.0, 1.0, 1.0]
    summary = evaluate_folders(tmp_path / "gt", tmp_path / "res", processes=1, protocol="davis")["global"]
    # object 1: mean 1/3, recall 1/3; three frames -> bounds round([1, 1.5, 2, 2.5, 3] + 1e-10) - 1
    # = [0, 1, 1, 2, 2], bins [x0, x1], [x1], [x1, x2], [x2]: decay = mean(0, 0) - 1 = -1.
    # Object 2: mean 1, recall 1, decay 0. Global: the mean of the two.
    expected = {"J_mean": 2 / 3, "J_recall": 2 / 3, "J_decay": -0.5}
    for key, value in expected.items():
        assert summary[key] == pytest.approx(value), key
        assert summary[key.replace("J", "F")] == pytest.approx(value), key


def test_youtubevos_rule_starts_each_object_at_its_first_appearance(tmp_path: Path):
    write_case(tmp_path / "gt", tmp_path / "res")
    (video,) = score_folders(tmp_path / "gt", tmp_path / "res", processes=1, protocol="youtubevos")
    obj1, obj2 = video.objects
    assert obj1.first_frame == "00010" and obj1.frames == ("00015",) and obj1.j.tolist() == [1.0]
    assert obj2.j.tolist() == [1.0, 1.0, 1.0]
    summary = evaluate_folders(tmp_path / "gt", tmp_path / "res", processes=1, protocol="youtubevos")["global"]
    assert summary["J_mean"] == 1.0 and summary["J_decay"] == 0.0 and summary["F_recall"] == 1.0


def test_davis_rule_refuses_ids_beyond_the_first_frame(tmp_path: Path):
    gt = [labels((1, ONE)), labels((1, ONE)), labels((1, ONE), (2, TWO)), labels((1, ONE), (2, TWO))]
    write_video(tmp_path / "gt", "v", gt)
    write_video(tmp_path / "res", "v", gt)
    # object 2 is not in the first frame: davis2017-evaluation neither scores nor accepts it
    with pytest.raises(MetricsInputError, match=r"video v: predicted ids 2 .*first ground-truth frame"):
        score_folders(tmp_path / "gt", tmp_path / "res", processes=1, protocol="davis")
    (video,) = score_folders(tmp_path / "gt", tmp_path / "res", processes=1, protocol="youtubevos")
    assert [o.object_id for o in video.objects] == [1, 2]


def test_protocol_follows_the_layout(tmp_path: Path):
    davis = tmp_path / "DAVIS" / "Annotations" / "480p"
    davis.mkdir(parents=True)
    assert resolve_protocol(davis, "auto") == "davis"
    assert resolve_protocol(tmp_path / "youtubeVOS" / "valid" / "GroundTruth", "auto") == "youtubevos"
    assert resolve_protocol(davis, "youtubevos") == "youtubevos"
    with pytest.raises(MetricsInputError, match="protocol"):
        resolve_protocol(davis, "kitti")


def test_cli_picks_and_prints_the_rule(tmp_path: Path, capsys):
    gt = tmp_path / "DAVIS" / "Annotations" / "480p"
    write_case(gt, tmp_path / "res")
    args = ["--gt-dir", str(gt), "--results-dir", str(tmp_path / "res"), "--processes", "1"]
    assert run(main, args) == 0
    out = capsys.readouterr().out
    assert "protocol davis" in out and "0.667" in out
    assert run(main, args + ["--protocol", "youtubevos"]) == 0
    out = capsys.readouterr().out
    assert "protocol youtubevos" in out and "0.667" not in out
