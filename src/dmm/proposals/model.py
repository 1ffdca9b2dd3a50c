"""The proposal net, built and loaded from a weights file.

Two families (``ARCHS``):

- torchvision's Mask R-CNN: ``resnet50_fpn_v2`` (torchvision's COCO model),
  ``resnext101_32x8d_fpn`` (built with ``resnet_fpn_backbone``), ``resnet50_fpn`` /
  ``resnet18_fpn`` (small, for tests). A weights file is a torchvision state dict (COCO: 91
  classes) or this project's proposal-net checkpoint (``dmm.proposals.train_propnet``), which
  also records its architecture and number of classes. When the file asked for is missing and is
  torchvision's own COCO file (same name), it is read from torchvision's cache or downloaded
  there through torchvision's weights API; offline, the error names the file and the folders
  searched.
- maskrcnn-benchmark's (the authors' 2019 proposal nets, ``dmm.proposals.legacy_net``):
  ``legacy_x101_32x8d_fpn`` and ``legacy_r50_fpn``, loaded from maskrcnn-benchmark checkpoints
  (``{"model": state_dict}``, keys with or without ``module.``), Detectron pickles (``.pkl``) or
  this project's checkpoints of those architectures.

:func:`load_propnet` takes any of these files and reads the architecture and class count from
it (``arch="auto"``), or checks them against the one named.
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
from dmm.proposals.legacy_net import LEGACY_ARCHS, LegacyMaskRCNN, build_legacy_maskrcnn
from dmm.proposals.legacy_net.weights import (is_detectron_file, is_legacy_object, legacy_model_from_state,
                                              legacy_state_from_object, read_detectron_weights)

#: torchvision's Mask R-CNNs
TORCHVISION_ARCHS = ("resnet50_fpn_v2", "resnext101_32x8d_fpn", "resnet50_fpn", "resnet18_fpn")
#: every architecture: torchvision's, then maskrcnn-benchmark's
ARCHS = (*TORCHVISION_ARCHS, *LEGACY_ARCHS)
PropNet = MaskRCNN | LegacyMaskRCNN
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
    if arch not in TORCHVISION_ARCHS:
        raise ConfigError(f"unknown torchvision proposal-net architecture {arch!r} (known: "
                          f"{', '.join(TORCHVISION_ARCHS)}; maskrcnn-benchmark's: {', '.join(LEGACY_ARCHS)})")
    backbone = resnet_fpn_backbone(backbone_name=arch[: -len("_fpn")], weights=None,
                                   trainable_layers=trainable_layers)
    return MaskRCNN(backbone, num_classes=num_classes, **kwargs)


def coco_file_name(arch: str) -> str | None:
    """torchvision's file name of the COCO weights of ``arch`` (None when it has none)."""
    return Path(COCO_WEIGHTS[arch].url).name if arch in COCO_WEIGHTS else None


