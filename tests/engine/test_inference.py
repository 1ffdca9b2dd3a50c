import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from dmm.data import YouTubeVOS, build_reader
from dmm.engine.baselines import build_baseline, hungarian_step, mask_iou
from dmm.engine.labels import compose_labels
from dmm.engine.inference import FrameResult
from dmm.engine.results import ResultWriter, provenance, segment_videos
from dmm.engine.proposal_source import ProposalSource
from dmm.engine.tracker import DMMTracker
from dmm.errors import InputError
from dmm.model.dmmnet import DMMNet
from dmm.proposals.store import ProposalStore
from dmm.structures import ObjectInfo, SlotRule, VideoInfo

from .conftest import small_config


def relabel_video(root, video, mapping):
    """Give ``video`` of a copied valid split other object ids (annotations, ground truth, meta)."""
    for folder in ("Annotations", "GroundTruth"):
        for png in (root / "valid" / folder / video).glob("*.png"):
            with Image.open(png) as im:
                pal, arr = im.getpalette(), np.array(im)
            out = arr.copy()
            for old, new in mapping.items():
                out[arr == old] = new
            im = Image.fromarray(out, mode="P")
            im.putpalette(pal)
            im.save(png)
    meta_path = root / "valid" / "meta.json"
    meta = json.loads(meta_path.read_text())
    objs = meta["videos"][video]["objects"]
    meta["videos"][video]["objects"] = {str(mapping.get(int(k), int(k))): v for k, v in objs.items()}
    meta_path.write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def valid_copy(synthetic_root, synthetic_proposals, tmp_path_factory):
    root = tmp_path_factory.mktemp("valid_copy") / "root"
    shutil.copytree(synthetic_root, root)
    video = sorted((root / "valid" / "JPEGImages").iterdir())[0].name
    old = sorted(int(k) for k in json.loads((root / "valid" / "meta.json").read_text())["videos"][video]["objects"])
    new = [3, 7, 9, 11, 13, 17, 19][: len(old)]
    relabel_video(root, video, dict(zip(old, new)))
    return root, video, set(new)


def late_objects(reader):
    return {v: [o.id for o in reader.info(v).objects.values() if o.first_index > 0] for v in reader.videos}


def segment(tracker, cfg, reader, out, **kw):
    kw.setdefault("show_progress", False)
    return segment_videos(tracker, reader, reader.videos, ProposalSource(cfg.PROPOSALS.EVAL_DIR), out, cfg, **kw)


@pytest.mark.parametrize("labels_at", ["input", "frame"])
def test_inference_writes_every_frame_with_original_ids_and_size(valid_copy, synthetic_proposals, tmp_path, labels_at):
    root, relabelled, new_ids = valid_copy
    cfg = small_config(root, synthetic_proposals, tmp_path / "run", "TEST.LABELS_AT", labels_at)
    assert cfg.MODEL.OBJECTS == "all"  # the synthetic config starts late objects
    reader = build_reader(cfg.DATA, "valid")
    assert any(late_objects(reader).values()), "the tiny valid set should have a late-appearing object"
    torch.manual_seed(0)
    model = DMMNet.from_config(cfg).eval()
    out = tmp_path / "merged"
    ran = segment(DMMTracker(model), cfg, reader, out, batch_videos=3)
    assert sorted(ran) == reader.videos
    assert sorted(p.name for p in out.iterdir()) == reader.videos
    for video in reader.videos:
        info = reader.info(video)
        pngs = sorted(p.stem for p in (out / video).iterdir())
        assert pngs == info.frames
        h, w = reader.frame_size(video)
        for index, frame in enumerate(info.frames):
            with Image.open(out / video / f"{frame}.png") as im:
                assert im.mode == "P" and im.size == (w, h)
                labels = np.array(im)
            allowed = {0} | {o.id for o in info.objects.values() if o.first_index <= index}
            assert set(np.unique(labels).tolist()) <= allowed, (video, frame)
            # at its first frame an object shows its given mask (full size, or through the input size)
            for o in info.objects.values():
                if o.first_index == index:
                    given = reader.annotation(video, frame) == o.id
                    if labels_at == "input":
                        small = cv2.resize(given.astype(np.uint8), (cfg.DATA.INPUT_W, cfg.DATA.INPUT_H),
                                           interpolation=cv2.INTER_NEAREST_EXACT)
                        given = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST_EXACT).astype(bool)
                    assert np.array_equal(labels == o.id, given), (video, frame, o.id)
    assert set(reader.info(relabelled).objects) == new_ids
    # a rerun skips finished videos
    assert segment(DMMTracker(model), cfg, reader, out) == []


