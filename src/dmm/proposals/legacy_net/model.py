""":class:`LegacyMaskRCNN`: maskrcnn-benchmark's caffe2 FPN Mask R-CNN from torchvision parts.

Two architectures of the config family (``LEGACY_ARCHS``):

- ``legacy_x101_32x8d_fpn``: maskrcnn-benchmark ``configs/caffe2/e2e_mask_rcnn_X_101_32x8d_FPN_1x_caffe2.yaml``, the
  2019 proposal nets (COCO, 81 classes; the authors' fine-tuned binary models, 2 classes):
  torchvision's ResNeXt-101 32x8d (stride in the 3x3 conv, ``STRIDE_IN_1X1: False``).
- ``legacy_r50_fpn``: maskrcnn-benchmark ``configs/caffe2/e2e_mask_rcnn_R_50_FPN_1x_caffe2.yaml``: torchvision's
  ResNet-50 with the stride moved into the first 1x1 conv of each stage (``STRIDE_IN_1X1`` is
  maskrcnn-benchmark's default True there: the MSRA ResNet).

Every batch norm is ``FrozenBatchNorm2d(eps=0)`` (maskrcnn-benchmark's has no eps); the FPN is
torchvision's with ``LastLevelMaxPool`` (P6). The forward takes uint8 RGB frames and returns,
per frame, what maskrcnn-benchmark's ``compute_on_dataset`` saved (a :class:`LegacyDetections`,
the BoxList of ``predictions.pth``). The state dict uses torchvision's module names;
``dmm.proposals.legacy_net.weights`` maps maskrcnn-benchmark's names onto them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torchvision.models.detection.backbone_utils import BackboneWithFPN, resnet_fpn_backbone
from torchvision.ops import FrozenBatchNorm2d

from dmm.errors import ConfigError
from dmm.structures import Proposals

from .roi_heads import LegacyRoIHeads, RoIHeadsSettings
from .rpn import LegacyRPN, RPNSettings
from .transform import PIXEL_MEAN, PIXEL_STD, input_tensor, pad_batch, resize_frame, resized_size


@dataclass(frozen=True)
class LegacyArch:
    """A maskrcnn-benchmark backbone: torchvision's ResNe(X)t name and where its stride sits."""

    resnet: str
    stride_in_1x1: bool
    config: str


LEGACY_ARCHS: dict[str, LegacyArch] = {
    "legacy_x101_32x8d_fpn": LegacyArch("resnext101_32x8d", False,
                                        "configs/caffe2/e2e_mask_rcnn_X_101_32x8d_FPN_1x_caffe2.yaml"),
    "legacy_r50_fpn": LegacyArch("resnet50", True, "configs/caffe2/e2e_mask_rcnn_R_50_FPN_1x_caffe2.yaml"),
}


@dataclass
class LegacySettings:
    """Test-time settings (maskrcnn-benchmark's config keys in brackets).

    Attributes:
        min_size, max_size: ``INPUT.MIN_SIZE_TEST`` / ``MAX_SIZE_TEST`` (800, 1333).
        pixel_mean, pixel_std: ``INPUT.PIXEL_MEAN`` / ``PIXEL_STD`` (BGR, x255 input).
        size_divisibility: ``DATALOADER.SIZE_DIVISIBILITY`` (32 in the caffe2 FPN configs).
        rpn: RPN settings (``MODEL.RPN.*``).
        roi_heads: head settings (``MODEL.ROI_HEADS.SCORE_THRESH`` 0.05,
            ``DETECTIONS_PER_IMG`` 100, ...).
    """

    min_size: int = 800
    max_size: int = 1333
    pixel_mean: tuple[float, ...] = PIXEL_MEAN
    pixel_std: tuple[float, ...] = PIXEL_STD
    size_divisibility: int = 32
    rpn: RPNSettings = field(default_factory=RPNSettings)
    roi_heads: RoIHeadsSettings = field(default_factory=RoIHeadsSettings)

    def with_detection(self, *, min_size: int | None = None, max_size: int | None = None,
                       score_thresh: float | None = None, detections_per_img: int | None = None
                       ) -> "LegacySettings":
        """A copy with the given test-time values replaced (None keeps the current one)."""
        heads = replace(self.roi_heads,
                        **{k: v for k, v in (("score_thresh", score_thresh),
                                             ("detections_per_img", detections_per_img)) if v is not None})
        return replace(self, roi_heads=heads,
                       **{k: v for k, v in (("min_size", min_size), ("max_size", max_size)) if v is not None})


@dataclass
class LegacyDetections:
    """One frame's saved result: maskrcnn-benchmark's BoxList of ``predictions.pth``.

    Attributes:
        boxes: (M, 4) float32 xyxy in pixels of the resized frame (``bbox``).
        scores: (M,) float32.
        labels: (M,) int64 (1 in a binary model).
        masks: (M, 1, 28, 28) float32 probabilities of each detection's label, not pasted.
        image_size: (h, w) of the resized, unpadded frame (the BoxList's ``size`` is (w, h)).
    Detections are in maskrcnn-benchmark's order (class, then RPN proposal), not by score.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(w, h), as the BoxList's ``size``."""
        return int(self.image_size[1]), int(self.image_size[0])

    def to(self, device: torch.device | str) -> "LegacyDetections":
        return LegacyDetections(self.boxes.to(device), self.scores.to(device), self.labels.to(device),
                                self.masks.to(device), self.image_size)

    def proposals(self) -> Proposals:
        """The frame's proposals as the DMM model consumed them: the same boxes (resized frame),
        scores and 28x28 masks, in the same order (``roi`` mode)."""
        return Proposals(self.boxes, self.scores, self.masks[:, 0], self.image_size, "roi")


