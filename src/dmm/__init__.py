"""DMM-Net: Differentiable Mask-Matching Network for video object segmentation (ICCV 2019)."""

__version__ = "0.1.0"
