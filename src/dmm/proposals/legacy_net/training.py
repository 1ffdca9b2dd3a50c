"""Fine-tune a :class:`LegacyMaskRCNN` with torchvision's Mask R-CNN training code.

maskrcnn-benchmark's training (its losses, samplers and solver) is not reproduced: the legacy
model's modules (ResNe(X)t-FPN body, ``RPNHead``, ``TwoMLPHead``, predictors, mask head) are
shared with a torchvision ``MaskRCNN`` (:func:`training_view`) that computes torchvision's
losses. What carries over from maskrcnn-benchmark: the modules and weights, the frozen batch
norms without eps, the stem and ``layer1`` frozen, the BGR x255 input minus the Caffe2 mean with
zero padding, the legacy cell anchors, the samplers' sizes and IoU thresholds. What differs is
listed in ``docs/faithfulness.md`` ("The proposal net (maskrcnn-benchmark)"). The view's state
dict has the legacy model's key names, so :func:`benchmark_checkpoint_state` writes
maskrcnn-benchmark's names and the result loads back into a :class:`LegacyMaskRCNN` (or into
maskrcnn-benchmark itself).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign

from .model import LegacyMaskRCNN
from .weights import ANCHOR_PREFIX, benchmark_key


class BGRBackbone(nn.Module):
    """The legacy body and FPN behind torchvision's transform: reverses the channels (RGB to
    BGR) of an input that the transform already scaled to x255 minus the mean."""

    def __init__(self, body: nn.Module, fpn: nn.Module, out_channels: int) -> None:
        super().__init__()
        self.body = body
        self.fpn = fpn
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.fpn(self.body(x.flip(1)))


def training_view(model: LegacyMaskRCNN, *, min_size: int = 800, max_size: int = 1333,
                  **options: Any) -> MaskRCNN:
    """A torchvision ``MaskRCNN`` sharing ``model``'s modules (training updates ``model``).

    ``options`` go to ``MaskRCNN`` (e.g. ``rpn_pre_nms_top_n_train``,
    ``box_batch_size_per_image``). The transform normalises with the Caffe2 mean and std 1/255
    (RGB order), so the body sees maskrcnn-benchmark's BGR x255 input and zero padding.
    """
    s = model.settings
    anchors = AnchorGenerator(tuple((size,) for size in s.rpn.anchor_sizes),
                              (tuple(s.rpn.aspect_ratios),) * len(s.rpn.anchor_sizes))
    anchors.cell_anchors = [c.clone() for c in model.rpn.cells]
    rpn_defaults = dict(rpn_pre_nms_top_n_train=2000, rpn_post_nms_top_n_train=2000,
                        rpn_pre_nms_top_n_test=s.rpn.pre_nms_top_n, rpn_post_nms_top_n_test=s.rpn.fpn_post_nms_top_n,
                        rpn_nms_thresh=s.rpn.nms_thresh, box_score_thresh=s.roi_heads.score_thresh,
                        box_nms_thresh=s.roi_heads.nms, box_detections_per_img=s.roi_heads.detections_per_img)
    heads = model.roi_heads
    return MaskRCNN(
        BGRBackbone(model.backbone.body, model.backbone.fpn, model.backbone.out_channels),
        num_classes=None, min_size=min_size, max_size=max_size,
        image_mean=[m / 255 for m in reversed(s.pixel_mean)], image_std=[sd / 255 for sd in reversed(s.pixel_std)],
        rpn_anchor_generator=anchors, rpn_head=model.rpn.head,
        box_roi_pool=MultiScaleRoIAlign(["0", "1", "2", "3"], s.roi_heads.box_resolution, s.roi_heads.sampling_ratio),
        box_head=heads.box_head, box_predictor=heads.box_predictor,
        mask_roi_pool=MultiScaleRoIAlign(["0", "1", "2", "3"], s.roi_heads.mask_resolution,
                                         s.roi_heads.sampling_ratio),
        mask_head=heads.mask_head, mask_predictor=heads.mask_predictor,
        **{**rpn_defaults, **options})


def benchmark_checkpoint_state(view: MaskRCNN) -> dict[str, torch.Tensor]:
    """The view's weights with maskrcnn-benchmark's key names (and its cell anchors)."""
    out = {benchmark_key(k): v for k, v in view.state_dict().items()}
    for i, cell in enumerate(view.rpn.anchor_generator.cell_anchors):
        out[f"{ANCHOR_PREFIX}{i}"] = cell.detach().cpu().clone()
    return dict(sorted(out.items()))


def load_benchmark_checkpoint_state(view: MaskRCNN, state: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`benchmark_checkpoint_state` (strict)."""
    names = {benchmark_key(k): k for k in view.state_dict()}
    view.load_state_dict({names[k]: v for k, v in state.items() if not k.startswith(ANCHOR_PREFIX)})
