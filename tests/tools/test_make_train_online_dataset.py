"""src/tools/make_train_online_dataset.py on a tiny hand-written YouTube-VOS valid split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dmm.data.palette import save_palette_png
from dmm.data.youtubevos import YouTubeVOS

from .tool_loader import load_tool

REPO = Path(__file__).resolve().parents[2]
H, W = 24, 32


tool = load_tool("make_train_online_dataset")


def _frame(seed: int) -> np.ndarray:
    """A smooth RGB frame (JPEG keeps it close to the original)."""
    y, x = np.mgrid[0:H, 0:W]
    img = np.stack([x * 5 + seed * 20, y * 8 + seed * 10, (x + y) * 3], axis=-1)
    return img.astype(np.uint8)


def write_valid(root: Path) -> Path:
    """``root/valid``: video ``vid_a`` (object 3 at 00000, object 7 first at 00010, four
    frames) and ``vid_b`` (object 12 at 00000, two frames). Returns the split folder."""
    split = root / "valid"
    frames = {"vid_a": ["00000", "00005", "00010", "00015"], "vid_b": ["00000", "00005"]}
    annotations = {
        ("vid_a", "00000"): {3: (slice(2, 10), slice(3, 12))},
        ("vid_a", "00010"): {7: (slice(12, 20), slice(18, 28))},
        ("vid_b", "00000"): {12: (slice(5, 15), slice(5, 20))},
    }
    for video, names in frames.items():
        (split / "JPEGImages" / video).mkdir(parents=True)
        (split / "Annotations" / video).mkdir(parents=True)
        for k, name in enumerate(names):
            Image.fromarray(_frame(k)).save(split / "JPEGImages" / video / f"{name}.jpg", quality=98)
    for (video, name), objects in annotations.items():
        mask = np.zeros((H, W), np.uint8)
        for oid, (ys, xs) in objects.items():
            mask[ys, xs] = oid
        save_palette_png(split / "Annotations" / video / f"{name}.png", mask)
    meta = {
        "videos": {
            "vid_a": {
                "objects": {
                    "3": {"category": "cat", "frames": frames["vid_a"]},
                    "7": {"category": "dog", "frames": ["00010", "00015"]},
                }
            },
            "vid_b": {"objects": {"12": {"category": "car", "frames": frames["vid_b"]}}},
        }
    }
    (split / "meta.json").write_text(json.dumps(meta))
    return split


@pytest.fixture()
def valid(tmp_path: Path) -> Path:
    return write_valid(tmp_path / "src")


def _png(path: Path) -> np.ndarray:
    return np.array(Image.open(path))


def test_layout_ids_and_meta(valid: Path, tmp_path: Path):
    out = tmp_path / "ytb" / "train_testdev_ot"
    tool.make_online_dataset(valid, out, copies=2, seed=0, progress=False)

    reader = YouTubeVOS(out.parent, "train_testdev_ot")  # the data layer reads it as a split
    assert reader.videos == ["vid_a", "vid_b"]
    info = reader.info("vid_a")
    # two annotated source frames x (original + 2 copies), named so they sort
    assert info.frames == [f"{i:05d}" for i in range(6)]
    assert sorted(p.stem for p in (out / "Annotations/vid_a").glob("*.png")) == info.frames
    assert set(info.objects) == {3, 7}
    assert info.objects[3].category == "cat" and info.objects[7].category == "dog"
    # the late object's first frame is the original of its source frame 00010
    assert info.objects[3].first_frame == "00000" and info.objects[7].first_frame == "00003"
    assert set(reader.info("vid_b").objects) == {12}

    src_a0 = _png(valid / "Annotations/vid_a/00000.png")
    src_a10 = _png(valid / "Annotations/vid_a/00010.png")
    np.testing.assert_array_equal(reader.annotation("vid_a", "00000"), src_a0)
    np.testing.assert_array_equal(reader.annotation("vid_a", "00003"), src_a10)
    img = reader.image("vid_a", "00003").astype(int)
    # the original image of source frame 00010 (the third frame), up to JPEG loss
    assert np.abs(img - _frame(2)).mean() < 3 < np.abs(img - _frame(0)).mean()

    for frame in info.frames:
        with Image.open(out / "Annotations/vid_a" / f"{frame}.png") as im:
            assert im.mode == "P" and im.size == (W, H)
        ann = reader.annotation("vid_a", frame)
        assert set(np.unique(ann)) <= {0, 3, 7}

    meta = json.loads((out / "meta.json").read_text())
    for oid, entry in meta["videos"]["vid_a"]["objects"].items():
        for frame in entry["frames"]:  # listed exactly where the object is visible
            assert (reader.annotation("vid_a", frame) == int(oid)).any()
    assert meta["videos"]["vid_a"]["objects"]["7"]["frames"][0] == "00003"
    record = json.loads((out / "online_record.json").read_text())
    assert [r["source"] for r in record["videos"]["vid_a"]] == ["00000"] * 3 + ["00010"] * 3


def test_copies_are_augmented(valid: Path, tmp_path: Path):
    out = tmp_path / "o" / "train_testdev_ot"
    tool.make_online_dataset(valid, out, copies=4, seed=1, progress=False)
    original = _png(out / "Annotations/vid_b/00000.png")
    copies = [_png(out / f"Annotations/vid_b/{i:05d}.png") for i in range(1, 5)]
    assert all(c.shape == original.shape for c in copies)
    assert sum(not np.array_equal(c, original) for c in copies) >= 3


def test_flip_and_identity_transforms_are_exact():
    ann = np.zeros((H, W), np.uint8)
    ann[3:9, 2:7] = 5
    img = _frame(0)
    same_img, same_ann = tool.apply_transform(img, ann, tool.Transform())
    np.testing.assert_array_equal(same_ann, ann)
    np.testing.assert_array_equal(same_img, img)
    flip_img, flip_ann = tool.apply_transform(img, ann, tool.Transform(flip=True))
    np.testing.assert_array_equal(flip_ann, ann[:, ::-1])
    np.testing.assert_array_equal(flip_img, img[:, ::-1])


def test_deterministic_for_a_seed(valid: Path, tmp_path: Path):
    def build(name: str, seed: int) -> Path:
        out = tmp_path / name / "train_testdev_ot"
        tool.make_online_dataset(valid, out, copies=2, seed=seed, progress=False)
        return out

    a, b, c = build("a", 5), build("b", 5), build("c", 6)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        if rel.name != "online_record.json":
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    differ = [rel for rel in files if rel.suffix == ".png" and (a / rel).read_bytes() != (c / rel).read_bytes()]
    assert differ


def test_refuses_to_overwrite(valid: Path, tmp_path: Path, capsys):
    out = tmp_path / "o" / "train_testdev_ot"
    tool.make_online_dataset(valid, out, copies=1, seed=0, progress=False)
    marker = out / "keep.txt"
    marker.write_text("x")
    with pytest.raises(tool.OnlineDatasetError, match="already exists"):
        tool.make_online_dataset(valid, out, copies=1, seed=0, progress=False)
    assert marker.exists()
    rc = tool.main(["--source", str(valid), "--out", str(out), "--copies", "1"])
    assert rc == 1 and str(out) in capsys.readouterr().err
    assert marker.exists()
    assert tool.main(["--source", str(valid), "--out", str(out), "--copies", "1", "--overwrite"]) == 0
    assert not marker.exists() and (out / "meta.json").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["train_testdev_ot"]  # no temp left


def test_missing_and_corrupt_inputs_are_named(valid: Path, tmp_path: Path):
    out = tmp_path / "o" / "train_testdev_ot"
    bad = valid / "Annotations/vid_a/00010.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(tool.OnlineDatasetError, match="vid_a/00010.png"):
        tool.make_online_dataset(valid, out, copies=1, progress=False)
    assert not out.exists() and list(out.parent.iterdir()) == []

    write_valid(tmp_path / "src2")
    missing = tmp_path / "src2/valid/JPEGImages/vid_b/00000.jpg"
    missing.unlink()
    with pytest.raises(tool.OnlineDatasetError, match="vid_b/00000.jpg"):
        tool.make_online_dataset(tmp_path / "src2/valid", out, copies=1, progress=False)
    with pytest.raises(tool.OnlineDatasetError, match="nowhere/valid: source split folder not found"):
        tool.make_online_dataset(tmp_path / "nowhere/valid", out, progress=False)
    (tmp_path / "src2/valid/meta.json").unlink()
    with pytest.raises(tool.OnlineDatasetError, match="src2/valid/meta.json"):
        tool.make_online_dataset(tmp_path / "src2/valid", out, progress=False)
