import numpy as np
import pytest

from dmm.data import DatasetError, YouTubeVOS, frame_index, resolve_split
from dmm.data.splits import split_video_ids


def test_split_rule_on_3471_ids():
    rng = np.random.default_rng(0)
    ids = ["".join(f"{b:02x}" for b in rng.integers(0, 256, 5)) for _ in range(3471)]
    assert len(set(ids)) == 3471
    out = split_video_ids(rng.permutation(ids).tolist())
    ordered = sorted(ids)
    assert out["train3k"] == ordered[:3000]
    assert out["val200"] == ordered[3000:3200]
    assert out["test271"] == ordered[3200:]
    assert [len(v) for v in out.values()] == [3000, 200, 271]


def test_split_rule_small_and_empty():
    out = split_video_ids(["c", "a", "b", "e", "d"], counts=(2, 2))
    assert out == {"train3k": ["a", "b"], "val200": ["c", "d"], "test271": ["e"]}
    with pytest.raises(DatasetError, match="val200, test271 empty with only 40 videos"):
        split_video_ids([f"v{i:02d}" for i in range(40)])


def test_resolve_split(tmp_path):
    p = resolve_split(tmp_path, "trainval", tmp_path / "s")
    assert p.images_dir == tmp_path / "train" and p.meta_path == tmp_path / "s" / "val200_meta.json"
    p = resolve_split(tmp_path, "train_all", "x")
    assert p.images_dir == tmp_path / "train" and p.meta_path == tmp_path / "train" / "meta.json"
    assert resolve_split(tmp_path, "valid", "x").images_dir == tmp_path / "valid"
    assert resolve_split(tmp_path, "train_testdev_ot", "x").images_dir == tmp_path / "train_testdev_ot"


def test_frame_index_order(synthetic_root):
    reader = YouTubeVOS(synthetic_root, "train_all")
    index = frame_index(reader)
    assert list(index) == sorted(reader.videos)
    flat = [(v, f) for v in sorted(reader.videos) for f in sorted(reader.frames(v))]
    assert [index[v][f] for v, f in flat] == list(range(len(flat)))
