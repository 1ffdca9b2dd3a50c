"""Folder scoring: the DAVIS protocol on small generated videos, late objects, extra ids,
and the errors for missing or mis-sized predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dmm.metrics import MetricsInputError, evaluate_folders, score_folders, youtube_summary

from .metric_masks import rect, write_labels, write_video

SHAPE = (24, 32)


def labels(*objects: tuple[int, np.ndarray]) -> np.ndarray:
    """uint8 (h, w) label image from (id, bool mask) pairs, later ones on top."""
    out = np.zeros(SHAPE, np.uint8)
    for obj, mask in objects:
        out[mask] = obj
    return out


def static_video(n: int = 6) -> list[np.ndarray]:
    """Object 1 in every frame; object 2 appears in frame 2."""
    one = rect(SHAPE, 2, 2, 8, 8)
    two = rect(SHAPE, 12, 16, 8, 10)
    return [labels((1, one)) if t < 2 else labels((1, one), (2, two)) for t in range(n)]


def test_hand_worked_video(tmp_path: Path):
    gt = static_video(4)  # frames 0..3; objects are scored on frames 1 and 2 only
    pred = [f.copy() for f in gt]
    pred[2][pred[2] == 1] = 0  # object 1 missing in frame 2
    pred[3][:] = 0  # last frame is never scored
    write_video(tmp_path / "gt", "v", gt)
    write_video(tmp_path / "res", "v", pred)
    (tmp_path / "res" / "v" / "00000.png").unlink()  # first frame is never read
    (obj1, obj2), = [v.objects for v in score_folders(tmp_path / "gt", tmp_path / "res", processes=1)]
    assert obj1.frames == ("00005", "00010") and obj1.j.tolist() == [1.0, 0.0] and obj1.f.tolist() == [1.0, 0.0]
    # object 2 first appears in frame 2 (00010): nothing of it is scored before 00015, the last frame
    assert obj2.first_frame == "00010" and obj2.frames == ()
    summary = evaluate_folders(tmp_path / "gt", tmp_path / "res", processes=1)
    # bins of two frames: [x0], [x0, x1], [x1], [x1] -> decay = x0 - x1
    expected = {"J_mean": 0.5, "J_recall": 0.5, "J_decay": 1.0, "F_mean": 0.5, "F_recall": 0.5, "F_decay": 1.0,
                "JF_mean": 0.5}
    assert summary == {"global": expected, "videos": {"v": expected}}


def test_late_object_is_scored_from_its_appearance_on(tmp_path: Path):
    gt = static_video(7)
    pred = [f.copy() for f in gt]
    for t in (0, 1, 2):
        pred[t][pred[t] == 2] = 0  # nothing predicted for object 2 until frame 3
    pred[1][:] = 0  # object 1 lost in frame 1 only
    write_video(tmp_path / "gt", "v", gt)
    write_video(tmp_path / "res", "v", pred)
    (obj1, obj2), = [v.objects for v in score_folders(tmp_path / "gt", tmp_path / "res", processes=1)]
    assert obj2.first_frame == "00010" and obj2.frames == ("00015", "00020", "00025")
    assert obj2.j.tolist() == [1.0, 1.0, 1.0]
    assert obj1.frames == ("00005", "00010", "00015", "00020", "00025") and obj1.j.tolist() == [0, 1, 1, 1, 1]
    result = evaluate_folders(tmp_path / "gt", tmp_path / "res", processes=1)["global"]
    assert result["J_mean"] == pytest.approx((0.8 + 1.0) / 2)


def test_empty_masks_score_one(tmp_path: Path):
    gt = static_video(6)
    gt[3][gt[3] == 1] = 0  # object 1 leaves in frame 3 and comes back
    write_video(tmp_path / "gt", "v", gt)
    write_video(tmp_path / "res", "v", gt)
    summary = evaluate_folders(tmp_path / "gt", tmp_path / "res", processes=1)
    assert summary["global"]["J_mean"] == 1.0 and summary["global"]["F_mean"] == 1.0


def test_extra_ids_error_names_them_or_score_as_false_objects(tmp_path: Path):
    gt = static_video(6)
    pred = [f.copy() for f in gt]
    pred[3][rect(SHAPE, 20, 0, 3, 3)] = 7
    pred[0][rect(SHAPE, 20, 0, 3, 3)] = 9  # first frame: not read, so not an error
    write_video(tmp_path / "gt", "v", gt)
    write_video(tmp_path / "res", "v", pred)
    with pytest.raises(MetricsInputError, match=r"video v: predicted ids 7 \(first in v/00015.png\)"):
        score_folders(tmp_path / "gt", tmp_path / "res", processes=1)
    (video,) = score_folders(tmp_path / "gt", tmp_path / "res", processes=1, extra_ids="score")
    false = [o for o in video.objects if o.false_object]
    assert [o.object_id for o in false] == [7]
    assert false[0].frames == ("00005", "00010", "00015", "00020") and false[0].j.tolist() == [1, 1, 0, 1]
    assert false[0].f.tolist() == [1, 1, 0, 1]
    summary = evaluate_folders(tmp_path / "gt", tmp_path / "res", processes=1, extra_ids="score")
    assert summary["global"]["J_mean"] == pytest.approx((1 + 1 + 0.75) / 3)


def test_missing_frames_and_videos_are_listed(tmp_path: Path):
    for video in ("a", "b", "c"):
        write_video(tmp_path / "gt", video, static_video(5))
        write_video(tmp_path / "res", video, static_video(5))
    (tmp_path / "res" / "b" / "00010.png").unlink()
    with pytest.raises(MetricsInputError, match=r"miss 1 scored frames .*: b/00010.png"):
        score_folders(tmp_path / "gt", tmp_path / "res", processes=1)
    write_labels(tmp_path / "res" / "b" / "00010.png", static_video(5)[2])
    for video in ("a", "c"):
        for png in (tmp_path / "res" / video).iterdir():
            png.unlink()
        (tmp_path / "res" / video).rmdir()
    with pytest.raises(MetricsInputError, match=r"miss 2 of 3 videos: a, c .*--allow-missing"):
        score_folders(tmp_path / "gt", tmp_path / "res", processes=1)
    summary = evaluate_folders(tmp_path / "gt", tmp_path / "res", processes=1, allow_missing=True)
    assert list(summary["videos"]) == ["b"]
    with pytest.raises(MetricsInputError, match="no folder for 1 requested videos: zz"):
        score_folders(tmp_path / "gt", tmp_path / "res", videos=["b", "zz"], processes=1)


def test_size_mismatch_names_the_file(tmp_path: Path):
    write_video(tmp_path / "gt", "v", static_video(4))
    write_video(tmp_path / "res", "v", static_video(4))
    write_labels(tmp_path / "res" / "v" / "00010.png", np.zeros((SHAPE[0], SHAPE[1] + 1), np.uint8))
    with pytest.raises(MetricsInputError, match=r"v/00010.png: prediction size 24 x 33 differs from the ground truth 24 x 32"):
        score_folders(tmp_path / "gt", tmp_path / "res", processes=1)


def test_rgb_png_is_rejected_with_its_name(tmp_path: Path):
    from PIL import Image

    write_video(tmp_path / "gt", "v", static_video(4))
    write_video(tmp_path / "res", "v", static_video(4))
    Image.new("RGB", SHAPE[::-1]).save(tmp_path / "res" / "v" / "00005.png")
    with pytest.raises(MetricsInputError, match=r"v/00005.png: expected a palette"):
        score_folders(tmp_path / "gt", tmp_path / "res", processes=1)


def test_parallel_equals_serial_and_youtube_summary(tmp_path: Path):
    rng = np.random.default_rng(0)
    for i in range(4):
        gt = static_video(6)
        pred = [f.copy() for f in gt]
        for f in pred[1:]:
            f[rng.random(SHAPE) < 0.1 * i] = 0
        write_video(tmp_path / "gt", f"v{i}", gt)
        write_video(tmp_path / "res", f"v{i}", pred)
    serial = score_folders(tmp_path / "gt", tmp_path / "res", processes=1)
    parallel = score_folders(tmp_path / "gt", tmp_path / "res", processes=2)
    assert [v.video for v in parallel] == ["v0", "v1", "v2", "v3"]
    for a, b in zip(serial, parallel):
        for oa, ob in zip(a.objects, b.objects):
            assert oa.frames == ob.frames and (oa.j == ob.j).all() and (oa.f == ob.f).all()
    categories = {f"v{i}": {1: "cat", 2: "dog" if i < 2 else "owl"} for i in range(4)}
    yt = youtube_summary(serial, categories, seen={"cat", "dog"})
    stats = {(v.video, o.object_id): o.statistics() for v in serial for o in v.objects}
    seen = [stats[(f"v{i}", 1)] for i in range(4)] + [stats[(f"v{i}", 2)] for i in range(2)]
    unseen = [stats[(f"v{i}", 2)] for i in range(2, 4)]
    assert yt["J_seen"] == pytest.approx(np.mean([s["J_mean"] for s in seen]))
    assert yt["F_unseen"] == pytest.approx(np.mean([s["F_mean"] for s in unseen]))
    assert yt["G"] == pytest.approx(np.mean([yt["J_seen"], yt["J_unseen"], yt["F_seen"], yt["F_unseen"]]))
    assert (yt["n_seen"], yt["n_unseen"]) == (6, 2)
    assert youtube_summary(serial, categories, seen={"cat", "dog", "owl"})["G"] is None
    assert youtube_summary(serial, {"v0": {1: "cat"}}, seen={"cat"}) is None


def test_void_label_counts_as_background(tmp_path: Path):
    gt = static_video(4)
    for f in gt:
        f[0, :] = 255
    pred = static_video(4)
    write_video(tmp_path / "gt", "v", gt)
    write_video(tmp_path / "res", "v", pred)
    summary = evaluate_folders(tmp_path / "gt", tmp_path / "res", processes=1)
    assert summary["global"]["J_mean"] == 1.0 and summary["global"]["F_mean"] == 1.0


def test_parallel_run_reports_a_worker_error(tmp_path: Path):
    for i in range(4):
        pred = static_video(5)
        if i == 0:  # the longest-first order sends this video to the worker process
            pred[2][0, 0] = 9
        write_video(tmp_path / "gt", f"v{i}", static_video(6 if i == 0 else 5))
        write_video(tmp_path / "res", f"v{i}", pred + static_video(6)[5:] if i == 0 else pred)
    with pytest.raises(MetricsInputError, match=r"video v0: predicted ids 9 \(first in v0/00010.png\)"):
        score_folders(tmp_path / "gt", tmp_path / "res", processes=2)
