"""src/tools/check_submission.py on complete and incomplete tiny result trees."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dmm.cli import run

from .tool_loader import load_tool

REPO = Path(__file__).resolve().parents[2]
H, W = 12, 16
FRAMES = {"v1": ["00000", "00005", "00010"], "v2": ["00000", "00005"], "v3": ["00003"]}


tool = load_tool("check_submission")


def write_split(root: Path, frames: dict[str, list[str]] = FRAMES) -> tuple[Path, Path]:
    """``root/meta.json`` and ``root/JPEGImages/<video>/<frame>.jpg``."""
    for video, names in frames.items():
        (root / "JPEGImages" / video).mkdir(parents=True)
        for name in names:
            Image.new("RGB", (W, H), (10, 20, 30)).save(root / "JPEGImages" / video / f"{name}.jpg")
    meta = {"videos": {v: {"objects": {"1": {"category": None, "frames": n[:1]}}} for v, n in frames.items()}}
    (root / "meta.json").write_text(json.dumps(meta))
    return root / "meta.json", root / "JPEGImages"


def write_results(root: Path, frames: dict[str, list[str]] = FRAMES) -> Path:
    """A palette PNG of the right size for every frame; pixel value = frame number."""
    for video, names in frames.items():
        (root / video).mkdir(parents=True)
        for name in names:
            im = Image.fromarray(np.full((H, W), int(name) % 7, np.uint8), mode="P")
            im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
            im.save(root / video / f"{name}.png")
    return root


@pytest.fixture()
def tree(tmp_path: Path):
    meta, images = write_split(tmp_path / "valid")
    results = write_results(tmp_path / "merged")
    return meta, images, results


def _run(results, meta, images, zip_path=None) -> int:
    argv = [str(results), "--meta", str(meta), "--images", str(images)]
    return run(tool.main, argv + (["--zip", str(zip_path)] if zip_path else []))


def test_complete_results_zip_layout(tree, tmp_path: Path, capsys):
    meta, images, results = tree
    (results / "not_in_split").mkdir()  # extra folders are left out of the zip
    (results / "not_in_split" / "00000.png").write_bytes((results / "v1/00000.png").read_bytes())
    out = tmp_path / "sub" / "submission.zip"
    assert _run(results, meta, images, out) == 0
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        assert sorted(names) == sorted(
            f"Annotations/{v}/{f}.png" for v, frames in FRAMES.items() for f in frames
        )
        assert zf.read("Annotations/v2/00005.png") == (results / "v2/00005.png").read_bytes()
    assert "not_in_split" in capsys.readouterr().err
    assert sorted(p.name for p in out.parent.iterdir()) == ["submission.zip"]  # no temp left


def test_grayscale_png_is_accepted(tree):
    meta, images, results = tree
    Image.fromarray(np.zeros((H, W), np.uint8), mode="L").save(results / "v1/00000.png")
    assert tool.check_results(results, meta, images, progress=False).ok


def test_missing_video_is_named_and_no_zip(tree, tmp_path: Path, capsys):
    meta, images, results = tree
    for p in (results / "v2").iterdir():
        p.unlink()
    (results / "v2").rmdir()
    out = tmp_path / "submission.zip"
    assert _run(results, meta, images, out) == 2
    err = capsys.readouterr().err
    assert "1 of 3 videos have no folder" in err and "v2" in err
    assert not out.exists()


def test_missing_frames_are_named_per_video(tree, capsys):
    meta, images, results = tree
    (results / "v1/00005.png").unlink()
    (results / "v3/00003.png").unlink()
    assert _run(results, meta, images) == 2
    err = capsys.readouterr().err
    assert "2 frames missing in 2 videos" in err
    assert "v1: 1 missing: 00005" in err and "v3: 1 missing: 00003" in err


def test_long_listings_are_truncated(tmp_path: Path, capsys):
    frames = {"long": [f"{i:05d}" for i in range(25)]}
    meta, images = write_split(tmp_path / "valid", frames)
    results = write_results(tmp_path / "merged", {"long": ["00000"]})
    assert _run(results, meta, images) == 2
    err = capsys.readouterr().err
    assert "long: 24 missing: 00001, 00002" in err and "... and 14 more" in err
    assert "00024" not in err


def test_bad_pngs_are_reported(tree, capsys):
    meta, images, results = tree
    Image.new("RGB", (W, H)).save(results / "v1/00000.png")
    Image.fromarray(np.zeros((H + 1, W), np.uint8), mode="L").save(results / "v2/00000.png")
    (results / "v3/00003.png").write_bytes(b"garbage")
    report = tool.check_results(results, meta, images, progress=False)
    assert not report.ok and len(report.bad_files) == 3
    text = tool.describe(report, results)
    assert "v1/00000.png: mode 'RGB'" in text
    assert "v2/00000.png: size 13 x 16" in text
    assert "v3/00003.png: unreadable" in text


def test_missing_inputs(tree, tmp_path: Path, capsys):
    meta, images, results = tree
    assert _run(tmp_path / "nothing", meta, images) == 2
    assert "nothing: results folder not found" in capsys.readouterr().err
    assert _run(results, tmp_path / "no_meta.json", images) == 2
    assert "no_meta.json: meta file not found" in capsys.readouterr().err
    (images / "v3/00003.jpg").unlink()
    (images / "v3").rmdir()
    assert _run(results, meta, images) == 2
    assert "image folder of video v3 not found" in capsys.readouterr().err
