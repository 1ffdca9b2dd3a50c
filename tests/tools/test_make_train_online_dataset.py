"""src/tools/make_train_online_dataset.py on a tiny hand-written YouTube-VOS valid split."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dmm.cli import run
from dmm.data.palette import save_palette_png
from dmm.errors import InputError
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


def test_the_2019_layout_cycles_the_first_appearance_frames(valid: Path, tmp_path: Path):
    out = tmp_path / "ytb" / "train_testdev_ot"
    tool.make_online_dataset(valid, out, frames=5, progress=False)

    reader = YouTubeVOS(out.parent, "train_testdev_ot")  # the data layer reads it as a split
    assert reader.videos == ["vid_a", "vid_b"]
    info = reader.info("vid_a")
    assert info.frames == [f"{i:05d}" for i in range(5)]
    assert set(info.objects) == {3, 7}
    assert info.objects[3].category == "cat" and info.objects[7].category == "dog"
    record = json.loads((out / "online_record.json").read_text())
    assert [r["source"] for r in record["videos"]["vid_a"]] == ["00000", "00010", "00000", "00010", "00000"]
    assert [r["source"] for r in record["videos"]["vid_b"]] == ["00000"] * 5
    # 2019 re-saved every image through PIL: a JPEG of PIL's default quality 75, not the source bytes
    src = valid / "JPEGImages/vid_a/00010.jpg"
    resaved = io.BytesIO()
    Image.open(src).save(resaved, format="JPEG")
    assert (out / "JPEGImages/vid_a/00001.jpg").read_bytes() == resaved.getvalue() != src.read_bytes()
    np.testing.assert_array_equal(reader.annotation("vid_a", "00003"), _png(valid / "Annotations/vid_a/00010.png"))
    # each object is listed in the copies of the frames its source meta lists (2019), visible there or not
    meta = json.loads((out / "meta.json").read_text())
    assert meta["videos"]["vid_a"]["objects"]["3"]["frames"] == [f"{i:05d}" for i in range(5)]
    assert meta["videos"]["vid_a"]["objects"]["7"]["frames"] == ["00001", "00003"]


def test_copy_jpeg_keeps_the_source_bytes(valid: Path, tmp_path: Path):
    out = tool.make_online_dataset(valid, tmp_path / "c" / "train_testdev_ot", frames=3, progress=False,
                                   copy_jpeg=True)
    src = (valid / "JPEGImages/vid_a/00010.jpg").read_bytes()
    assert (out / "JPEGImages/vid_a/00001.jpg").read_bytes() == src
    assert json.loads((out / "online_record.json").read_text())["images"] == "source bytes"


def test_deterministic(valid: Path, tmp_path: Path):
    a = tool.make_online_dataset(valid, tmp_path / "a" / "train_testdev_ot", progress=False)
    b = tool.make_online_dataset(valid, tmp_path / "b" / "train_testdev_ot", progress=False)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()) and len(files) > 20
    for rel in files:
        if rel.name != "online_record.json":
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_refuses_to_overwrite(valid: Path, tmp_path: Path, capsys):
    out = tmp_path / "o" / "train_testdev_ot"
    tool.make_online_dataset(valid, out, frames=3, progress=False)
    marker = out / "keep.txt"
    marker.write_text("x")
    with pytest.raises(tool.OnlineDatasetError, match="already exists"):
        tool.make_online_dataset(valid, out, frames=3, progress=False)
    assert marker.exists()
    rc = run(tool.main, ["--source", str(valid), "--out", str(out), "--frames", "3"])
    assert rc == 2 and str(out) in capsys.readouterr().err
    assert marker.exists()
    assert tool.main(["--source", str(valid), "--out", str(out), "--frames", "3", "--overwrite"]) == 0
    assert not marker.exists() and (out / "meta.json").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["train_testdev_ot"]  # no temp left
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask  # not tempfile's 0700


def test_missing_and_corrupt_inputs_are_named(valid: Path, tmp_path: Path):
    out = tmp_path / "o" / "train_testdev_ot"
    bad = valid / "Annotations/vid_a/00010.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(InputError, match="vid_a/00010.png"):
        tool.make_online_dataset(valid, out, frames=3, progress=False)
    assert not out.exists() and list(out.parent.iterdir()) == []

    write_valid(tmp_path / "src2")
    missing = tmp_path / "src2/valid/JPEGImages/vid_b/00000.jpg"
    missing.unlink()
    with pytest.raises(InputError, match="vid_b/00000.jpg"):
        tool.make_online_dataset(tmp_path / "src2/valid", out, frames=3, progress=False)
    with pytest.raises(tool.OnlineDatasetError, match="nowhere/valid: source split folder not found"):
        tool.make_online_dataset(tmp_path / "nowhere/valid", out, progress=False)
    (tmp_path / "src2/valid/meta.json").unlink()
    with pytest.raises(tool.OnlineDatasetError, match="src2/valid/meta.json"):
        tool.make_online_dataset(tmp_path / "src2/valid", out, progress=False)
