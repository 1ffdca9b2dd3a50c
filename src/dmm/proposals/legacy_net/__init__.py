"""maskrcnn-benchmark's Mask R-CNN (the 2019 proposal nets), built from torchvision parts.

The authors extracted proposals with maskrcnn-benchmark (``configs/caffe2/
e2e_mask_rcnn_X_101_32x8d_FPN_1x_caffe2.yaml``), which no longer builds. This package runs its
checkpoints without it: torchvision's ResNe(X)t, ``FeaturePyramidNetwork``, ``RPNHead``,
``TwoMLPHead``, ``FastRCNNPredictor``, ``MaskRCNNHeads``, ``MaskRCNNPredictor`` and
``torchvision.ops.roi_align``, with small named pieces where maskrcnn-benchmark's rules differ
from torchvision's defaults (``docs/faithfulness.md``, "The proposal net (maskrcnn-benchmark)").

Modules: ``transform`` (resize rule, BGR255 input, padding), ``anchors`` (centred, rounded
cell anchors), ``box_ops`` (the +1 box coder, clip, legacy NMS, areas), ``rpn`` (per-level
top-k, NMS and the per-image merge), ``roi_heads`` (level mapper, ROIAlign per level, per-class
detections, unpasted masks), ``model`` (:class:`LegacyMaskRCNN`), ``weights`` (maskrcnn-benchmark
checkpoints and Detectron pickles), ``predictions`` (the 2019 ``predictions.pth`` layout).
"""

from .model import LEGACY_ARCHS, LegacyDetections, LegacyMaskRCNN, LegacySettings, build_legacy_maskrcnn
from .weights import load_legacy_maskrcnn, read_legacy_weights

__all__ = ["LEGACY_ARCHS", "LegacyDetections", "LegacyMaskRCNN", "LegacySettings", "build_legacy_maskrcnn",
           "load_legacy_maskrcnn", "read_legacy_weights"]
