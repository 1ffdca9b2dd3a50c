import hashlib

import numpy as np
import pytest
from PIL import Image

from dmm.cli import run
from dmm.data import YouTubeVOS
from dmm.data.synthetic import DISTRACTOR_ID_BASE, SyntheticConfig, generate, main


def _digest(root):
    h = hashlib.sha1()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def test_deterministic_and_atomic(tmp_path):
    cfg = SyntheticConfig(num_train=2, num_valid=1, num_frames=3, height=40, width=64, seed=3)
    a = generate(tmp_path / "a", cfg, progress=False)
    b = generate(tmp_path / "b", cfg, progress=False)
    assert _digest(a) == _digest(b)
    c = generate(tmp_path / "c", SyntheticConfig(2, 1, 3, 40, 64, seed=4), progress=False)
    assert _digest(a) != _digest(c)
    with pytest.raises(FileExistsError, match="--overwrite"):
        generate(a, cfg, progress=False)
    assert run(main, ["--root", str(a), "--train-videos", "1", "--valid-videos", "0",
                      "--frames", "2", "--height", "40", "--width", "64"]) == 2
    assert main(["--root", str(a), "--train-videos", "1", "--valid-videos", "0", "--frames", "2",
                 "--height", "40", "--width", "64", "--overwrite"]) == 0
    assert len(list((a / "train" / "JPEGImages").iterdir())) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]  # no temp folders


def test_layout_and_formats(synthetic_root, synthetic_record):
    for split in ("train", "valid"):
        video = sorted(synthetic_record["splits"][split])[0]
        ann_dir = synthetic_root / split / "Annotations" / video
        image = Image.open(synthetic_root / split / "JPEGImages" / video / "00000.jpg")
        assert image.format == "JPEG" and image.size == (128, 72)
        ann = Image.open(next(ann_dir.iterdir()))
        assert ann.mode == "P" and ann.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]
        names = sorted(p.stem for p in (synthetic_root / split / "Instances" / video).iterdir())
        assert names == [f"{5 * i:05d}" for i in range(8)]
    gt = synthetic_root / "valid" / "GroundTruth"
    assert all(len(list(v.iterdir())) == 8 for v in gt.iterdir())


@pytest.fixture(scope="module")
def medium(tmp_path_factory):
    cfg = SyntheticConfig(num_train=0, num_valid=24, num_frames=12, height=64, width=112, seed=1)
    return generate(tmp_path_factory.mktemp("medium") / "root", cfg, progress=False)


def _iou(a, b):
    union = (a | b).sum()
    return (a & b).sum() / union if union else 1.0


def test_scene_properties(medium):
    import json
    record = json.loads((medium / "synthetic_record.json").read_text())["splits"]["valid"]
    targets = [[o for o in v["objects"] if not o["distractor"]] for v in record.values()]
    ids = [[o["id"] for o in t] for t in targets]
    assert max(len(i) for i in ids) == 7
    assert any(i != list(range(1, len(i) + 1)) for i in ids)  # non-contiguous ids
    assert any(o["first_frame"] not in (None, "00000") for t in targets for o in t)  # late entries
    for v in record.values():
        ds = [o for o in v["objects"] if o["distractor"]]
        assert ds and all(o["id"] >= DISTRACTOR_ID_BASE for o in ds)
        for d in ds:  # same shape and size as its target, another look
            t = next(o for o in v["objects"] if o["id"] == d["mimics"])
            assert (d["shape"], d["radius"]) == (t["shape"], t["radius"])
            assert d["appearance"]["colour"] != t["appearance"]["colour"]
            assert d["appearance"]["texture"] != t["appearance"]["texture"]


def test_task_is_not_trivial(medium):
    """Copying the first mask scores poorly and greedy IoU tracking is often lost."""
    reader = YouTubeVOS(medium, "valid")
    copy_ious, lost_videos = [], 0
    for video in reader.videos:
        info = reader.info(video)
        inst = [np.array(Image.open(medium / "valid" / "Instances" / video / f"{f}.png"))
                for f in info.frames]
        lost = False
        for oid, obj in info.objects.items():
            ref = inst[obj.first_index] == oid
            current = oid
            prev = ref
            for t in range(obj.first_index + 1, len(info.frames)):
                copy_ious.append(_iou(ref, inst[t] == oid))
                cands = [i for i in np.unique(inst[t]) if i]
                if not cands:
                    continue
                current = max(cands, key=lambda i: _iou(prev, inst[t] == i))
                prev = inst[t] == current
            lost |= current != oid
        lost_videos += lost
    assert np.mean(copy_ious) < 0.35
    assert lost_videos >= len(reader.videos) // 4
