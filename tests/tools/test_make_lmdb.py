
import numpy as np

from dmm.cli import run
from dmm.config import load_config
from dmm.data import YouTubeVOS, build_reader

from .tool_loader import load_tool

make_lmdb_tool = load_tool("make_lmdb")


def test_lmdb_gives_identical_arrays(synthetic_root, tmp_path):
    out = tmp_path / "valid.lmdb"
    assert make_lmdb_tool.main(["--root", str(synthetic_root), "--split", "valid",
                                "--out", str(out)]) == 0
    assert run(make_lmdb_tool.main, ["--root", str(synthetic_root), "--split", "valid",
                                     "--out", str(out)]) == 2  # refuses to overwrite
    disk = YouTubeVOS(synthetic_root, "valid")
    cfg = load_config("synthetic", ["DATA.ROOT", str(synthetic_root), "DATA.LMDB", str(out)])
    cached = build_reader(cfg.DATA, "valid")
    assert cached.videos == disk.videos
    for video in disk.videos:
        assert cached.info(video) == disk.info(video)
        assert cached.annotated_frames(video) == disk.annotated_frames(video)
        for frame in disk.frames(video):
            np.testing.assert_array_equal(cached.image(video, frame), disk.image(video, frame))
            a, b = cached.annotation(video, frame), disk.annotation(video, frame)
            assert (a is None) == (b is None)
            if a is not None:
                np.testing.assert_array_equal(a, b)


def test_failed_pack_leaves_nothing(tmp_path):
    out = tmp_path / "x.lmdb"
    assert run(make_lmdb_tool.main, ["--root", str(tmp_path / "missing"), "--split", "valid",
                                     "--out", str(out)]) == 2
    assert list(tmp_path.iterdir()) == []
