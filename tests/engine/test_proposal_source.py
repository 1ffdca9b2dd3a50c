"""The evaluation proposals as the 2019 evaluator used them: every proposal of the raw file, NMS,
then the first 50 survivors in the file's order; and a frame without proposals."""

from __future__ import annotations

import json

import pytest
import torch

from dmm.cli import run
from dmm.config import load_config
from dmm.data import YouTubeVOS, frame_index
from dmm.engine.proposal_source import ProposalSource
from dmm.proposals.ops import paste_roi_masks, prepare_batch_for_matching, tight_boxes
from dmm.proposals.store import ProposalStore, write_split_proposals
from dmm.structures import Proposals

from ..tools.tool_loader import load_tool

SIZE = (64, 112)


def legacy_filter(pasted: torch.Tensor, scores: torch.Tensor, topk: int = 50, iou: float = 0.4) -> list[int]:
    """2019 ``boxlist_ops.filter_results`` written out from its rules: the tight boxes of masks > 0.4,
    maskrcnn-benchmark's NMS (boxes visited by decreasing score, areas with +1, a later box dropped
    at IoU > 0.4, the kept indices returned in ascending order), then the first ``topk``."""
    boxes = tight_boxes(pasted, 0.4).tolist()
    area = [(b[2] - b[0] + 1) * (b[3] - b[1] + 1) for b in boxes]
    order = sorted(range(len(boxes)), key=lambda k: -float(scores[k]))
    suppressed = set()
    for n, i in enumerate(order):
        if i in suppressed:
            continue
        for j in order[n + 1:]:
            w = max(0.0, min(boxes[i][2], boxes[j][2]) - max(boxes[i][0], boxes[j][0]) + 1)
            h = max(0.0, min(boxes[i][3], boxes[j][3]) - max(boxes[i][1], boxes[j][1]) + 1)
            if w * h / (area[i] + area[j] - w * h) > iou:
                suppressed.add(j)
    return [i for i in range(len(boxes)) if i not in suppressed][:topk]


def many_proposals(n: int, size: tuple[int, int], seed: int) -> Proposals:
    """``n`` roi-mode proposals of a (h, w) frame in no score order, as a detector's raw file holds them."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.8, h * 0.8])
    wh = 4 + torch.rand(n, 2, generator=g) * torch.tensor([w * 0.3, h * 0.3])
    boxes = torch.cat([xy, xy + wh], 1)
    masks = 0.2 + 0.8 * torch.rand(n, 28, 28, generator=g)
    return Proposals(boxes, torch.rand(n, generator=g), masks, size, "roi")


@pytest.fixture(scope="module")
def raw_store(synthetic_root, tmp_path_factory):
    """A split-wide file (every frame of train_all; its first frame with 100 proposals, one frame
    with none) and its reductions: TOPK all (as stored) and TOPK 50 (the best-scored)."""
    reader = YouTubeVOS(synthetic_root, "train_all")
    index = frame_index(reader)
    frames = []
    for video in sorted(index):
        size = reader.frame_size(video)
        for k, frame in enumerate(sorted(index[video])):
            frames.append(many_proposals(100 if not frames else (0 if k == 3 else 8), size, len(frames)))
    folder = tmp_path_factory.mktemp("raw") / "inference"
    folder.mkdir()
    write_split_proposals(folder / "predictions.pth", frames)
    tool = load_tool("reduce_pth_size_by_videos").main
    for topk in ("all", "50"):
        assert run(tool, [str(folder / "predictions.pth"), "train_all", topk, "--root", str(synthetic_root)]) == 0
    return folder, frames, index


def test_eval_keeps_the_first_50_nms_survivors_in_file_order(raw_store):
    folder, frames, index = raw_store
    video = sorted(index)[0]
    frame = sorted(index[video])[0]
    raw = frames[0]
    cfg = load_config(None, [])
    assert cfg.PROPOSALS.KEEP_ORDER == "stored"
    stored = ProposalStore(folder / "videos_all").get(video, frame)
    assert torch.equal(stored.scores, raw.scores)  # TOPK all: every proposal, in the file's order
    got = prepare_batch_for_matching([stored], SIZE, 0.4, 0.4, 50, cfg.PROPOSALS.KEEP_ORDER)[0]
    resized = raw.resize(SIZE)
    pasted = paste_roi_masks(resized.masks, resized.boxes, SIZE)
    want = legacy_filter(pasted, raw.scores)
    assert len(want) == 50 and want != sorted(want, key=lambda i: -float(raw.scores[i]))  # file order, not score
    assert torch.equal(got.scores, raw.scores[want])
    # the old documented path (reduce to the 50 best-scored, then NMS) keeps another set
    top50 = ProposalStore(folder / "videos_top50").get(video, frame)
    before = prepare_batch_for_matching([top50], SIZE, 0.4, 0.4, 50, "score")[0]
    assert set(before.scores.tolist()) != set(got.scores.tolist())


def test_a_frame_without_proposals_gets_the_split_last_frame(raw_store):
    folder, frames, index = raw_store
    video = sorted(index)[0]
    empty = sorted(index[video])[3]
    source = ProposalSource.for_evaluation(load_config(None, ["PROPOSALS.EVAL_DIR", str(folder / "videos_all")]).PROPOSALS)
    assert len(source.store.get(video, empty)) == 0
    got = source(video, 3, empty)
    last = frames[-1]  # the last entry of the split-wide file: the last video's last frame
    assert len(got) == len(last) > 0 and torch.equal(got.scores, last.scores) and torch.equal(got.boxes, last.boxes)
    fixed = ProposalSource(folder / "videos_all", empty_frame="empty")
    assert len(fixed(video, 3, empty)) == 0
    assert torch.equal(source(video, 1, sorted(index[video])[1]).scores, frames[1].scores)  # others as stored
    assert json.loads((folder / "videos_all" / "vidfid2index.json").read_text()) == index


def test_evaluation_without_a_videos_proposal_file_is_one_error_line(synthetic_root, synthetic_proposals, tmp_path,
                                                                     capsys):
    """``dmm.test`` on a split whose proposal folder lacks one video's file: one ``error:`` line
    naming that file; the results hold only finished videos (a rerun carries on)."""
    import shutil

    import torch

    from dmm.checkpointing import save_checkpoint
    from dmm.model.dmmnet import DMMNet
    from dmm.test import main

    small = ["MODEL.BACKBONE", "resnet18", "MODEL.PRETRAINED", "none", "DATA.INPUT_H", "64", "DATA.INPUT_W", "112",
             "DEVICE", "cpu", "DATA.ROOT", str(synthetic_root)]
    cfg = load_config("synthetic", small)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "ckpt", DMMNet.from_config(cfg), {}, cfg, 0, 0)
    props = tmp_path / "props"
    shutil.copytree(synthetic_proposals / "valid", props)
    gone = sorted(props.glob("*.pth"))[0]
    gone.unlink()
    out = tmp_path / "res" / "merged"
    code = run(main, ["--checkpoint", str(tmp_path / "ckpt"), "--split", "valid", "--out", str(out), *small,
                      "PROPOSALS.EVAL_DIR", str(props)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert code == 2 and len(err) == 1 and str(gone) in err[0], err
    reader = YouTubeVOS(synthetic_root, "valid")
    finished = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert gone.stem not in finished and set(finished) <= set(reader.videos)
    for video in finished:  # whole videos only
        assert len(list((out / video).glob("*.png"))) == len(reader.frames(video))
