"""Extraction with a maskrcnn-benchmark net: the per-video store, the 2019 ``predictions.pth``
read back by both reduce tools (ours and, by the calls it makes, the 2019 one), resume, and an
undecodable frame."""

from __future__ import annotations

import shutil

import torch

from dmm.cli import run
from dmm.data import YouTubeVOS
from dmm.proposals import extract
from dmm.proposals.extract import extract_split
from dmm.proposals.legacy import load_legacy_predictions
from dmm.proposals.legacy_net import LegacyMaskRCNN, LegacySettings
from dmm.proposals.legacy_net.rpn import RPNSettings
from dmm.proposals.ops import prepare_for_matching
from dmm.proposals.store import ProposalStore, read_video_labels

from ..tools.tool_loader import load_tool
from .boxlist_reader import read_like_2019

FEW = LegacySettings(rpn=RPNSettings(pre_nms_top_n=200, post_nms_top_n=200, fpn_post_nms_top_n=100))


def test_store_and_predictions_round_trip_through_both_reduce_tools(synthetic_root, tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = LegacyMaskRCNN("legacy_r50_fpn", 2, FEW).configure(min_size=64, max_size=128, score_thresh=0.0,
                                                              detections_per_img=50).eval()
    reader = YouTubeVOS(synthetic_root, "valid")
    store_dir, pred = tmp_path / "store", tmp_path / "inference" / "predictions.pth"
    assert extract_split(model, reader, store_dir, batch_size=2, progress=False, predictions=pred) == 2
    store = ProposalStore(store_dir)
    frames = [(v, f) for v in reader.videos for f in reader.frames(v)]
    one = model([reader.image(*frames[0]), reader.image(*frames[1])])[0]  # the same batch of 2
    first = store.get(*frames[0])
    assert first.image_size == (64, 96) and first.mask_mode == "roi" and len(first) == len(one) > 0
    assert torch.equal(first.boxes, one.boxes) and torch.equal(first.masks, one.masks[:, 0])
    assert (read_video_labels(store.path(frames[0][0]))[frames[0][1]] == 1).all()
    ready = prepare_for_matching(first, (32, 48))  # what inference does with it (degenerate boxes included)
    assert ready.mask_mode == "full" and ready.masks.shape[1:] == (32, 48) and 0 < len(ready) <= 50

    # the split-wide file: one BoxList per frame, frame-index order, exactly the store's content
    legacy = load_legacy_predictions(pred)
    assert len(legacy) == len(frames)
    for (v, f), p in zip(frames, legacy):
        q = store.get(v, f)
        assert p.image_size == q.image_size and torch.equal(p.boxes, q.boxes)
        assert torch.equal(p.scores, q.scores) and torch.equal(p.masks, q.masks)

    # ours, TOPK all: the store again, the file's order kept (not re-sorted by score)
    assert load_tool("reduce_pth_size_by_videos").main([str(pred), "valid", "all", "--root", str(synthetic_root)]) == 0
    reduced = ProposalStore(pred.parent / "videos_all")
    for v, f in frames:
        a, b = store.get(v, f), reduced.get(v, f)
        assert torch.equal(a.boxes, b.boxes) and torch.equal(a.scores, b.scores) and torch.equal(a.masks, b.masks)
    assert any(not bool((store.get(v, f).scores[:-1] >= store.get(v, f).scores[1:]).all()) for v, f in frames)

    # the 2019 tool's calls on the objects as maskrcnn-benchmark unpickles them
    for (v, f), theirs in zip(frames, read_like_2019(pred, 5, monkeypatch)):
        stored = store.get(v, f)
        best = stored[stored.scores.sort(0, descending=True).indices[:5]]  # the same sort (random weights tie)
        assert theirs.size == (96, 64) and theirs.mode == "xyxy"
        assert theirs.fields() == ["labels", "scores", "mask"] and theirs.get_field("mask").shape == (len(best), 1, 28, 28)
        assert torch.equal(theirs.bbox, best.boxes) and torch.equal(theirs.get_field("scores"), best.scores)
        assert torch.equal(theirs.get_field("mask")[:, 0], best.masks) and set(theirs.get_field("labels").tolist()) <= {1}

    # a rerun resumes: nothing extracted again, the same predictions.pth
    stamp = store.path(frames[0][0]).stat().st_mtime_ns
    assert extract_split(model, reader, store_dir, batch_size=2, progress=False, predictions=pred) == 0
    assert store.path(frames[0][0]).stat().st_mtime_ns == stamp
    again = load_legacy_predictions(pred)
    assert all(torch.equal(a.boxes, b.boxes) and torch.equal(a.masks, b.masks) for a, b in zip(legacy, again))


def test_a_frame_that_cannot_be_decoded_is_named_and_nothing_is_half_written(synthetic_root, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(synthetic_root / "valid", root / "valid")
    video = sorted(p.name for p in (root / "valid" / "JPEGImages").iterdir())[0]
    bad = sorted((root / "valid" / "JPEGImages" / video).iterdir())[1]
    bad.write_bytes(bad.read_bytes()[:40])
    out = tmp_path / "store"
    code = run(extract.main, ["--root", str(root), "--split", "valid", "--out", str(out), "--arch",
                              "legacy_r50_fpn", "--weights", "none", "--num-classes", "2", "--min-size", "64",
                              "--max-size", "128", "--batch-size", "1", "--device", "cpu",
                              "--predictions", str(tmp_path / "predictions.pth")])
    err = capsys.readouterr().err
    line = err.rstrip().splitlines()[-1]  # after tqdm's progress bar, closed first
    assert code == 2 and line.startswith("error: ") and str(bad) in line, err
    assert err.count("error:") == 1
    assert not out.exists() or not list(out.iterdir())  # no file of the video, no temporary file
    assert not (tmp_path / "predictions.pth").exists()
