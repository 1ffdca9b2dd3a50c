import json
from pathlib import Path

import numpy as np

from dmm.cli import run

from .tool_loader import load_tool

make_splits_tool = load_tool("make_splits")


def _write_fake_train(root: Path, ids: list[str]) -> dict:
    meta = {"videos": {v: {"objects": {"1": {"category": "x", "frames": ["00000"]}}} for v in ids}}
    (root / "train").mkdir(parents=True)
    (root / "train" / "meta.json").write_text(json.dumps(meta))
    return meta


def test_rule_on_3471_videos(tmp_path):
    rng = np.random.default_rng(1)
    ids = [f"{i:010x}" for i in rng.choice(10**9, 3471, replace=False)]
    meta = _write_fake_train(tmp_path / "ytvos", list(rng.permutation(ids)))
    out = tmp_path / "splits"
    assert make_splits_tool.main(["--root", str(tmp_path / "ytvos"), "--split-dir", str(out),
                                  "--index-splits"]) == 0
    ordered = sorted(ids)
    expected = {"train3k": ordered[:3000], "val200": ordered[3000:3200], "test271": ordered[3200:]}
    for stem, vids in expected.items():
        written = json.loads((out / f"{stem}_meta.json").read_text())
        assert list(written["videos"]) == vids
        assert all(written["videos"][v] == meta["videos"][v] for v in vids)


def test_small_set_with_frame_index(synthetic_root, tmp_path, capsys):
    out = tmp_path / "splits"
    assert make_splits_tool.main(["--root", str(synthetic_root), "--split-dir", str(out),
                                  "--counts", "3", "2", "--index-splits", "train", "trainval",
                                  "test271", "valid"]) == 0
    assert "the rule gives" in capsys.readouterr().err
    ids = sorted(json.loads((synthetic_root / "train" / "meta.json").read_text())["videos"])
    assert list(json.loads((out / "val200_meta.json").read_text())["videos"]) == ids[3:5]
    index = json.loads((out / "val200_vidfid2index.json").read_text())
    assert list(index) == ids[3:5]
    assert index[ids[4]]["00000"] == 8 and index[ids[3]]["00035"] == 7
    assert (out / "valid_vidfid2index.json").is_file()


def test_small_dataset_error_says_what_to_do(synthetic_root, tmp_path, capsys):
    out = tmp_path / "splits"
    assert run(make_splits_tool.main, ["--root", str(synthetic_root), "--split-dir", str(out)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: ") and "6 videos" in line and "empty" in line
    assert "--counts 4 1" in line and "train_all" in line and str(synthetic_root / "train" / "meta.json") in line
    assert not out.exists() or not any(out.iterdir())
    assert run(make_splits_tool.main, ["--root", str(tmp_path / "nowhere"), "--split-dir", str(out)]) == 2
