"""One error path: every command of this area prints one ``error:`` line and exits 2 on bad input,
keeping tracebacks for bugs (and for ``--debug``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dmm.cli import run
from dmm.errors import InputError

REPO = Path(__file__).resolve().parents[1]

#: (command line after the interpreter, text the error line must hold); {tmp} is a fresh folder.
COMMANDS = [
    (["-m", "dmm.metrics", "--gt-dir", "{tmp}/gt", "--results-dir", "{tmp}/res"], "{tmp}/gt"),
    (["-m", "dmm.proposals.extract", "--root", "{tmp}/ytb", "--split", "valid", "--out", "{tmp}/o",
      "--weights", "none"], "{tmp}/ytb/valid/meta.json"),
    (["-m", "dmm.proposals.train_propnet", "--root", "{tmp}/ytb", "--out", "{tmp}/o"], "{tmp}/ytb/train/meta.json"),
    (["-m", "dmm.proposals.synthetic", "--root", "{tmp}/syn", "--out", "{tmp}/o"], "{tmp}/syn/train/Instances"),
    (["-m", "dmm.data.synthetic", "--root", "{tmp}"], "{tmp} already exists"),
    (["src/tools/make_splits.py", "--root", "{tmp}/ytb"], "{tmp}/ytb/train/meta.json"),
    (["src/tools/reduce_pth_size_by_videos.py", "{tmp}/p.pth", "valid", "5", "--root", "{tmp}/ytb"],
     "predictions file {tmp}/p.pth does not exist"),
    (["src/tools/make_lmdb.py", "--root", "{tmp}/ytb", "--split", "valid", "--out", "{tmp}/x.lmdb"],
     "{tmp}/ytb/valid/meta.json"),
    (["src/tools/make_train_online_dataset.py", "--source", "{tmp}/ytb/valid", "--out", "{tmp}/o"],
     "{tmp}/ytb/valid: source split folder not found"),
    (["src/tools/check_submission.py", "{tmp}/res", "--meta", "{tmp}/m.json", "--images", "{tmp}"],
     "{tmp}/res: results folder not found"),
    (["-m", "dmm.test", "--checkpoint", "{tmp}/nothing", "DEVICE", "cpu"], "{tmp}/nothing"),
    (["-m", "dmm.train", "--config", "synthetic", "SOLVER.NO_SUCH_KEY", "1"], "SOLVER.NO_SUCH_KEY"),
    (["-m", "dmm.segment", "--input", "{tmp}/frames", "--mask", "{tmp}/m.png", "--checkpoint", "{tmp}/c",
      "--proposals", "{tmp}", "--out", "{tmp}/o"], "{tmp}/frames"),
]


@pytest.mark.parametrize("args, needle", COMMANDS, ids=[c[0][1] if c[0][0] == "-m" else c[0][0] for c in COMMANDS])
def test_bad_input_is_one_error_line(tmp_path: Path, args: list[str], needle: str):
    argv = [a.format(tmp=tmp_path) for a in args]
    done = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert needle.format(tmp=tmp_path) in lines[0]


def _bad(argv: list[str]) -> None:
    raise InputError(f"{argv[0]}: not a video")


def _bug(argv: list[str]) -> None:
    raise ZeroDivisionError("a bug")


def test_run_prints_dmm_errors_and_keeps_bugs(capsys):
    assert run(_bad, ["clip.mp4"]) == 2
    assert capsys.readouterr().err == "error: clip.mp4: not a video\n"
    assert run(_bad, ["clip.mp4", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("error: clip.mp4: not a video\n")
    with pytest.raises(ZeroDivisionError):
        run(_bug, [])


def test_a_learning_rate_beyond_float32_is_one_error_line_naming_the_key(capsys):
    from dmm.train import main

    assert run(main, ["--config", "synthetic", "SOLVER.BACKBONE_LR", "1e39"]) == 2
    assert capsys.readouterr().err == ("error: config key SOLVER.BACKBONE_LR = 1e+39 is impossible: it must be finite and "
                                       "within float32's range (|x| <= 3.4028234663852886e+38)\n")


def test_options_may_follow_key_value_overrides():
    from dmm.test import parse_args

    args = parse_args(["--checkpoint", "X", "DATA.ROOT", "d", "--out", "o", "DEVICE", "cpu", "--max-videos", "2"])
    assert (args.checkpoint, args.out, args.max_videos) == ("X", "o", 2)
    assert args.opts == ["DATA.ROOT", "d", "DEVICE", "cpu"]
    negative = parse_args(["--checkpoint", "X", "MATCHING.LR", "-0.5"])  # a negative value stays a value
    assert negative.opts == ["MATCHING.LR", "-0.5"]


@pytest.mark.parametrize("option", ["--max-videos", "--videos"])
def test_a_negative_video_count_is_an_error(tmp_path, capsys, option):
    from dmm.test import main

    out = tmp_path / "out"
    assert run(main, ["--checkpoint", str(tmp_path / "ckpt"), option, "-1", "--out", str(out), "DEVICE", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == "error: --max-videos -1: a count of videos must be >= 0 (0: all)"
    assert not out.exists()


def test_dmm_test_videos_is_the_deprecated_spelling_of_max_videos(capsys):
    from dmm.test import parse_args

    assert parse_args(["--videos", "3"]).max_videos == 3
    assert "--videos N is deprecated here, use --max-videos 3" in capsys.readouterr().err
    assert parse_args(["--max-videos", "3"]).max_videos == 3
    assert capsys.readouterr().err == ""


def test_sizes_in_messages_are_height_by_width(tmp_path):
    import numpy as np
    from PIL import Image

    from dmm.segment import read_first_mask

    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "m.png")
    with pytest.raises(InputError, match=r"m\.png: mask is 20 x 30, the first frame 40 x 50$"):
        read_first_mask(tmp_path / "m.png", (40, 50))