def test_2019_rule_tracks_the_first_annotated_frames_objects_only(valid_copy, synthetic_proposals, tmp_path):
    root, relabelled, _ = valid_copy
    cfg = small_config(root, synthetic_proposals, tmp_path / "run", "MODEL.OBJECTS", "legacy")
    reader = build_reader(cfg.DATA, "valid")
    torch.manual_seed(0)
    out = tmp_path / "merged"
    segment(DMMTracker(DMMNet.from_config(cfg).eval()), cfg, reader, out)
    for video in reader.videos:
        info = reader.info(video)
        plan = SlotRule("legacy", cfg.DATA.MAX_OBJECTS).plan(info)
        start = min(o.first_index for o in info.objects.values())
        tracked = {o.id for o in info.objects.values() if o.first_index == start and o.id <= 5}
        assert set(plan.starts) == ({start} if tracked else set())
        seen = set()
        for index, frame in enumerate(info.frames):
            labels = np.array(Image.open(out / video / f"{frame}.png"))
            seen |= set(np.unique(labels).tolist())
            if index < start:
                assert not labels.any()
        assert seen <= {0} | set(range(1, max(tracked, default=0) + 1)), video
    # the relabelled video has ids 3, 7, 9, ...: only 3 (<= 5) can be tracked
    assert SlotRule("legacy", 5).plan(reader.info(relabelled)).slot_ids == (1, 2, 3)


def test_object_plans():
    frames = [f"{i:05d}" for i in range(6)]
    info = VideoInfo("v", frames, {
        2: ObjectInfo(2, frames[1], 1), 3: ObjectInfo(3, frames[1], 1), 6: ObjectInfo(6, frames[1], 1),
        9: ObjectInfo(9, frames[4], 4)})
    p2019 = SlotRule("legacy", 5).plan(info)
    assert p2019.slot_ids == (1, 2, 3) and p2019.starts == {1: (1, 2)}  # id 6 > 5 and the late id 9 are dropped
    pall = SlotRule("all").plan(info)
    assert pall.slot_ids == (2, 3, 6, 9) and pall.starts == {1: (0, 1, 2), 4: (3,)}
    assert SlotRule("legacy").plan(VideoInfo("e", frames, {})).slot_ids == ()
    with pytest.raises(ValueError, match="MODEL.OBJECTS"):
        SlotRule("some")


def test_batched_inference_equals_one_video_at_a_time(synthetic_root, synthetic_proposals, tmp_path):
    cfg = small_config(synthetic_root, synthetic_proposals, tmp_path / "run")
    reader = build_reader(cfg.DATA, "valid")
    torch.manual_seed(1)
    tracker = DMMTracker(DMMNet.from_config(cfg).eval())
    segment(tracker, cfg, reader, tmp_path / "one", batch_videos=1)
    segment(tracker, cfg, reader, tmp_path / "many", batch_videos=4)
    for png in (tmp_path / "one").rglob("*.png"):
        a = np.array(Image.open(png))
        b = np.array(Image.open(tmp_path / "many" / png.relative_to(tmp_path / "one")))
        assert (a != b).mean() < 1e-3, png


def test_compose_labels_argmax_with_background():
    probs = torch.zeros(3, 4, 4)
    probs[0, :2] = 0.9
    probs[1, 2:] = 0.3  # below background (1 - 0.3 = 0.7)
    labels = compose_labels(probs, [4, 6, 9], (4, 4))
    assert labels.dtype == np.uint8
    assert (labels[:2] == 4).all() and (labels[2:] == 0).all()
    big = compose_labels(probs, [4, 6, 9], (8, 8), "input")  # nearest up-sampling of the input-size map
    assert (big[:4] == 4).all() and (big[4:] == 0).all()
    given = np.zeros((8, 8), bool)
    given[7, 7] = True
    framed = compose_labels(probs, [4, 6, 9], (8, 8), "frame", given=[(9, given)])
    assert framed[7, 7] == 9 and framed[0, 0] == 4
    assert compose_labels(torch.zeros(0, 4, 4), [], (5, 5)).shape == (5, 5)


def test_result_writer_keeps_nothing_of_an_unfinished_video(tmp_path):
    labels = np.zeros((4, 4), np.uint8)
    with pytest.raises(RuntimeError, match="boom"):
        with ResultWriter(tmp_path) as writer:
            writer.write(FrameResult("done", 0, "00000", labels, last=True))
            writer.write(FrameResult("half", 0, "00000", labels, last=False))
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done"]


