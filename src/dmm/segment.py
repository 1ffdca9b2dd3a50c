"""Segment your own video with a trained DMM-Net.

``python -m dmm.segment --input FRAMES_DIR_OR_VIDEO --mask FIRST_MASK.png --checkpoint CKPT
(--proposals DIR | --propnet PROPNET.pth) --out OUT [--config NAME] [KEY VALUE ...]``

The input is a folder of frames (jpg/png, sorted by name) or a video file OpenCV can read; the
frames go straight to the tracker, one at a time. The mask is a PNG of the first frame: a
palette or grayscale image of object ids (0 = background), or a black-and-white mask of one
object (a grey mask, anti-aliased edges included, is thresholded at half). Every object of the
mask is tracked and label maps are made at the frame's resolution (``MODEL.OBJECTS all``,
``TEST.LABELS_AT frame``; override them like any key). Proposals come from a folder holding ``<name>.pth``
(this project's per-video store: looked up by frame name for a folder of frames, by position
for a video file) or are computed frame by frame with a proposal-net checkpoint.

Without ``--config``, the ``config.yaml`` saved beside a checkpoint of this project is used
(else the package config ``eval``). Writes ``OUT/masks/<frame>.png`` (palette PNGs at the
input's size) and ``OUT/overlay.gif`` (or ``.mp4`` with ``--overlay mp4``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch
from PIL import Image

from .cli import add_overrides, command_parser, run
from .data.frames import FrameInput, frame_input
from .device import resolve_device
from .engine.build import inference_config, inference_model
from .engine.inference import propagate
from .engine.results import ResultWriter
from .engine.proposal_source import ProposalSource
from .engine.tracker import DMMTracker
from .engine.visualize import write_overlay_animation
from .errors import InputError, MissingInputError, size_text
from .proposals.extract import detect_frames
from .proposals.model import ARCHS, load_propnet
from .structures import ObjectInfo, Proposals, SlotRule, VideoInfo

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
#: a grayscale mask whose values all stay at or below this is read as object ids
MAX_GREY_ID = 31


def _frame_files(source: Path) -> list[Path]:
    files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{source}: no frames (jpg/png) in this folder")
    return files


def _open_video(source: Path) -> cv2.VideoCapture:
    if not source.is_file():
        raise MissingInputError(f"{source}: no such frame folder or video file")
    cap = cv2.VideoCapture(str(source))
    if not cap.isOpened():
        raise InputError(f"{source}: OpenCV cannot open this video")
    return cap


def frame_names(source: Path) -> list[str]:
    """The names of the frames of a folder (file stems) or a video file (``00000``, ``00001``, ...)."""
    if source.is_dir():
        return [f.stem for f in _frame_files(source)]
    cap = _open_video(source)
    count = 0
    try:
        while cap.grab():
            count += 1
    finally:
        cap.release()
    if count == 0:
        raise InputError(f"{source}: the video has no readable frame")
    return [f"{i:05d}" for i in range(count)]


def read_frames(source: Path) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(name, (h, w, 3) uint8 RGB)`` from a folder of images or a video file."""
    if source.is_dir():
        for f in _frame_files(source):
            image = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if image is None:
                raise InputError(f"{f}: cannot read this image")
            yield f.stem, cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return
    cap = _open_video(source)
    index = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            yield f"{index:05d}", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        cap.release()
    if index == 0:
        raise InputError(f"{source}: the video has no readable frame")


def read_first_mask(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, str | None]:
    """(h, w) uint8 object ids of the first frame, and a note when the mask was reinterpreted.

    A palette PNG holds ids. A grayscale (or colour) image whose values all stay at or below
    :data:`MAX_GREY_ID` holds ids too; any other grayscale image is one object's mask,
    thresholded at half (a 0/255 mask, or one whose edges a drawing tool anti-aliased).
    """
    try:
        with Image.open(path) as im:
            palette = im.mode == "P"
            if im.mode not in ("P", "L", "1"):
                im = im.convert("L")
            mask = np.array(im).astype(np.uint8)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read the mask ({e})") from None
    if mask.shape != size:
        raise InputError(f"{path}: mask is {size_text(mask.shape)}, the first frame {size_text(size)}")
    note = None
    if not palette and mask.max() > MAX_GREY_ID:
        levels = len(np.unique(mask))
        mask = (mask >= 128).astype(np.uint8)
        note = (f"{path}: read as one object's black-and-white mask ({levels} grey levels, thresholded at 128); "
                f"save a palette PNG or ids 1..{MAX_GREY_ID} for several objects")
    if not mask.any():
        raise InputError(f"{path}: the mask has no object (every pixel is 0)")
    return mask, note


