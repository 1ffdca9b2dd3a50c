"""``dmm.segment`` with the authors' kind of proposal net (``--propnet`` reads a
maskrcnn-benchmark checkpoint) and with a proposal file that lacks frames (named)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from dmm.cli import run
from dmm.config import load_config
from dmm.checkpointing import save_checkpoint
from dmm.model.dmmnet import DMMNet
from dmm.proposals.legacy_net import LegacyMaskRCNN
from dmm.proposals.legacy_net.weights import benchmark_state_dict
from dmm.proposals.store import write_video_proposals
from dmm.segment import main
from dmm.structures import Proposals

SMALL = ["MODEL.BACKBONE", "resnet18", "MODEL.PRETRAINED", "none", "DATA.INPUT_H", "64", "DATA.INPUT_W", "96",
         "DEVICE", "cpu"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    cfg = load_config("synthetic", SMALL)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "epo00_iter00000"
    save_checkpoint(path, DMMNet.from_config(cfg), {}, cfg, 0, 0)
    return path


@pytest.fixture
def frames_and_mask(synthetic_root, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for jpg in sorted((next((synthetic_root / "valid" / "JPEGImages").iterdir())).iterdir())[:2]:
        shutil.copy(jpg, frames / jpg.name)
    first = np.zeros((64, 96), np.uint8)
    first[20:40, 30:60] = 1
    Image.fromarray(first).save(tmp_path / "mask.png")
    return frames, tmp_path / "mask.png"


def test_propnet_takes_a_maskrcnn_benchmark_checkpoint(checkpoint, frames_and_mask, tmp_path):
    torch.manual_seed(0)
    net = LegacyMaskRCNN("legacy_r50_fpn", 2)
    state = {f"module.{k}": v for k, v in benchmark_state_dict(net).items()}
    torch.save({"model": state}, tmp_path / "model_0172500.pth")
    frames, mask = frames_and_mask
    rc = run(main, ["--input", str(frames), "--mask", str(mask), "--checkpoint", str(checkpoint),
                    "--propnet", str(tmp_path / "model_0172500.pth"), "--propnet-size", "64", "128",
                    "--out", str(tmp_path / "out"), "--config", "synthetic", *SMALL])
    assert rc == 0
    assert sorted(p.stem for p in (tmp_path / "out" / "masks").iterdir()) == sorted(p.stem for p in frames.iterdir())


def test_proposals_missing_frames_are_named(checkpoint, frames_and_mask, tmp_path, capsys):
    frames, mask = frames_and_mask
    names = sorted(p.stem for p in frames.iterdir())
    store = tmp_path / "props"
    write_video_proposals(store / "video.pth", {names[0]: Proposals.empty((64, 96), "roi")})
    rc = run(main, ["--input", str(frames), "--mask", str(mask), "--checkpoint", str(checkpoint),
                    "--proposals", str(store), "--out", str(tmp_path / "out"), "--config", "synthetic", *SMALL])
    (line,) = capsys.readouterr().err.splitlines()
    assert rc == 2 and line.startswith("error: ") and "video.pth" in line
    assert f"1 without proposals: '{names[1]}'" in line
