"""The end-to-end command (``python -m dmm.pipeline``) at a tiny size."""

import json
from pathlib import Path

import pytest

from dmm.errors import InputError
from dmm.pipeline import main


def test_tiny_pipeline_prints_the_table_and_writes_every_output(tmp_path, monkeypatch, capsys):
    """From the repository root (here tmp_path), ``--tiny`` writes only under its own
    ``*synthetic_tiny`` folders, never the real run's."""
    monkeypatch.chdir(tmp_path)
    root, props, out = (Path("datasets/synthetic_tiny"), Path("experiments/proposals/synthetic_tiny"),
                        Path("experiments/dmmnet/synthetic_tiny"))
    opts = ["DEVICE", "cpu"]
    assert main(["--tiny", "--gifs", "1", *opts]) == 0
    printed = capsys.readouterr().out
    for row in ("DMM-Net (trained here)", "first-frame mask copied", "proposal IoU + Hungarian"):
        assert row in printed
    assert "J_mean" in printed and "F_decay" in printed
    results = out / "eval" / "valid"
    scores = json.loads((results / "scores.json").read_text())
    assert set(scores) == {"dmmnet", "copy_first", "iou_hungarian"}
    for method, summary in scores.items():
        assert 0.0 <= summary["JF_mean"] <= 1.0, method
        videos = sorted(p.name for p in (results / method).iterdir())
        assert videos == sorted(p.name for p in (root / "valid" / "JPEGImages").iterdir())
    for name in ("scores.md", "jf_per_video.png", "config.yaml"):
        assert (results / name).is_file(), name
    assert len(list((results / "overlays").glob("*.gif"))) == 1
    assert (out / "loss_curves.png").is_file()
    # a rerun finds everything done and reprints the same table
    assert main(["--tiny", "--gifs", "1", *opts]) == 0
    again = capsys.readouterr().out
    assert "synthetic dataset found" in again
    assert json.loads((results / "scores.json").read_text()) == scores
    assert sorted(p.name for p in props.iterdir()) == ["train", "valid"]
    for parent in ("datasets", "experiments/proposals", "experiments/dmmnet"):
        assert [p.name for p in (tmp_path / parent).iterdir()] == ["synthetic_tiny"], parent

    # the real run (scripts/run_synthetic.sh) never continues the tiny one: the key is named
    with pytest.raises(InputError, match=r"OUTPUT_DIR experiments/dmmnet/synthetic_tiny holds a run made with "
                                         r"DATA\.INPUT_H 64, this run's config has 128"):
        main(["OUTPUT_DIR", str(out), "DEVICE", "cpu"])
    with pytest.raises(InputError, match=r"DATA\.ROOT datasets/synthetic_tiny holds a synthetic dataset drawn "
                                         r"with num_train 6, this run wants 40"):
        main(["DATA.ROOT", str(root), "DEVICE", "cpu"])
    assert not Path("datasets/synthetic").exists()


def test_a_folder_the_pipeline_did_not_create_is_never_overwritten(tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    (root / "thesis.tex").write_text("keep me")
    with pytest.raises(InputError, match=r"not empty and holds no synthetic dataset"):
        main(["--tiny", "DATA.ROOT", str(root), "OUTPUT_DIR", str(tmp_path / "run"), "DEVICE", "cpu"])
    assert sorted(p.name for p in root.iterdir()) == ["thesis.tex"]