def test_proposals_by_position(synthetic_proposals):
    store = ProposalStore(synthetic_proposals / "valid")
    video = store.videos[0]
    frames = sorted(store.video(video))
    by_name = ProposalSource(synthetic_proposals / "valid")
    by_position = ProposalSource(synthetic_proposals / "valid", by_position=True)
    assert torch.equal(by_position(video, 1, "made-up").boxes, by_name(video, 1, frames[1]).boxes)
    with pytest.raises(InputError, match="holds"):
        by_position(video, len(frames), "made-up")


def test_hungarian_step_follows_best_overlap():
    prev = torch.zeros(2, 6, 6)
    prev[0, :3, :3] = 1
    prev[1, 3:, 3:] = 1
    props = torch.zeros(3, 6, 6)
    props[0, 3:, 2:] = 1  # overlaps object 1
    props[1, :3, 1:4] = 1  # overlaps object 0
    props[2, 0, 5] = 1  # overlaps nothing
    out = hungarian_step(prev, props)
    assert torch.equal(out[0], props[1]) and torch.equal(out[1], props[0])
    assert mask_iou(prev > 0.5, props > 0.5).shape == (2, 3)
    assert torch.equal(hungarian_step(prev, props[:0]), prev)


@pytest.mark.parametrize("name", ["copy_first", "iou_hungarian"])
def test_baselines_write_every_frame(name, synthetic_root, synthetic_proposals, tmp_path):
    cfg = small_config(synthetic_root, synthetic_proposals, tmp_path / "run", "TEST.LABELS_AT", "frame")
    reader = build_reader(cfg.DATA, "valid")
    segment(build_baseline(name), cfg, reader, tmp_path / name)
    for video in reader.videos:
        info = reader.info(video)
        assert sorted(p.stem for p in (tmp_path / name / video).iterdir()) == info.frames
        first = info.frames[0]
        labels = np.array(Image.open(tmp_path / name / video / f"{first}.png"))
        assert np.array_equal(labels, reader.annotation(video, first))


def test_results_of_another_producer_are_refused_or_redone(synthetic_root, synthetic_proposals, tmp_path):
    cfg = small_config(synthetic_root, synthetic_proposals, tmp_path / "run")
    reader = build_reader(cfg.DATA, "valid")
    out = tmp_path / "merged"
    first = provenance(cfg, "copy_first")
    segment(build_baseline("copy_first"), cfg, reader, out, source=first)
    assert json.loads((tmp_path / "merged.source.json").read_text()) == first
    assert segment(build_baseline("copy_first"), cfg, reader, out, source=first) == []  # same producer: kept
    other = provenance(cfg, "iou_hungarian")
    with pytest.raises(InputError, match=r"holds results of copy_first .*--overwrite"):
        segment(build_baseline("iou_hungarian"), cfg, reader, out, source=other)
    changed = small_config(synthetic_root, synthetic_proposals, tmp_path / "run", "TEST.LABELS_AT", "frame")
    assert provenance(changed, "copy_first") != first  # a mask-shaping key changes the record
    assert sorted(segment(build_baseline("iou_hungarian"), cfg, reader, out, source=other, on_mismatch="redo")) \
        == reader.videos
    assert json.loads((tmp_path / "merged.source.json").read_text()) == other


def test_trainval_videos_start_where_the_2019_evaluator_started_them(tmp_path):
    """On trainval 2019 started a video at the first frame its meta lists for the object listed
    first (here id 1, at frame 00005), not at the earliest frame holding an object (00000: id 2)."""
    from ..data.data_writers import box_mask, write_video

    frames = {f"{5 * k:05d}": box_mask((24, 32), {2: (2, 2, 10, 12), **({1: (12, 14, 20, 28)} if k else {})})
              for k in range(4)}
    write_video(tmp_path / "train", "v0", frames)
    listing = {"1": {"category": "a", "frames": sorted(frames)[1:]}, "2": {"category": "b", "frames": sorted(frames)}}
    split_dir = tmp_path / "splits"
    split_dir.mkdir()
    (split_dir / "val200_meta.json").write_text(json.dumps({"videos": {"v0": {"objects": listing}}}))
    info = YouTubeVOS(tmp_path, "trainval", split_dir=split_dir).info("v0")
    assert info.start == "00005" and info.objects[2].first_frame == "00000"
    plan = SlotRule("legacy", 5).plan(info)
    assert plan.slot_ids == (1, 2) and plan.starts == {1: (0, 1)}  # both objects are present at 00005
    assert SlotRule("all").plan(info).starts == {0: (1,), 1: (0,)}  # the option keeps first appearances
    (split_dir / "train3k_meta.json").write_text(json.dumps({"videos": {"v0": {"objects": listing}}}))
    assert YouTubeVOS(tmp_path, "train", split_dir=split_dir).info("v0").start is None  # only trainval
