import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dmm.cli import run
from dmm.data import YouTubeVOS, frame_index
from dmm.data.synthetic import SyntheticConfig, generate
from dmm.proposals.store import ProposalStore, write_split_proposals
from dmm.structures import Proposals

from .tool_loader import load_tool, tool_path

REPO = Path(__file__).resolve().parents[2]
TOOL = tool_path("reduce_pth_size_by_videos")
WRITER = REPO / "tests" / "proposals" / "legacy_writer.py"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("reduce") / "data"
    generate(root, SyntheticConfig(num_train=3, num_valid=1, num_frames=4, height=64, width=96,
                                   seed=2, max_targets=2), progress=False)
    return root


def run_tool(*args):
    """The exact command line, in a subprocess."""
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True,
                          text=True)



def run_main(capsys, *args):
    """The tool's main() in this process (faster), as its command line runs it: returns
    (exit code, stderr)."""
    code = run(load_tool("reduce_pth_size_by_videos").main, [str(a) for a in args])
    return code, capsys.readouterr().err


def test_legacy_file_to_per_video_store(root, tmp_path, capsys):
    pred = tmp_path / "inference" / "predictions.pth"
    pred.parent.mkdir()
    subprocess.run([sys.executable, str(WRITER), str(pred), "12", "0", "legacy"], check=True)
    r = run_tool(pred, "train_all", 4, "--root", root)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "inference" / "videos_top4"
    index = json.loads((out / "vidfid2index.json").read_text())
    assert index == frame_index(YouTubeVOS(root, "train_all"))
    store = ProposalStore(out)
    assert store.videos == sorted(index)
    counts = [len(store.get(v, f)) for v in sorted(index) for f in sorted(index[v])]
    assert counts == [min(k, 4) for k in [0, 3, 6, 9] * 3]  # the writer's i % 4 * 3 detections
    # kept the best by score, in decreasing order
    v0 = sorted(index)[0]
    best = store.get(v0, sorted(index[v0])[3])
    assert (best.scores[:-1] >= best.scores[1:]).all()

    code, err = run_main(capsys, pred, "train_all", 4, "--root", root)
    assert code != 0 and "--overwrite" in err
    assert run_main(capsys, pred, "train_all", 4, "--root", root, "--overwrite")[0] == 0
    assert ProposalStore(out).videos == sorted(index)


def test_project_split_format_and_length_check(root, tmp_path, capsys):
    n = sum(len(f) for f in frame_index(YouTubeVOS(root, "train_all")).values())
    frames = [Proposals(torch.tensor([[0.0, 0, 5, 5]] * 3), torch.tensor([0.1, 0.9, 0.5]) + i,
                        torch.rand(3, 28, 28), (64, 96), "roi") for i in range(n)]
    pred = tmp_path / "predictions.pth"
    write_split_proposals(pred, frames)
    code, err = run_main(capsys, pred, "train_all", 2, "--root", root)
    assert code == 0, err
    store = ProposalStore(tmp_path / "videos_top2")
    v = store.videos[1]
    index = json.loads((tmp_path / "videos_top2" / "vidfid2index.json").read_text())
    f = sorted(index[v])[2]
    got = store.get(v, f)
    assert got.scores.tolist() == pytest.approx([0.9 + index[v][f], 0.5 + index[v][f]])

    write_split_proposals(pred, frames[:-1])
    code, err = run_main(capsys, pred, "train_all", 2, "--root", root, "--out", tmp_path / "other")
    assert code != 0 and f"{n - 1} frames" in err and str(n) in err
    assert not (tmp_path / "other").exists()
    code, err = run_main(capsys, tmp_path / "missing.pth", "train_all", 2, "--root", root)
    assert code != 0 and "missing.pth" in err


def test_non_finite_entry_names_video_frame_and_file(root, tmp_path, capsys):
    pred = tmp_path / "predictions.pth"
    subprocess.run([sys.executable, str(WRITER), str(pred), "12", "0", "nan"], check=True)
    index = frame_index(YouTubeVOS(root, "train_all"))
    video = sorted(index)[0]
    frame = sorted(index[video])[1]
    code, err = run_main(capsys, pred, "train_all", 4, "--root", root)
    assert code == 2
    (line,) = [line for line in err.splitlines() if "error" in line]  # besides tqdm's bar
    assert line.startswith("error: non-finite") and "masks" in line
    assert f"video {video!r} frame {frame!r} (entry 1 of {pred})" in line
    assert not (tmp_path / "videos_top4").exists()


def test_split_names_of_the_paper_on_a_small_dataset(root, tmp_path, capsys):
    n = sum(len(f) for f in frame_index(YouTubeVOS(root, "train_all")).values())
    pred = tmp_path / "predictions.pth"
    write_split_proposals(pred, [Proposals.empty((64, 96), "roi")] * n)
    # no train3k / val200 files for a small dataset: the error says to use train_all
    code, err = run_main(capsys, pred, "train", 2, "--root", root, "--split-dir", tmp_path / "splits")
    assert code == 2 and "train3k_meta.json" in err and "train_all" in err and str(root / "train") in err
    # split files made with small counts, but the predictions cover all of train
    make_splits = load_tool("make_splits")
    assert make_splits.main(["--root", str(root), "--split-dir", str(tmp_path / "splits"), "--counts", "1", "1",
                             "--index-splits"]) == 0
    code, err = run_main(capsys, pred, "train", 2, "--root", root, "--split-dir", tmp_path / "splits")
    assert code == 2 and f"holds {n} frames" in err and "train_all" in err


def test_a_bad_topk_and_a_missing_predictions_file_come_first(root, tmp_path, capsys):
    """The project's TOPK message (not argparse's), and the missing input file before the split."""
    code, err = run_main(capsys, tmp_path / "p.pth", "trainval", "fifty", "--root", tmp_path / "none")
    assert code == 2 and err == "error: TOPK must be a positive number of proposals or 'all', got 'fifty'\n"
    code, err = run_main(capsys, tmp_path / "p.pth", "trainval", "5", "--root", tmp_path / "none")
    assert code == 2 and err == f"error: predictions file {tmp_path / 'p.pth'} does not exist\n"