def _torchvision_cache() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _missing_weights(path: Path, arch: str) -> MissingInputError:
    coco = coco_file_name(arch if arch in TORCHVISION_ARCHS else "resnet50_fpn_v2")
    if arch not in TORCHVISION_ARCHS:
        arch = "its architecture"
    if coco is None:
        hint = f"torchvision has no COCO weights for {arch}"
    else:
        hint = (f"for torchvision's COCO weights name their file instead "
                f"({path.parent / coco}): when online they are then fetched into torchvision's cache (INSTALL.md, "
                f"'What is downloaded, and when')")
    return MissingInputError(
        f"weights file {path} not found: put the authors' maskrcnn-benchmark checkpoint or the Detectron "
        f"pickle (MODEL_ZOO.md), this project's proposal-net checkpoint (python -m "
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


def infer_torchvision_arch(state: dict[str, torch.Tensor], path: Path) -> str:
    """The torchvision architecture of a Mask R-CNN state dict, from its keys and shapes."""
    if "roi_heads.box_head.0.0.weight" in state:  # v2: a conv box head
        return "resnet50_fpn_v2"
    blocks = len({k.split(".")[3] for k in state if k.startswith("backbone.body.layer3.")})
    conv2 = state.get("backbone.body.layer1.0.conv2.weight")
    shape = None if conv2 is None else tuple(conv2.shape)
    found = {(2, (64, 64, 3, 3)): "resnet18_fpn", (6, (64, 64, 3, 3)): "resnet50_fpn",
             (23, (256, 8, 3, 3)): "resnext101_32x8d_fpn"}.get((blocks, shape))
    if found is None:
        raise InputError(f"{path}: a torchvision Mask R-CNN state dict of an architecture this project does not "
                         f"build ({blocks} layer3 blocks, layer1.0.conv2 {shape}); name it with --arch")
    return found


def propnet_arch(model: PropNet) -> str:
    """The architecture name of a built proposal net (a torchvision net's from its shapes)."""
    if isinstance(model, LegacyMaskRCNN):
        return model.arch
    return infer_torchvision_arch(model.state_dict(), Path("the model"))


def _read_file(path: Path, arch: str) -> Any:
    if path.is_file():
        return load_torch(path, "weights file")
    if arch in ("auto", None) and path.name == coco_file_name("resnet50_fpn_v2"):
        arch = "resnet50_fpn_v2"
    if arch in COCO_WEIGHTS and path.name == coco_file_name(arch):
        return _coco_weights(path, arch)
    raise _missing_weights(path, arch)


def _torchvision_state(obj: Any, path: Path, arch: str | None) -> tuple[dict[str, torch.Tensor], str, int]:
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        return obj["model"], obj["arch"], int(obj["num_classes"])
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    key = "roi_heads.box_predictor.cls_score.weight"
    if not isinstance(state, dict) or key not in state:
        raise InputError(f"{path} is not a Mask R-CNN state dict (no {key}) nor a maskrcnn-benchmark "
                         "checkpoint or Detectron pickle")
    if arch in (None, "auto"):
        arch = infer_torchvision_arch(state, path)
    return state, arch, int(state[key].shape[0])


def read_weights(path: str | os.PathLike, arch: str) -> tuple[dict[str, torch.Tensor], str, int]:
    """``(state_dict, arch, num_classes)`` of a torchvision-layout weights file (a checkpoint's own
    arch wins; ``arch="auto"`` reads it from the state dict)."""
    path = Path(path)
    return _torchvision_state(_read_file(path, arch), path, arch)


def load_propnet(weights: str | os.PathLike | None, arch: str = "auto", num_classes: int = COCO_NUM_CLASSES, *,
                 min_size: int | None = None, max_size: int | None = None, score_thresh: float | None = None,
                 detections_per_img: int | None = None) -> PropNet:
    """Any proposal net, in eval mode: a torchvision ``MaskRCNN`` or a :class:`LegacyMaskRCNN`.

    Args:
        weights: a torchvision state dict or COCO file name, a maskrcnn-benchmark checkpoint, a
            Detectron pickle, this project's checkpoint; None or "none": a random init of ``arch``.
        arch: one of :data:`ARCHS`, or "auto" (read from the file).
        num_classes: classes of a random init (files say their own).
        min_size, max_size, score_thresh, detections_per_img: test-time settings; None keeps each
            family's default (torchvision nets: 800, 1333, 0.0, 50, the paper's extraction;
            maskrcnn-benchmark nets: its config's 800, 1333, 0.05, 100).
    """
    detection = dict(min_size=min_size, max_size=max_size, score_thresh=score_thresh,
                     detections_per_img=detections_per_img)
    if weights is None or str(weights) == "none":
        if arch in (None, "auto"):
            raise ConfigError("a random proposal net needs its architecture named (--arch)")
        if arch in LEGACY_ARCHS:
            return build_legacy_maskrcnn(arch, num_classes, **detection)
        return build_maskrcnn(arch, num_classes, **_torchvision_kwargs(detection)).eval()
    path = Path(weights)
    want = None if arch in (None, "auto") else arch
    if path.is_file() and is_detectron_file(path):
        state, found, classes = read_detectron_weights(path, want)
        return legacy_model_from_state(state, found, classes, path, True, **detection)
    obj = _read_file(path, arch)
    if is_legacy_object(obj) or want in LEGACY_ARCHS:
        state, found, classes = legacy_state_from_object(obj, path, want)
        return legacy_model_from_state(state, found, classes, path, **detection)
    state, found, classes = _torchvision_state(obj, path, arch)
    if want is not None and found != want:
        raise InputError(f"{path} holds a {found} Mask R-CNN, not the {want} asked for")
    return _torchvision_model(state, found, classes, path, **_torchvision_kwargs(detection)).eval()


def _torchvision_kwargs(detection: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in detection.items() if v is not None}


def _torchvision_model(state: dict[str, torch.Tensor], arch: str, num_classes: int, source: Any,
                       **build_kwargs: Any) -> MaskRCNN:
    model = build_maskrcnn(arch, num_classes, **build_kwargs)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise InputError(f"{source} does not fit a {arch} Mask R-CNN with {num_classes} classes: "
                         f"missing {result.missing_keys[:5]}, unexpected "
                         f"{result.unexpected_keys[:5]}")
    return model


def load_maskrcnn(weights: str | os.PathLike | None, arch: str,
                  num_classes: int = COCO_NUM_CLASSES, **build_kwargs: Any) -> MaskRCNN:
    """Build and load a Mask R-CNN; ``weights=None`` (or "none") gives a random init."""
    if weights is None or str(weights) == "none":
        return build_maskrcnn(arch, num_classes, **build_kwargs)
    state, arch, num_classes = read_weights(weights, arch)
    return _torchvision_model(state, arch, num_classes, weights, **build_kwargs)
