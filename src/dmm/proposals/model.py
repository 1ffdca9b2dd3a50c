"""The proposal net: a torchvision Mask R-CNN, built and loaded from a weights file.

Architectures: ``resnet50_fpn_v2`` (torchvision's COCO model), ``resnext101_32x8d_fpn`` (the
paper's proposal net, built with ``resnet_fpn_backbone``), and ``resnet50_fpn`` /
``resnet18_fpn`` (small, for tests). A weights file is a torchvision state dict (COCO: 91
classes) or this project's proposal-net checkpoint (``dmm.proposals.train_propnet``), which
also records its architecture and number of classes. When the file asked for is missing and is
torchvision's own COCO file (same name), it is read from torchvision's cache or downloaded there
through torchvision's weights API; offline, the error names the file and the folders searched.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torchvision.models import WeightsEnum
from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn_v2
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.models.detection.mask_rcnn import MaskRCNN_ResNet50_FPN_V2_Weights

from dmm.errors import ConfigError, InputError, MissingInputError
from dmm.io import load_torch

ARCHS = ("resnet50_fpn_v2", "resnext101_32x8d_fpn", "resnet50_fpn", "resnet18_fpn")
CHECKPOINT_FORMAT = "dmm-propnet"
COCO_NUM_CLASSES = 91
#: torchvision's COCO weights of each architecture, when it has them.
COCO_WEIGHTS: dict[str, WeightsEnum] = {"resnet50_fpn_v2": MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1}


def build_maskrcnn(arch: str, num_classes: int, *, min_size: int = 800, max_size: int = 1333,
                   detections_per_img: int = 50, score_thresh: float = 0.0,
                   trainable_layers: int = 3, **options: Any) -> MaskRCNN:
    """A randomly initialised Mask R-CNN (no weights are downloaded).

    Detection settings follow the paper's proposal extraction: score threshold 0 and 50
    detections per image. ``options`` go to torchvision's ``MaskRCNN`` (e.g.
    ``rpn_post_nms_top_n_train``, ``box_batch_size_per_image``).
    """
    kwargs: dict[str, Any] = dict(min_size=min_size, max_size=max_size,
                                  box_detections_per_img=detections_per_img,
                                  box_score_thresh=score_thresh, **options)
    if arch == "resnet50_fpn_v2":
        return maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None,
                                        num_classes=num_classes,
                                        trainable_backbone_layers=trainable_layers, **kwargs)
    if arch not in ARCHS:
        raise ConfigError(f"unknown proposal-net architecture {arch!r} (known: {', '.join(ARCHS)})")
    backbone = resnet_fpn_backbone(backbone_name=arch[: -len("_fpn")], weights=None,
                                   trainable_layers=trainable_layers)
    return MaskRCNN(backbone, num_classes=num_classes, **kwargs)


def coco_file_name(arch: str) -> str | None:
    """torchvision's file name of the COCO weights of ``arch`` (None when it has none)."""
    return Path(COCO_WEIGHTS[arch].url).name if arch in COCO_WEIGHTS else None


def _torchvision_cache() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _missing_weights(path: Path, arch: str) -> MissingInputError:
    coco = coco_file_name(arch)
    if coco is None:
        hint = f"torchvision has no COCO weights for {arch}"
    else:
        hint = (f"for torchvision's COCO weights name their file instead "
                f"({path.parent / coco}): they are then downloaded into torchvision's cache")
    return MissingInputError(
        f"weights file {path} not found: put this project's proposal-net checkpoint (python -m "
        f"dmm.proposals.train_propnet) or a torchvision-layout state dict for {arch} there; {hint}")


def _coco_weights(path: Path, arch: str) -> Any:
    """torchvision's COCO weights for a missing ``path`` of their file name: from the cache,
    or downloaded into it through torchvision's weights API."""
    cached = _torchvision_cache() / path.name
    if cached.is_file():
        return load_torch(cached, "weights file")
    weights = COCO_WEIGHTS[arch]
    try:
        return weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except (OSError, RuntimeError, ValueError) as e:
        raise MissingInputError(
            f"weights file {path.name} not found in {path.parent} nor in torchvision's cache "
            f"{_torchvision_cache()}, and downloading {weights.url} failed ({e}): download it "
            f"by hand and put it at {path}") from None


def read_weights(path: str | os.PathLike, arch: str) -> tuple[dict[str, torch.Tensor], str, int]:
    """``(state_dict, arch, num_classes)`` of a weights file (a checkpoint's own arch wins)."""
    path = Path(path)
    if path.is_file():
        obj = load_torch(path, "weights file")
    elif path.name == coco_file_name(arch):
        obj = _coco_weights(path, arch)
    else:
        raise _missing_weights(path, arch)
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        return obj["model"], obj["arch"], int(obj["num_classes"])
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    key = "roi_heads.box_predictor.cls_score.weight"
    if not isinstance(state, dict) or key not in state:
        raise InputError(f"{path} is not a Mask R-CNN state dict (no {key})")
    return state, arch, int(state[key].shape[0])


def load_maskrcnn(weights: str | os.PathLike | None, arch: str,
                  num_classes: int = COCO_NUM_CLASSES, **build_kwargs: Any) -> MaskRCNN:
    """Build and load a Mask R-CNN; ``weights=None`` (or "none") gives a random init."""
    if weights is None or str(weights) == "none":
        return build_maskrcnn(arch, num_classes, **build_kwargs)
    state, arch, num_classes = read_weights(weights, arch)
    model = build_maskrcnn(arch, num_classes, **build_kwargs)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise InputError(f"{weights} does not fit a {arch} Mask R-CNN with {num_classes} classes: "
                         f"missing {result.missing_keys[:5]}, unexpected "
                         f"{result.unexpected_keys[:5]}")
    return model
