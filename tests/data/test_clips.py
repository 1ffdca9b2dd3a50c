import json
import math

import numpy as np
import pytest
import torch

from dmm.data import YouTubeVOS
from dmm.data.clips import ClipDataset, collate_clips, short_side
from dmm.data.transforms import AffineParams, affine_source_index, sample_affine, warp_nearest
from dmm.engine.batching import StepBatches
from dmm.proposals.ops import prepare_training_proposals
from dmm.structures import Proposals, SlotRule

from .data_writers import box_mask, meta_from_masks, write_video

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def make(reader, **kw):
    args = dict(length_clip=3, slots=SlotRule("legacy", 5), input_size=(40, 64), mean=MEAN, std=STD,
                random_frame_prob=0.5, augment=AffineParams(), hflip_prob=0.5, seed=0)
    args.update(kw)
    return ClipDataset(reader, **args)


def test_an_epoch_is_every_non_overlapping_clip(synthetic_root):
    reader = YouTubeVOS(synthetic_root, "train_all")
    ds = make(reader, augment=None, hflip_prob=0.0, skip_empty_first=False)
    per_video = {v: [c.start for c in ds.clips if c.video == v] for v in reader.videos}
    for video, starts in per_video.items():
        n = len(reader.frames(video))
        assert starts == [0] + [3 * k for k in range(1, n // 3)]
    # frames without proposals leave the list first: the clips are cut from what remains
    counts = {v: {f: (0 if i % 4 == 1 else 3) for i, f in enumerate(reader.frames(v))} for v in reader.videos}
    filtered = make(reader, augment=None, hflip_prob=0.0, skip_empty_first=False, proposal_counts=counts.get)
    for clip in filtered.clips:
        assert all(counts[clip.video][f] > 0 for f in clip.frames)
        assert len(clip.frames) == sum(1 for n in counts[clip.video].values() if n)


def test_starts_without_objects_are_skipped(small_train):
    # video b: its object leaves the frame at 00000 (the meta no longer lists that frame)
    reader = YouTubeVOS(small_train, "train_all")
    meta_path = small_train / "train" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["videos"]["a"]["objects"]["1"]["frames"] = ["00005", "00010", "00015"]
    meta["videos"]["a"]["objects"]["2"]["frames"] = ["00005", "00010", "00015"]
    meta_path.write_text(json.dumps(meta))
    reader = YouTubeVOS(small_train, "train_all")
    ds = make(reader, length_clip=1, augment=None, hflip_prob=0.0, input_size=(24, 32))
    assert ("a", "00000") not in {(c.video, c.frames[c.start]) for c in ds.clips}
    assert ("a", "00005") in {(c.video, c.frames[c.start]) for c in ds.clips}


def test_legacy_slots_by_id_and_meta_sample_weights(small_train):
    """Object k is slot k - 1 (ids up to 5); every meta object weighs 1, present or not."""
    size = (24, 32)
    boxes = [{2: (2, 2, 10, 10), 4: (12, 12, 20, 20)}, {2: (2, 2, 10, 10)}, {2: (2, 2, 10, 10), 7: (14, 20, 20, 30)}]
    videos = {"c": {f"{5 * k:05d}": box_mask(size, b) for k, b in enumerate(boxes)}}  # id 7 > 5: dropped
    write_video(small_train / "train", "c", videos["c"])
    meta = json.loads((small_train / "train" / "meta.json").read_text())
    meta["videos"].update(meta_from_masks(videos)["videos"])
    (small_train / "train" / "meta.json").write_text(json.dumps(meta))
    reader = YouTubeVOS(small_train, "train_all")
    ds = make(reader, augment=None, hflip_prob=0.0, input_size=size, random_frame_prob=0.0)
    item = ds[next(i for i, c in enumerate(ds.clips) if c.video == "c")]
    assert item["object_ids"].tolist() == [0, 2, 0, 4, 0]
    assert item["weights"].tolist() == [0, 1, 0, 1, 0]
    assert item["masks"].shape == (3, 5, *size)
    assert item["masks"][0, 3].sum() > 0 and item["masks"][1, 3].sum() == 0  # object 4 left, weight stays 1
    assert item["images"].shape == (3, 3, *size) and item["proposals"] is None


def test_all_rule_takes_the_first_frames_objects(synthetic_root):
    reader = YouTubeVOS(synthetic_root, "train_all")
    ds = make(reader, slots=SlotRule("all", 2), augment=None, hflip_prob=0.0)
    seen = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            ids = [k for k in item["object_ids"].tolist() if k]
            assert ids == sorted(ids) and len(ids) <= 2
            assert all(item["masks"][0, s].sum() > 0 for s, k in enumerate(item["object_ids"].tolist()) if k)
            assert item["weights"].tolist() == [float(k > 0) for k in item["object_ids"].tolist()]
            seen.add((i, tuple(ids)))
    assert len({i for i, _ in seen}) < len(seen)  # a video with more objects gets random subsets


def test_frame_choice_rule(synthetic_root):
    reader = YouTubeVOS(synthetic_root, "train_all")
    sequential = make(reader, random_frame_prob=0.0, augment=None, hflip_prob=0.0)
    for i, clip in enumerate(sequential.clips):
        plan = sequential.plan(clip, np.random.default_rng(i))
        assert plan.frames == list(clip.frames[clip.start:clip.start + 3])
    random = make(reader, random_frame_prob=1.0, augment=None)
    first_fixed = jumps = 0
    for i, clip in enumerate(random.clips):
        plan = random.plan(clip, np.random.default_rng(i))
        first_fixed += plan.frames[0] == clip.frames[clip.start]
        pos = [clip.frames.index(f) for f in plan.frames]
        jumps += sum(b != a + 1 for a, b in zip(pos, pos[1:]))
    assert first_fixed == len(random.clips) and jumps > len(random.clips)
    online = make(reader, all_frames_random=True, augment=None)
    moved = sum(online.plan(c, np.random.default_rng(i)).frames[0] != c.frames[c.start] for i, c in enumerate(online.clips))
    assert moved > 0  # the online split draws the first frame too


def test_deterministic_per_seed_epoch_index(synthetic_root):
    reader = YouTubeVOS(synthetic_root, "train_all")
    a, b = make(reader), make(reader)
    a.set_epoch(2), b.set_epoch(2)
    x, y = a[1], b[1]
    assert x["frames"] == y["frames"] and x["flip"] == y["flip"]
    torch.testing.assert_close(x["images"], y["images"])
    torch.testing.assert_close(x["affines"], y["affines"])
    b.set_epoch(3)
    assert [b[i]["frames"] for i in range(4)] != [a[i]["frames"] for i in range(4)]


def test_draws_are_per_clip_not_shared_by_position_in_a_step(synthetic_root):
    """The documented rule (docs/faithfulness.md, "Augmentation draws across GPUs"): a clip's
    flip, frames and affines come from ``(seed, epoch, index)`` alone, whatever process reads it
    and in whatever order; the clips at the same position of a step's groups (2019: the same
    position on the 4 GPUs, which replayed one ``random`` stream) get their own draws."""
    reader = YouTubeVOS(synthetic_root, "train_all")
    ds = make(reader)
    ds.set_epoch(1)
    step = StepBatches(batch=1, groups=4).indices(len(ds), 0, 1, 0, 1)  # position 0 of each group
    assert len(set(step)) == 4
    items = {i: ds[i] for i in step}
    for i in reversed(step):  # read in another order (another process): the same draws
        again = ds[i]
        assert again["frames"] == items[i]["frames"] and again["flip"] == items[i]["flip"]
        assert torch.equal(again["affines"], items[i]["affines"])
        plan = ds.plan(ds.clips[i], np.random.default_rng([0, 1, i]))
        assert plan.flip == items[i]["flip"] and torch.equal(torch.stack(plan.affines), items[i]["affines"])
    firsts = [items[i]["affines"][0] for i in step]
    assert all(not torch.equal(a, b) for k, a in enumerate(firsts) for b in firsts[k + 1:])


def test_short_side_rule_replaces_clips_with_tiny_first_frames(small_train):
    size = (24, 32)
    videos = {"tiny": {f"{5 * k:05d}": box_mask(size, {1: (3, 3, 5, 30)}) for k in range(3)}}  # 2 rows high
    write_video(small_train / "train", "tiny", videos["tiny"])
    meta = json.loads((small_train / "train" / "meta.json").read_text())
    meta["videos"].update(meta_from_masks(videos)["videos"])
    (small_train / "train" / "meta.json").write_text(json.dumps(meta))
    reader = YouTubeVOS(small_train, "train_all")
    assert short_side(torch.from_numpy(box_mask(size, {1: (3, 3, 5, 30)}) == 1)[None].float()) == 1
    ds = make(reader, augment=None, hflip_prob=0.0, input_size=size)
    index = next(i for i, c in enumerate(ds.clips) if c.video == "tiny")
    assert ds[index]["video"] != "tiny"
    off = make(reader, augment=None, hflip_prob=0.0, input_size=size, min_short_side=0)
    assert off[index]["video"] == "tiny"


def test_affine_is_the_2019_construction():
    rng = np.random.default_rng(0)
    params = AffineParams(rotation=10, translate=0.1, shear=0.1, scale=(0.7, 1.4))
    m = sample_affine(rng, params, (40, 64))
    draws = np.random.default_rng(0).uniform(size=6)
    deg = -10 + 20 * draws[0]
    shift_r, shift_c = (-0.1 + 0.2 * draws[1]) * 40, (-0.1 + 0.2 * draws[2]) * 64
    shear = math.radians(-0.1 + 0.2 * draws[3])
    zr, zc = 0.7 + 0.7 * draws[4], 0.7 + 0.7 * draws[5]
    t = math.radians(deg)
    rot = np.array([[math.cos(t), -math.sin(t), 0], [math.sin(t), math.cos(t), 0], [0, 0, 1]])
    expected = (rot @ np.array([[1, 0, shift_r], [0, 1, shift_c], [0, 0, 1]])
                @ np.array([[1, -math.sin(shear), 0], [0, math.cos(shear), 0], [0, 0, 1]]) @ np.diag([zr, zc, 1]))
    np.testing.assert_allclose(m.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert m.dtype == torch.float32
    # identity samples every pixel from itself; a shift clamps at the border (edge replication)
    size = (5, 7)
    assert torch.equal(affine_source_index(torch.eye(3), size), torch.arange(35))
    shift = torch.eye(3)
    shift[1, 2] = 2.0  # columns sample 2 to the right
    x = torch.arange(35.0).reshape(5, 7)
    warped = warp_nearest(x, affine_source_index(shift, size))
    assert torch.equal(warped[:, 0], x[:, 2]) and torch.equal(warped[:, -1], x[:, -1])


def source_index_2019(matrix: torch.Tensor, size: tuple[int, int], b_with_centre: bool = False) -> torch.Tensor:
    """The 2019 warp's source pixels (torchsample's ``th_affine2d``, nearest): the pixel grid
    minus the centre, ``coords @ A.T + b``, plus the centre, clamped and rounded, in float32.
    ``b_with_centre`` adds ``b + centre`` at once instead (this project's order before it was fixed)."""
    h, w = size
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    centre = torch.tensor([h / 2 - 0.5, w / 2 - 0.5])
    coords = torch.stack([rows.flatten(), cols.flatten()], 1).float() - centre
    if b_with_centre:
        new = coords.mm(matrix[:2, :2].t().contiguous()) + (matrix[:2, 2] + centre)
    else:
        new = (coords.mm(matrix[:2, :2].t().contiguous()) + matrix[:2, 2]) + centre
    r = new[:, 0].clamp(0, h - 1).round().long()
    c = new[:, 1].clamp(0, w - 1).round().long()
    return r * w + c


def test_affine_sampling_adds_in_the_2019_order():
    """``(A c + b) + centre``: the same source pixel as 2019 everywhere, where ``A c + (b + centre)``
    rounds an exact half the other way now and then (18 of 14.3 million pixels over 2000 draws)."""
    rng, size = np.random.default_rng(0), (64, 112)
    other_order = 0
    for _ in range(42):
        m = sample_affine(rng, AffineParams(), size)
        want = source_index_2019(m, size)
        assert torch.equal(affine_source_index(m, size), want)
        other_order += int((source_index_2019(m, size, b_with_centre=True) != want).sum())
    assert other_order > 0  # draw 41 has a pixel where the order matters


def test_one_transform_for_image_masks_and_proposals(small_train):
    """The image's red channel, the annotation and the proposal masks encode the same objects;
    after the flip and the affines (the proposals in the training step) they still coincide."""
    reader = YouTubeVOS(small_train, "train_all")

    def proposals(video, frame):
        ann = torch.from_numpy(reader.annotation(video, frame))
        ids = sorted(reader.info(video).objects)
        masks = torch.stack([(ann == i).float() for i in ids])
        boxes = torch.tensor([[0.0, 0.0, 31.0, 23.0]] * len(ids))
        return Proposals(boxes, torch.linspace(1, 0.5, len(ids)), masks, tuple(ann.shape), "full")

    ds = make(reader, input_size=(48, 64), random_frame_prob=1.0, hflip_prob=0.5, proposals=proposals,
              augment=AffineParams(rotation=10, translate=0.1, shear=0.1, scale=(0.7, 1.4)))
    flips = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            flips.add(item["flip"])
            for t, frame_props in enumerate(item["proposals"]):
                ready = prepare_training_proposals([frame_props], (48, 64), [item["flip"]], [item["affines"][t]],
                                                   nms_iou=1.0)[0]
                ids = sorted(reader.info(item["video"]).objects)
                for slot, oid in enumerate(item["object_ids"].tolist()):
                    if oid == 0:
                        continue
                    mask = item["masks"][t, slot].bool()
                    warped = ready.masks[ready.scores == frame_props.scores[ids.index(oid)]][0] > 0.5
                    assert torch.equal(mask, warped)
                    red = item["images"][t, 0] * STD[0] + MEAN[0]  # red = 40 * id / 255
                    inside = red[mask]
                    if inside.numel() > 20:
                        assert (inside - 40 * oid / 255).abs().median() < 0.06
    assert flips == {True, False}


def test_the_2019_bug_of_unflipped_proposals_is_an_option():
    masks = torch.zeros(1, 4, 6)
    masks[0, 1:3, 0:2] = 1
    props = Proposals(torch.tensor([[0.0, 1.0, 1.0, 2.0]]), torch.ones(1), masks, (4, 6), "full")
    fixed = prepare_training_proposals([props], (4, 6), [True], [None])[0]
    buggy = prepare_training_proposals([props], (4, 6), [True], [None], flip_proposals=False)[0]
    assert fixed.boxes.tolist() == [[4.0, 1.0, 5.0, 2.0]] and torch.equal(fixed.masks[0], masks[0].flip(-1))
    assert buggy.boxes.tolist() == [[0.0, 1.0, 1.0, 2.0]]


def test_collate_cuts_to_the_shortest_clip(synthetic_root):
    reader = YouTubeVOS(synthetic_root, "train_all")
    ds = make(reader)
    a, b = ds[0], ds[1]
    b = {**b, "images": b["images"][:2], "masks": b["masks"][:2], "affines": b["affines"][:2], "frames": b["frames"][:2]}
    batch = collate_clips([a, b])
    assert batch["images"].shape == (2, 2, 3, 40, 64) and batch["masks"].shape == (2, 2, 5, 40, 64)
    assert batch["weights"].shape == (2, 5) and batch["object_ids"].shape == (2, 5)
    assert batch["flip"].dtype == torch.bool and batch["affines"].shape == (2, 2, 3, 3)
    assert len(batch["video"]) == 2 and len(batch["frames"][0]) == 2 and batch["proposals"] is None
    with pytest.raises(ValueError):
        collate_clips([])
