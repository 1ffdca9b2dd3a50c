import numpy as np
import pytest

from dmm.data import DAVIS, DatasetError

from .data_writers import box_mask, write_video


@pytest.fixture
def davis_root(tmp_path):
    size = (20, 36)
    res = "480p"
    for video, n in (("bear", 3), ("camel", 2)):
        masks = {f"{k:05d}": box_mask(size, {1: (1, 1 + k, 8, 9 + k)}) for k in range(n)}
        if video == "bear":
            masks["00001"] = box_mask(size, {1: (1, 2, 8, 10), 4: (10, 20, 18, 30)})
        write_video(tmp_path, video, masks, image_dir=f"JPEGImages/{res}",
                    annotation_dir=f"Annotations/{res}")
    (tmp_path / "ImageSets" / "2017").mkdir(parents=True)
    (tmp_path / "ImageSets" / "2017" / "val.txt").write_text("camel\nbear\n")
    (tmp_path / "ImageSets" / "2017" / "empty.txt").write_text("\n")
    return tmp_path


def test_davis_reader(davis_root):
    reader = DAVIS(davis_root, "val")
    assert reader.videos == ["bear", "camel"]
    info = reader.info("bear")
    assert info.frames == ["00000", "00001", "00002"]
    assert list(info.objects) == [1, 4]
    assert info.objects[4].first_frame == "00001" and info.objects[4].first_index == 1
    assert info.objects[1].frames == ("00000", "00001", "00002")
    assert reader.frame_size("camel") == (20, 36)
    assert reader.image("bear", "00000").shape == (20, 36, 3)
    ann = reader.annotation("bear", "00001")
    assert ann.dtype == np.uint8 and set(np.unique(ann)) == {0, 1, 4}


def test_davis_bad_input(davis_root):
    with pytest.raises(DatasetError, match=r"train\.txt"):
        DAVIS(davis_root, "train")
    with pytest.raises(DatasetError, match=r"empty\.txt.*no videos"):
        DAVIS(davis_root, "empty")
