"""The proposal net: a torchvision Mask R-CNN, built and loaded from a local weights file.

Architectures: ``resnet50_fpn_v2`` (torchvision's COCO model), ``resnext101_32x8d_fpn`` (the
paper's proposal net, built with ``resnet_fpn_backbone``), and ``resnet50_fpn`` /
``resnet18_fpn`` (small, for tests). A weights file is a torchvision state dict (COCO: 91
classes) or this project's proposal-net checkpoint (``dmm.proposals.train_propnet``), which
also records its architecture and number of classes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn_v2
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.models.detection.mask_rcnn import MaskRCNN_ResNet50_FPN_V2_Weights

ARCHS = ("resnet50_fpn_v2", "resnext101_32x8d_fpn", "resnet50_fpn", "resnet18_fpn")
CHECKPOINT_FORMAT = "dmm-propnet"
COCO_NUM_CLASSES = 91
#: where torchvision's COCO weights of each architecture come from, when it has them.
COCO_URLS = {"resnet50_fpn_v2": MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1.url}


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
        raise ValueError(f"unknown proposal-net architecture {arch!r} (known: {', '.join(ARCHS)})")
    backbone = resnet_fpn_backbone(backbone_name=arch[: -len("_fpn")], weights=None,
                                   trainable_layers=trainable_layers)
    return MaskRCNN(backbone, num_classes=num_classes, **kwargs)


def missing_weights_message(path: Path, arch: str) -> str:
    if arch in COCO_URLS:
        url = COCO_URLS[arch]
        return (f"weights file {path} not found: download torchvision's COCO Mask R-CNN weights "
                f"{url.rsplit('/', 1)[-1]} from {url} and put the file at {path}")
    return (f"weights file {path} not found: torchvision has no COCO weights for {arch}; put "
            f"this project's proposal-net checkpoint (python -m dmm.proposals.train_propnet) or a "
            f"torchvision-layout state dict for {arch} at {path}")


def read_weights(path: str | os.PathLike, arch: str) -> tuple[dict[str, torch.Tensor], str, int]:
    """``(state_dict, arch, num_classes)`` of a weights file (a checkpoint's own arch wins)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(missing_weights_message(path, arch))
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        return obj["model"], obj["arch"], int(obj["num_classes"])
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    key = "roi_heads.box_predictor.cls_score.weight"
    if not isinstance(state, dict) or key not in state:
        raise ValueError(f"{path} is not a Mask R-CNN state dict (no {key})")
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
        raise ValueError(f"{weights} does not fit a {arch} Mask R-CNN with {num_classes} classes: "
                         f"missing {result.missing_keys[:5]}, unexpected "
                         f"{result.unexpected_keys[:5]}")
    return model