class LiveProposals:
    """A ``ProposalFn`` that runs a proposal net on each frame as it streams past."""

    def __init__(self, propnet, device: torch.device):
        self.propnet = propnet.to(device).eval()
        self.device = device
        self._images: dict[int, np.ndarray] = {}

    def remember(self, index: int, image: np.ndarray) -> None:
        self._images[index] = image

    @torch.no_grad()
    def __call__(self, video: str, index: int, name: str) -> Proposals:
        return detect_frames(self.propnet, [self._images.pop(index)])[0]


def parse_args(argv=None) -> argparse.Namespace:
    p = command_parser("python -m dmm.segment", __doc__)
    p.add_argument("--input", required=True, type=Path, help="folder of frames, or a video file")
    p.add_argument("--mask", required=True, type=Path, help="PNG of the first frame's object ids")
    p.add_argument("--checkpoint", required=True, help="DMM-Net checkpoint (folder or trainer.pt)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--proposals", type=Path, help="(or --propnet) folder with <name>.pth proposals")
    src.add_argument("--propnet", type=Path,
                     help="(or --proposals) proposal net to compute proposals: the authors' maskrcnn-benchmark checkpoint or "
                          "Detectron pickle, a torchvision state dict, or this project's checkpoint")
    p.add_argument("--propnet-arch", default="auto", choices=("auto", *ARCHS),
                   help="architecture of --propnet (auto: read from the file)")
    p.add_argument("--propnet-size", type=int, nargs=2, default=(800, 1333), metavar=("MIN", "MAX"),
                   help="the proposal net's input resize (shorter side, longer side cap)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--name", default="video", help="name of the video (the proposal file's stem)")
    p.add_argument("--config", default=None,
                   help="config the checkpoint was trained with (default: its config.yaml, else eval)")
    p.add_argument("--overlay", choices=("gif", "mp4"), default="gif",
                   help="the animation of the frames with their masks drawn over them")
    add_overrides(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    names = frame_names(args.input)
    first = next(read_frames(args.input))[1]
    mask, note = read_first_mask(args.mask, first.shape[:2])
    if note:
        print(note)
    # every object of the mask, and label maps at the frame's own resolution (overridable)
    cfg = inference_config(args.config, args.checkpoint, ["MODEL.OBJECTS", "all", "TEST.LABELS_AT", "frame", *args.opts])
    device = resolve_device(cfg.DEVICE)
    live = None
    if args.proposals is not None:
        # your own video: no split whose last frame could stand in for a frame without proposals
        proposal_fn = ProposalSource(args.proposals, by_position=not args.input.is_dir(), empty_frame="empty")
        if args.name not in proposal_fn.store:
            raise MissingInputError(f"{proposal_fn.store.path(args.name)} not found (proposals are looked up by --name)")
        proposal_fn.store.check_frames(args.name, names, by_position=proposal_fn.by_position)
    else:
        # the 2019 test-dev extraction's settings (SCORE_THRESH 0.0, DETECTIONS_PER_IMG 50)
        propnet = load_propnet(args.propnet, args.propnet_arch, min_size=args.propnet_size[0],
                               max_size=args.propnet_size[1], score_thresh=0.0,
                               detections_per_img=cfg.PROPOSALS.TOPK)
        proposal_fn = live = LiveProposals(propnet, device)
    model = inference_model(cfg, args.checkpoint, device)
    size = (cfg.DATA.INPUT_H, cfg.DATA.INPUT_W)

    objects = {int(i): ObjectInfo(int(i), names[0], 0) for i in np.unique(mask) if i}
    info = VideoInfo(args.name, names, objects)

    def frames() -> Iterator[FrameInput]:
        for index, (name, image) in enumerate(read_frames(args.input)):
            if live is not None:
                live.remember(index, image)
            yield frame_input(index, name, image, mask if index == 0 else None, size, cfg.DATA.MEAN, cfg.DATA.STD,
                              cfg.DATA.IMAGE_RESIZE)

    masks = args.out / "masks"
    work = args.out / ".results"
    shutil.rmtree(work, ignore_errors=True)
    with ResultWriter(work) as writer:
        for result in propagate(DMMTracker(model), [(info, frames())], proposal_fn, size, cfg.PROPOSALS,
                                slots=SlotRule.from_config(cfg),
                                labels_at=cfg.TEST.LABELS_AT, device=device):
            writer.write(result)
    if masks.exists():
        shutil.rmtree(masks)
    (work / args.name).rename(masks)
    shutil.rmtree(work, ignore_errors=True)
    overlay = write_overlay_animation([image for _, image in read_frames(args.input)], [masks], names,
                                      args.out / f"overlay.{args.overlay}", titles=["DMM-Net"])
    print(f"masks: {masks}\noverlay: {overlay}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