def _move_stride_to_1x1(body: nn.Module) -> None:
    """The MSRA ResNet: the first block of each strided stage strides in its 1x1 conv."""
    for name in ("layer2", "layer3", "layer4"):
        block = getattr(body, name)[0]
        block.conv1.stride, block.conv2.stride = block.conv2.stride, (1, 1)


def build_backbone(arch: str, trainable_layers: int = 3) -> BackboneWithFPN:
    """The ResNe(X)t-FPN body of ``arch`` (random init, frozen batch norms without eps).

    ``trainable_layers`` 3 freezes the stem and ``layer1`` (``MODEL.BACKBONE.FREEZE_CONV_BODY_AT
    2``); it matters for fine-tuning only.
    """
    spec = LEGACY_ARCHS[arch]
    backbone = resnet_fpn_backbone(backbone_name=spec.resnet, weights=None,
                                   norm_layer=partial(FrozenBatchNorm2d, eps=0.0),
                                   trainable_layers=trainable_layers)
    if spec.stride_in_1x1:
        _move_stride_to_1x1(backbone.body)
    return backbone


class LegacyMaskRCNN(nn.Module):
    """maskrcnn-benchmark's Mask R-CNN (test mode) on torchvision modules.

    Args:
        arch: one of :data:`LEGACY_ARCHS`.
        num_classes: classes with background (2: binary proposal nets, 81: COCO).
        settings: :class:`LegacySettings`.
    """

    def __init__(self, arch: str, num_classes: int, settings: LegacySettings | None = None,
                 trainable_layers: int = 3) -> None:
        super().__init__()
        if arch not in LEGACY_ARCHS:
            raise ConfigError(f"unknown maskrcnn-benchmark architecture {arch!r} (known: {', '.join(LEGACY_ARCHS)})")
        self.arch = arch
        self.num_classes = int(num_classes)
        self.settings = settings or LegacySettings()
        self.backbone = build_backbone(arch, trainable_layers)
        self.rpn = LegacyRPN(self.backbone.out_channels, self.settings.rpn)
        self.roi_heads = LegacyRoIHeads(self.num_classes, self.backbone.out_channels, self.settings.roi_heads)

    @classmethod
    def uninitialized(cls, arch: str, num_classes: int, settings: LegacySettings | None = None) -> "LegacyMaskRCNN":
        """The model with uninitialised CPU tensors (no random init: every tensor is to be
        loaded)."""
        with torch.device("meta"):
            model = cls(arch, num_classes, settings)
        return model.to_empty(device="cpu")

    def configure(self, **detection: Any) -> "LegacyMaskRCNN":
        """Set test-time values (``min_size``, ``max_size``, ``score_thresh``,
        ``detections_per_img``; None keeps one) in place; returns the model."""
        self.settings = self.settings.with_detection(**detection)
        self.rpn.settings = self.settings.rpn
        self.roi_heads.settings = self.settings.roi_heads
        return self

    def preprocess(self, frames: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[torch.Tensor]]:
        """The resized uint8 frames and their (3, h, w) network inputs (``transform``: maskrcnn-benchmark's resize and input rules)."""
        s = self.settings
        resized = [resize_frame(f, resized_size(f.shape[0], f.shape[1], s.min_size, s.max_size)) for f in frames]
        return resized, [input_tensor(r, s.pixel_mean, s.pixel_std) for r in resized]

    def features(self, batch: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """C2..C5 of the body and P2..P6 of the FPN for a (B, 3, H, W) batch."""
        body = self.backbone.body(batch)
        fpn = self.backbone.fpn(body)
        return list(body.values()), list(fpn.values())

    @torch.no_grad()
    def forward(self, frames: Sequence[np.ndarray], trace: list[dict] | None = None) -> list[LegacyDetections]:
        """Detections of a batch of frames.

        Args:
            frames: (h, w, 3) uint8 RGB frames (any sizes; one batch, padded alike).
            trace: when a list, it receives one dict per frame with every stage's values
                (``resized``, ``input``, ``batch_shape``, ``image_size``, ``body``, ``fpn``,
                ``anchors``, ``rpn_*``, ``proposals``, ``box_*``, ``class_logits``,
                ``detections``, ``mask_*``, ``result``), for checks against maskrcnn-benchmark.
        Returns:
            per frame, a :class:`LegacyDetections` (on the model's device).
        """
        device = next(self.parameters()).device
        resized, inputs = self.preprocess(frames)
        sizes = [tuple(x.shape[-2:]) for x in inputs]
        batch = pad_batch(inputs, self.settings.size_divisibility).to(device)
        body, fpn = self.features(batch)
        stages = None
        if trace is not None:
            stages = [dict(resized=r, input=x, batch_shape=tuple(batch.shape), image_size=size,
                           body=[c[i] for c in body], fpn=[p[i] for p in fpn])
                      for i, (r, x, size) in enumerate(zip(resized, inputs, sizes))]
        proposals = self.rpn(fpn, sizes, stages)
        heads = self.roi_heads(fpn, [p[0] for p in proposals], sizes, stages)
        results = [LegacyDetections(d.boxes, d.scores, d.labels, m, size) for (d, m), size in zip(heads, sizes)]
        if trace is not None:
            for st, r in zip(stages, results):
                st["result"] = r
            trace.extend(stages)
        return results


def build_legacy_maskrcnn(arch: str, num_classes: int, settings: LegacySettings | None = None,
                          **detection: Any) -> LegacyMaskRCNN:
    """A randomly initialised :class:`LegacyMaskRCNN` in eval mode; ``detection`` as in
    :meth:`LegacyMaskRCNN.configure`."""
    return LegacyMaskRCNN(arch, num_classes, settings).configure(**detection).eval()
