"""Files in the layouts the authors released, written by the project's own writers: split-wide
``predictions.pth`` files, DMM-Net checkpoint folders (``trainer.pt``; ``encoder.pt`` +
``decoder.pt``; with 2019's ``enc_opt.pt`` + ``dec_opt.pt``), the RVOS one-shot model and a
maskrcnn-benchmark proposal-net checkpoint. The DMM-Net files are ResNet-18 shaped (the configs
take ``MODEL.BACKBONE resnet18``), so a workflow runs in seconds per step on a CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image

from dmm.config import get_cfg_defaults
from dmm.data import YouTubeVOS, frame_index
from dmm.model import DMMNet
from dmm.proposals.legacy_net import LegacyMaskRCNN
from dmm.proposals.legacy_net.weights import benchmark_state_dict
from tests.model.test_checkpoint import legacy_optimizers, write_rvos_model

WRITER = Path(__file__).with_name("predictions_writer.py")
BACKBONE = "resnet18"


def small_model(seed: int) -> DMMNet:
    cfg = get_cfg_defaults()
    cfg.MODEL.BACKBONE, cfg.MODEL.PRETRAINED = BACKBONE, "none"
    torch.manual_seed(seed)
    return DMMNet.from_config(cfg)


def write_predictions(path: Path, root: Path, split: str, split_dir: Path, per_frame: int, seed: int) -> int:
    """``path``: the split's ``predictions.pth`` (one BoxList of ``per_frame`` detections per frame,
    in frame-index order, each at its frame's size); returns the number of frames."""
    reader = YouTubeVOS(root, split, split_dir=split_dir)
    sizes = []
    for video, frames in frame_index(reader).items():
        for frame in sorted(frames, key=frames.get):
            with Image.open(reader.paths.images_dir / "JPEGImages" / video / f"{frame}.jpg") as im:
                sizes.append(list(im.size))
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = path.with_suffix(".frames.json")
    spec.write_text(json.dumps(sizes))
    subprocess.run([sys.executable, str(WRITER), str(path), str(spec), str(per_frame), str(seed)], check=True)
    spec.unlink()
    return len(sizes)


def write_dmmnet(folder: Path, layout: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A released DMM-Net checkpoint folder: ``trainer.pt`` (a bare state dict), or ``pair``
    (``encoder.pt`` + ``decoder.pt``), or ``pair+opt`` (with 2019's ``enc_opt.pt`` + ``dec_opt.pt``:
    the 1-epoch ResNet-101 stage model that online training starts from). Returns the weights."""
    folder.mkdir(parents=True)
    model = small_model(seed)
    state = model.state_dict()
    if layout == "trainer":
        torch.save(state, folder / "trainer.pt")
        return state
    for part in ("encoder", "decoder"):
        torch.save({k[len(part) + 1:]: v for k, v in state.items() if k.startswith(part + ".")}, folder / f"{part}.pt")
    if layout == "pair+opt":
        for name, opt in legacy_optimizers(model).items():
            saved = opt.state_dict()
            for entry in saved["state"].values():
                entry["step"] = int(entry["step"])  # torch 1.1 kept the step as a plain int
            torch.save(saved, folder / f"{name[:3]}_opt.pt")
    return state


def write_rvos(folder: Path) -> None:
    """The RVOS one-shot YouTube-VOS model's ``encoder.pt`` + ``decoder.pt`` (no prop necks)."""
    write_rvos_model(small_model(1), folder)


def write_propnet(path: Path) -> None:
    """A maskrcnn-benchmark checkpoint (``{"model": {"module.<key>": ...}}``) of a binary R-50-FPN
    Mask R-CNN, as ``tools/train_net.py`` saved the authors' proposal nets."""
    torch.manual_seed(0)
    state = benchmark_state_dict(LegacyMaskRCNN("legacy_r50_fpn", 2))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "iteration": 172500}, path)
