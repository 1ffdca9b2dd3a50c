import json
import shutil

import numpy as np
import pytest
from PIL import Image

from dmm.config import load_config
from dmm.data import DatasetError, YouTubeVOS, build_reader
from dmm.data.synthetic import DISTRACTOR_ID_BASE


@pytest.mark.parametrize("split,folder", [("train_all", "train"), ("valid", "valid")])
def test_reader_matches_generator_record(synthetic_root, synthetic_record, split, folder):
    reader = YouTubeVOS(synthetic_root, split)
    record = synthetic_record["splits"][folder]
    assert reader.videos == sorted(record)
    for video, rec in record.items():
        info = reader.info(video)
        assert info.frames == rec["frames"]
        targets = {o["id"]: o for o in rec["objects"] if not o["distractor"] and o["first_frame"]}
        assert list(info.objects) == sorted(targets)
        for oid, obj in info.objects.items():
            assert obj.first_frame == targets[oid]["first_frame"]
            assert info.frames[obj.first_index] == obj.first_frame
            assert list(obj.frames) == targets[oid]["frames"]
        assert reader.frame_size(video) == (rec["height"], rec["width"])
        for frame in info.frames:
            inst = np.array(Image.open(synthetic_root / folder / "Instances" / video / f"{frame}.png"))
            gt = np.where(inst >= DISTRACTOR_ID_BASE, 0, inst)
            ann = reader.annotation(video, frame)
            if split == "train_all":
                np.testing.assert_array_equal(ann, gt)
            else:
                new = [o for o, i in info.objects.items() if i.first_frame == frame]
                if not new:
                    assert ann is None
                else:
                    np.testing.assert_array_equal(ann, np.where(np.isin(gt, new), gt, 0))
        image = reader.image(video, info.frames[0])
        assert image.shape == (rec["height"], rec["width"], 3) and image.dtype == np.uint8


def test_late_and_noncontiguous_objects(late_ytvos):
    reader = YouTubeVOS(late_ytvos, "valid")
    info = reader.info("vlate")
    assert info.frames == ["00000", "00005", "00010", "00015"]
    assert list(info.objects) == [3, 7]
    assert (info.objects[3].first_frame, info.objects[3].first_index) == ("00000", 0)
    assert (info.objects[7].first_frame, info.objects[7].first_index) == ("00010", 2)
    assert info.first_appearances() == {"00000": [3], "00010": [7]}
    assert reader.annotation("vlate", "00005") is None
    assert set(np.unique(reader.annotation("vlate", "00010"))) == {0, 7}


def test_build_reader_from_config(synthetic_root):
    cfg = load_config("synthetic", ["DATA.ROOT", str(synthetic_root)])
    reader = build_reader(cfg.DATA, "valid")
    assert isinstance(reader, YouTubeVOS) and reader.videos


# ---- bad input --------------------------------------------------------------------------


def _meta(root, split="train"):
    return json.loads((root / split / "meta.json").read_text())


def _write_meta(root, meta, split="train"):
    (root / split / "meta.json").write_text(json.dumps(meta))


def test_frame_in_meta_missing_on_disk(small_train):
    (small_train / "train" / "JPEGImages" / "a" / "00010.jpg").unlink()
    with pytest.raises(DatasetError, match=r"00010.*video 'a'|a/00010\.jpg"):
        YouTubeVOS(small_train, "train_all").info("a")


def test_annotation_size_differs(small_train):
    Image.new("P", (10, 10)).save(small_train / "train" / "Annotations" / "a" / "00005.png")
    reader = YouTubeVOS(small_train, "train_all")
    with pytest.raises(DatasetError, match=r"a/00005\.png.*size"):
        reader.annotation("a", "00005")


def test_rgb_annotation(small_train):
    Image.new("RGB", (32, 24)).save(small_train / "train" / "Annotations" / "b" / "00000.png")
    with pytest.raises(DatasetError, match=r"b/00000\.png.*'RGB'"):
        YouTubeVOS(small_train, "train_all").info("b")


def test_object_never_annotated(small_train):
    meta = _meta(small_train)
    meta["videos"]["b"]["objects"]["9"] = {"category": None, "frames": ["00000"]}
    _write_meta(small_train, meta)
    with pytest.raises(DatasetError, match=r"video 'b'.*object 9.*never present"):
        YouTubeVOS(small_train, "train_all").info("b")


def test_meta_first_frame_without_object(small_train):
    meta = _meta(small_train)
    meta["videos"]["b"]["objects"]["5"]["frames"] = ["00005", "00000"]
    meta["videos"]["a"]["objects"]["1"]["frames"] = ["00005"]
    _write_meta(small_train, meta)
    mask = np.zeros((24, 32), np.uint8)
    mask[12:20, 16:28] = 2
    from dmm.data.palette import save_palette_png
    save_palette_png(small_train / "train" / "Annotations" / "a" / "00005.png", mask)
    with pytest.raises(DatasetError, match=r"a/00005\.png.*object 1"):
        YouTubeVOS(small_train, "train_all").info("a")


def test_corrupt_jpeg(small_train):
    path = small_train / "train" / "JPEGImages" / "a" / "00005.jpg"
    path.write_bytes(path.read_bytes()[:60])
    reader = YouTubeVOS(small_train, "train_all")
    with pytest.raises(DatasetError, match=r"a/00005\.jpg.*corrupt"):
        reader.image("a", "00005")


def test_empty_split(small_train):
    _write_meta(small_train, {"videos": {}})
    with pytest.raises(DatasetError, match=r"meta\.json.*no videos"):
        YouTubeVOS(small_train, "train_all")


def test_video_missing_and_meta_missing(small_train, tmp_path):
    shutil.rmtree(small_train / "train" / "JPEGImages" / "b")
    with pytest.raises(DatasetError, match=r"'b'"):
        YouTubeVOS(small_train, "train_all")
    with pytest.raises(DatasetError, match=r"train3k_meta\.json.*make_splits"):
        YouTubeVOS(small_train, "train", split_dir=tmp_path / "nosplits")
    with pytest.raises(DatasetError, match="unknown split"):
        YouTubeVOS(small_train, "bogus")


def _paint(root, video, frame, oid, box=(0, 0, 3, 3)):
    """Paint object ``oid`` into an annotation of the train split."""
    path = root / "train" / "Annotations" / video / f"{frame}.png"
    mask = np.array(Image.open(path))
    y0, x0, y1, x1 = box
    mask[y0:y1, x0:x1] = oid
    from dmm.data.palette import save_palette_png
    save_palette_png(path, mask)
    return path


def test_object_painted_but_missing_from_meta(small_train):
    path = _paint(small_train, "a", "00000", 4)
    with pytest.raises(DatasetError) as err:
        YouTubeVOS(small_train, "train_all").info("a")
    message = str(err.value)
    for needle in (str(path), "video 'a'", "frame '00000'", "object id 4", "meta.json"):
        assert needle in message, (needle, message)


def test_object_painted_in_a_later_frame_is_caught_when_read(small_train):
    path = _paint(small_train, "b", "00010", 6)
    reader = YouTubeVOS(small_train, "train_all")
    with pytest.raises(DatasetError, match=rf"{path}.*video 'b' frame '00010'.*object id 6"):
        reader.annotation("b", "00010")
    assert reader.annotation("b", "00005") is not None
