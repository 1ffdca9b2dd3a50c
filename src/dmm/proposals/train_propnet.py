"""Fine-tune Mask R-CNN as a binary object-vs-background proposal net.

``--init`` takes any proposal-net file ``dmm.proposals.model.load_propnet`` reads, the authors'
maskrcnn-benchmark checkpoints and the caffe2 config's Detectron COCO pickle included; a
maskrcnn-benchmark architecture (``legacy_*``) trains through torchvision's Mask R-CNN losses on
its own modules (``dmm.proposals.legacy_net.training``; the differences from maskrcnn-benchmark's
training are listed in ``docs/faithfulness.md``) and its checkpoints keep maskrcnn-benchmark's key
names, so extraction runs them as maskrcnn-benchmark would.

Run ``python -m dmm.proposals.train_propnet --out DIR ...`` (see ``--help``). Every annotated
object instance of the YouTube-VOS frames is a foreground box and mask (the paper's
"join_ytb_bin"), optionally mixed with COCO instances read through pycocotools
(``--coco-json`` + ``--coco-images``); ``--online`` trains on the first-frame annotations of
the ``valid`` videos instead. Checkpoints go to ``DIR/epo00_iter<iteration>/trainer.pt`` through
the project's one checkpointer (:mod:`dmm.checkpointing`: atomic, the newest ``--keep`` kept); a
rerun resumes from the newest readable one. ``DIR/model_final.pth`` is what
``python -m dmm.proposals.extract --weights`` takes.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import ConcatDataset, Dataset
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor
from tqdm import tqdm

from dmm.boxes import mask_boxes
from dmm.checkpointing import PAYLOAD, Checkpointer
from dmm.cli import command_parser, run
from dmm.config import get_cfg_defaults
from dmm.data import DatasetError, YouTubeVOS
from dmm.device import resolve_device
from dmm.errors import InputError, MissingInputError
from dmm.io import load_torch, save_torch
from dmm.proposals.legacy_net import LEGACY_ARCHS, LegacyMaskRCNN
from dmm.proposals.legacy_net.training import (benchmark_checkpoint_state, load_benchmark_checkpoint_state,
                                               training_view)
from dmm.proposals.model import ARCHS, CHECKPOINT_FORMAT, build_maskrcnn, load_propnet, propnet_arch

Target = dict[str, torch.Tensor]


def instance_targets(masks: np.ndarray) -> Target:
    """Binary detection targets of (K, h, w) instance masks: boxes (half-open), labels 1."""
    m = torch.from_numpy(masks.astype(bool))
    m = m[m.flatten(1).any(dim=1)]
    boxes = mask_boxes(m, 0.5, half_open=True).reshape(-1, 4)
    return {"boxes": boxes, "labels": torch.ones(len(m), dtype=torch.int64),
            "masks": m.to(torch.uint8)}


def _image_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).float().div_(255)


class VideoInstanceFrames(Dataset):
    """Annotated YouTube-VOS frames; each object instance is one foreground target.

    Args:
        reader: a ``dmm.data`` YouTube-VOS reader.
        first_frames_only: only the frames where objects first appear (online training).
    """

    def __init__(self, reader, first_frames_only: bool = False) -> None:
        self.reader = reader
        self.items: list[tuple[str, str]] = []
        for video in reader.videos:
            if first_frames_only:
                frames = sorted(reader.info(video).first_appearances())
            else:
                frames = reader.annotated_frames(video)
            self.items.extend((video, f) for f in frames)
        if not self.items:
            raise DatasetError(f"split {reader.split!r} has no annotated frames to train on")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Target]:
        video, frame = self.items[i]
        ann = self.reader.annotation(video, frame)
        ids = [k for k in np.unique(ann) if k != 0] if ann is not None else []
        masks = np.stack([ann == k for k in ids]) if ids else np.zeros((0, *ann.shape), bool)
        return _image_tensor(self.reader.image(video, frame)), instance_targets(masks)


class CocoInstanceImages(Dataset):
    """COCO images (pycocotools) with every non-crowd instance as a foreground target."""

    def __init__(self, annotation_json: str | os.PathLike, image_dir: str | os.PathLike) -> None:
        from pycocotools.coco import COCO

        for p in (annotation_json, image_dir):
            if not Path(p).exists():
                raise MissingInputError(f"COCO file or folder {p} not found")
        self.coco = COCO(str(annotation_json))
        self.image_dir = Path(image_dir)
        self.ids = [i for i in sorted(self.coco.getImgIds())
                    if self.coco.getAnnIds(imgIds=i, iscrowd=False)]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Target]:
        info = self.coco.loadImgs(self.ids[i])[0]
        path = self.image_dir / info["file_name"]
        try:
            image = np.asarray(Image.open(path).convert("RGB"))
        except OSError as e:
            raise InputError(f"cannot read COCO image {path}: {e}") from None
        anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=info["id"], iscrowd=False))
        masks = np.stack([self.coco.annToMask(a) for a in anns]).astype(bool)
        return _image_tensor(image), instance_targets(masks)


def _binary_legacy(net: LegacyMaskRCNN) -> LegacyMaskRCNN:
    """``net`` with fresh 2-class predictors when it has another class count (e.g. COCO's 81)."""
    if net.num_classes != 2:
        net.roi_heads.box_predictor = FastRCNNPredictor(1024, 2)
        net.roi_heads.mask_predictor = MaskRCNNPredictor(256, 256, 2)
        net.num_classes = 2
    return net


def binary_propnet(init: str | None, arch: str, **build_kwargs) -> tuple[MaskRCNN, str]:
    """A Mask R-CNN with object-vs-background heads, from ``init`` weights (any classes), and
    its architecture.

    ``arch`` "auto" takes ``init``'s architecture (``legacy_x101_32x8d_fpn``, the paper's, for a
    random init). For a maskrcnn-benchmark architecture the model is the torchvision training view
    of a :class:`LegacyMaskRCNN` (same modules, torchvision's losses); ``build_kwargs`` go to
    torchvision's ``MaskRCNN``.
    """
    fresh = init is None or str(init) == "none"
    if arch == "auto" and fresh:
        arch = "legacy_x101_32x8d_fpn"
    if fresh and arch not in LEGACY_ARCHS:
        model = build_maskrcnn(arch, 2, **build_kwargs)
    else:
        net = load_propnet(None if fresh else init, arch, 2)
        if isinstance(net, LegacyMaskRCNN):
            return training_view(_binary_legacy(net).train(), **build_kwargs), net.arch
        arch = propnet_arch(net)
        model = build_maskrcnn(arch, net.roi_heads.box_predictor.cls_score.out_features, **build_kwargs)
        model.load_state_dict(net.state_dict())
    if model.roi_heads.box_predictor.cls_score.out_features != 2:
        in_box = model.roi_heads.box_predictor.cls_score.in_features
        model.roi_heads.box_predictor = FastRCNNPredictor(in_box, 2)
        in_mask = model.roi_heads.mask_predictor.conv5_mask.in_channels
        model.roi_heads.mask_predictor = MaskRCNNPredictor(in_mask, 256, 2)
    return model, arch


def binary_maskrcnn(init: str | None, arch: str, **build_kwargs) -> MaskRCNN:
    """The model of :func:`binary_propnet`."""
    return binary_propnet(init, arch, **build_kwargs)[0]


def checkpoint(model: MaskRCNN, optimizer: torch.optim.Optimizer, arch: str,
               iteration: int) -> dict:
    """A proposal-net checkpoint; a maskrcnn-benchmark architecture keeps its key names."""
    state = benchmark_checkpoint_state(model) if arch in LEGACY_ARCHS else model.state_dict()
    return {"format": CHECKPOINT_FORMAT, "version": 1, "arch": arch, "num_classes": 2,
            "iteration": iteration, "model": state, "optimizer": optimizer.state_dict()}


def _load_model_state(model: MaskRCNN, arch: str, state: dict[str, torch.Tensor]) -> None:
    if arch in LEGACY_ARCHS:
        load_benchmark_checkpoint_state(model, state)
    else:
        model.load_state_dict(state)


def learning_rate(base: float, it: int, iterations: int, warmup: int) -> float:
    """Linear warm-up, then x0.1 at 2/3 and 8/9 of the run."""
    scale = 0.1 ** sum(it >= math.ceil(iterations * f) for f in (2 / 3, 8 / 9))
    if it < warmup:
        scale *= (1 + it) / warmup
    return base * scale


def train(model: MaskRCNN, dataset: Dataset, out_dir: str | os.PathLike, arch: str,
          iterations: int, batch_size: int = 2, lr: float = 0.01, device: str = "cpu",
          checkpoint_period: int = 2500, warmup: int = 500, seed: int = 0,
          grad_clip: float = 10.0, progress: bool = True, keep: int = 3) -> list[float]:
    """SGD on random batches; resumes from the newest readable checkpoint in ``out_dir``. Returns the losses."""
    out_dir = Path(out_dir)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    start = 0
    checkpointer = Checkpointer(out_dir, keep_last=keep)
    found = checkpointer.load_latest(lambda path: load_torch(path / PAYLOAD, "proposal-net checkpoint"))
    if found is not None:
        path, state = found
        _load_model_state(model, arch, state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["iteration"])
        print(f"resuming from {path} at iteration {start}")
    losses = []
    for it in tqdm(range(start, iterations), desc="propnet", disable=not progress,
                   initial=start, total=iterations):
        g = torch.Generator().manual_seed(seed * 1_000_003 + it)
        batch = [dataset[int(i)] for i in torch.randint(len(dataset), (batch_size,), generator=g)]
        images = [img.to(device) for img, _ in batch]
        targets = [{k: v.to(device) for k, v in t.items()} for _, t in batch]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(lr, it, iterations, warmup)
        loss = sum(model(images, targets).values())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at iteration {it}: lower --lr")
        optimizer.zero_grad()
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        losses.append(loss.item())
        done = it + 1
        if done % checkpoint_period == 0 or done == iterations:
            checkpointer.save(0, done, checkpoint(model, optimizer, arch, done))
    if start < iterations or not (out_dir / "model_final.pth").exists():
        save_torch(checkpoint(model, optimizer, arch, max(start, iterations)),
                   out_dir / "model_final.pth")
    return losses


def main(argv: list[str] | None = None) -> int:
    cfg = get_cfg_defaults()
    parser = command_parser("python -m dmm.proposals.train_propnet", __doc__, summary_only=True)
    parser.add_argument("--root", default=cfg.DATA.ROOT, help="YouTube-VOS root")
    parser.add_argument("--split", default=None,
                        help="training split (default: train_all, or valid with --online)")
    parser.add_argument("--split-dir", default=cfg.DATA.SPLIT_DIR, help="folder of the split files (DATA.SPLIT_DIR)")
    parser.add_argument("--online", action="store_true",
                        help="train on the first-frame annotations of the split's videos")
    parser.add_argument("--coco-json", default=None, help="COCO instances json to mix in (default: none)")
    parser.add_argument("--coco-images", default=None, help="COCO image folder of --coco-json (default: none)")
    parser.add_argument("--out", required=True, help="checkpoint folder")
    parser.add_argument("--arch", default="auto", choices=("auto", *ARCHS),
                        help="architecture: --init's (auto; legacy_x101_32x8d_fpn, the paper's, for a random "
                             "init), or checked against it")
    parser.add_argument("--init", default="none",
                        help="initial weights (any file dmm.proposals.extract --weights takes: the authors' "
                             "maskrcnn-benchmark checkpoints, the Detectron COCO pickle, a torchvision COCO "
                             "state dict, a checkpoint of this command), or 'none'")
    parser.add_argument("--iters", type=int, default=180000, help="training iterations in all")
    parser.add_argument("--batch-size", type=int, default=4, help="images per iteration")
    parser.add_argument("--lr", type=float, default=0.01, help="base learning rate of SGD (x0.1 at 2/3 and 8/9 of the run)")
    parser.add_argument("--warmup", type=int, default=500, help="iterations of linear learning-rate warm-up")
    parser.add_argument("--checkpoint-period", type=int, default=2500, help="iterations between checkpoints")
    parser.add_argument("--keep", type=int, default=3, help="checkpoints kept (the newest)")
    parser.add_argument("--min-size", type=int, default=800, help="shorter side of the resized input (INPUT.MIN_SIZE_TRAIN)")
    parser.add_argument("--max-size", type=int, default=1333, help="cap of the longer side (INPUT.MAX_SIZE_TRAIN)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if there is one), cpu, cuda or cuda:<index>")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random batches")
    args = parser.parse_args(argv)
    if bool(args.coco_json) != bool(args.coco_images):
        parser.error("--coco-json and --coco-images go together")
    split = args.split or ("valid" if args.online else "train_all")
    parts: list[Dataset] = [VideoInstanceFrames(
        YouTubeVOS(args.root, split, split_dir=args.split_dir), first_frames_only=args.online)]
    if args.coco_json:
        parts.append(CocoInstanceImages(args.coco_json, args.coco_images))
    model, arch = binary_propnet(args.init, args.arch, min_size=args.min_size, max_size=args.max_size)
    torch.manual_seed(args.seed)
    dataset = parts[0] if len(parts) == 1 else ConcatDataset(parts)
    losses = train(model, dataset, args.out, arch, args.iters, args.batch_size, args.lr,
                   str(resolve_device(args.device)), args.checkpoint_period, args.warmup,
                   args.seed, keep=args.keep)
    if losses:
        print(f"iterations done: {len(losses)}; last loss {losses[-1]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
