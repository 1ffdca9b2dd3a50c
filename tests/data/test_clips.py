import numpy as np
import pytest
import torch

from dmm.data import YouTubeVOS
from dmm.data.clips import ClipDataset, collate_clips
from dmm.data.transforms import AffineParams

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def make(reader, **kw):
    args = dict(length_clip=3, max_objects=5, input_size=(40, 64), mean=MEAN, std=STD,
                random_frame_prob=0.5, augment=AffineParams(), hflip_prob=0.5, seed=0)
    args.update(kw)
    return ClipDataset(reader, **args)


def test_item_shapes_and_contents(synthetic_root):
    reader = YouTubeVOS(synthetic_root, "train_all")
    ds = make(reader, max_objects=3, augment=None, hflip_prob=0.0)
    assert len(ds) == len(reader.videos)
    for i in range(len(ds)):
        item = ds[i]
        assert item["images"].shape == (3, 3, 40, 64)
        assert item["masks"].shape == (3, 3, 40, 64)
        assert set(item["masks"].unique().tolist()) <= {0.0, 1.0}
        assert item["valid"].dtype == torch.bool and item["object_ids"].dtype == torch.int64
        n = int(item["valid"].sum())
        assert 1 <= n <= 3 and (item["object_ids"][n:] == 0).all() and not item["valid"][n:].any()
        ids = item["object_ids"][:n].tolist()
        assert ids == sorted(ids) and set(ids) <= set(reader.info(item["video"]).objects)
        # every valid object is present in the first frame; padding is empty
        assert (item["masks"][0, :n].flatten(1).sum(1) > 0).all()
        assert item["masks"][:, n:].sum() == 0
        assert item["proposals"] is None and len(item["frames"]) == 3


def test_frame_choice_rule(synthetic_root):
    reader = YouTubeVOS(synthetic_root, "train_all")
    sequential = make(reader, random_frame_prob=0.0, length_clip=4)
    for epoch in range(3):
        sequential.set_epoch(epoch)
        for i in range(len(sequential)):
            plan = sequential.plan(i)
            frames = reader.annotated_frames(plan.video)
            pos = [frames.index(f) for f in plan.frames]
            assert pos == list(range(pos[0], pos[0] + 4))
    random = make(reader, random_frame_prob=1.0, length_clip=6)
    jumps = 0
    for i in range(len(random)):
        plan = random.plan(i)
        frames = reader.annotated_frames(plan.video)
        pos = [frames.index(f) for f in plan.frames]
        jumps += sum(b != a + 1 for a, b in zip(pos, pos[1:]))
    assert jumps > len(random) * 5 // 2  # drawn uniformly, not the next frame


def test_deterministic_per_seed_epoch_index(synthetic_root):
    reader = YouTubeVOS(synthetic_root, "train_all")
    a, b = make(reader), make(reader)
    a.set_epoch(2), b.set_epoch(2)
    x, y = a[1], b[1]
    assert x["frames"] == y["frames"]
    torch.testing.assert_close(x["images"], y["images"])
    b.set_epoch(3)
    plans = [(b.plan(i).frames, b.plan(i).flip) for i in range(len(b))]
    assert plans != [(a.plan(i).frames, a.plan(i).flip) for i in range(len(a))]


def test_first_frame_never_empty(small_train):
    reader = YouTubeVOS(small_train, "train_all")
    # video b: frame 00005 has no annotation pixels for its object (meta still lists it)
    from dmm.data.palette import save_palette_png
    save_palette_png(small_train / "train" / "Annotations" / "b" / "00005.png",
                     np.zeros((24, 32), np.uint8))
    ds = make(reader, input_size=(24, 32), augment=None, hflip_prob=0.0, length_clip=1)
    for epoch in range(10):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            plan = ds.plan(i)
            assert not (plan.video == "b" and plan.frames[0] == "00005")
            assert plan.object_ids


def test_object_cap_draws_random_subsets(synthetic_root, synthetic_record):
    reader = YouTubeVOS(synthetic_root, "train_all")
    ds = make(reader, max_objects=1)
    counts = {v: len(reader.info(v).objects) for v in reader.videos}
    index = max(range(len(ds)), key=lambda i: counts[reader.videos[i]])
    assert counts[reader.videos[index]] >= 2
    seen = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        plan = ds.plan(index)
        assert len(plan.object_ids) == 1
        seen.add(plan.object_ids[0])
    assert len(seen) >= 2


def test_one_transform_for_image_masks_and_proposals(small_train):
    """The image's red channel, the annotation and the proposal masks encode the same
    object; after the random affine and flip they must still coincide."""
    reader = YouTubeVOS(small_train, "train_all")

    def proposal_fn(video, frame, size):
        ann = torch.from_numpy(reader.annotation(video, frame))
        ann = torch.nn.functional.interpolate(ann[None, None].float(), size=size,
                                              mode="nearest-exact")[0, 0]
        ids = sorted(reader.info(video).objects)
        return {"masks": torch.stack([(ann == i).float() for i in ids]),
                "scores": torch.ones(len(ids)), "tag": frame}

    ds = make(reader, input_size=(48, 64), max_objects=2, random_frame_prob=1.0,
              hflip_prob=0.5, proposal_fn=proposal_fn, length_clip=4,
              augment=AffineParams(rotation=10, translate=0.1, shear=0.1, scale=(0.7, 1.4)))
    flips = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item, plan = ds[i], ds.plan(i)
            flips.add(plan.flip)
            ids = sorted(reader.info(item["video"]).objects)
            for t, props in enumerate(item["proposals"]):
                assert props["tag"] == item["frames"][t] and props["scores"].shape == (len(ids),)
                for o, oid in enumerate(item["object_ids"].tolist()):
                    if oid == 0:
                        continue
                    mask = item["masks"][t, o].bool()
                    warped = props["masks"][ids.index(oid)] > 0.5
                    union = (mask | warped).sum()
                    if union > 0:
                        assert (mask & warped).sum() / union > 0.8
                    red = item["images"][t, 0] * STD[0] + MEAN[0]  # red = 40 * id / 255
                    inside = red[mask]
                    if inside.numel() > 20:
                        assert (inside - 40 * oid / 255).abs().median() < 0.06
    assert flips == {True, False}


def test_collate(synthetic_root):
    reader = YouTubeVOS(synthetic_root, "train_all")
    ds = make(reader, proposal_fn=lambda v, f, s: {"masks": torch.rand(2, *s),
                                                   "scores": torch.rand(2)})
    batch = collate_clips([ds[0], ds[1]])
    assert batch["images"].shape == (2, 3, 3, 40, 64)
    assert batch["masks"].shape == (2, 3, 5, 40, 64)
    assert batch["valid"].shape == (2, 5) and batch["object_ids"].shape == (2, 5)
    assert len(batch["video"]) == 2 and len(batch["frames"][0]) == 3
    assert len(batch["proposals"]) == 2 and batch["proposals"][0][0]["masks"].shape == (2, 40, 64)
    with pytest.raises(ValueError):
        collate_clips([])
