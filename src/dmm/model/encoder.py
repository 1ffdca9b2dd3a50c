"""The encoder: a ResNet plus two necks, "skip" maps for refinement and "prop" maps for matching.

Submodule names give exactly the authors' checkpoint keys: ``base.*`` (the whole torchvision
ResNet, fc included), ``sk5..sk2`` + ``bn5..bn2`` (skip neck), ``prop5..prop2`` (prop neck as
``Sequential(conv, BN, ReLU, conv, BN)``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from .backbone import backbone_channels, build_resnet, resnet_stages

LEVELS = (5, 4, 3, 2)  # coarse to fine, the order of the neck's submodules and skips
STRIDES = {2: 4, 3: 8, 4: 16, 5: 32}


@dataclass
class Features:
    """One batch of encoded frames.

    Attributes:
        skips: 4 maps for the decoder, levels 5, 4, 3, 2: (B, 128, H/32, W/32),
            (B, 128, H/16, W/16), (B, 64, H/8, W/8), (B, 32, H/4, W/4) (default channels).
        props: 4 maps for the ROI features, levels 2, 3, 4, 5, each (B, 128, H/s, W/s).
    """

    skips: list[torch.Tensor]
    props: list[torch.Tensor]

    def __getitem__(self, index) -> "Features":
        """The features of some frames of the batch (an int keeps the batch dimension)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return Features([s[index] for s in self.skips], [p[index] for p in self.props])


def _conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=True)


def _prop_neck(cin: int, mid: int, out: int) -> nn.Sequential:
    return nn.Sequential(
        _conv3x3(cin, mid), nn.BatchNorm2d(mid), nn.ReLU(inplace=True), _conv3x3(mid, out),
        nn.BatchNorm2d(out),
    )


class Encoder(nn.Module):
    """ResNet C2..C5 -> skip maps (conv3x3 + BN) and prop maps (conv-BN-ReLU-conv-BN)."""

    def __init__(self, backbone: str, skip_channels: Sequence[int] = (128, 128, 64, 32),
                 prop_mid_channels: Sequence[int] = (128, 128, 64, 32), prop_channels: int = 128,
                 pretrained: str = "none", weights_dir: str | os.PathLike | None = None,
                 imagenet_version: str = "V1") -> None:
        super().__init__()
        if len(skip_channels) != 4 or len(prop_mid_channels) != 4:
            raise ValueError("skip_channels and prop_mid_channels need 4 values (levels 5..2)")
        cin = dict(zip((2, 3, 4, 5), backbone_channels(backbone)))
        self.base = build_resnet(backbone, pretrained, weights_dir, imagenet_version)
        for level, ch in zip(LEVELS, skip_channels):
            setattr(self, f"sk{level}", _conv3x3(cin[level], ch))
            setattr(self, f"bn{level}", nn.BatchNorm2d(ch))
        for level, mid in zip(LEVELS, prop_mid_channels):
            setattr(self, f"prop{level}", _prop_neck(cin[level], mid, prop_channels))
        self.skip_channels = tuple(skip_channels)

    def forward(self, images: torch.Tensor) -> Features:
        """images: (B, 3, H, W) float normalised -> :class:`Features`."""
        c = dict(zip((2, 3, 4, 5), resnet_stages(self.base, images)))
        skips = [getattr(self, f"bn{lv}")(getattr(self, f"sk{lv}")(c[lv])) for lv in LEVELS]
        props = [getattr(self, f"prop{lv}")(c[lv]) for lv in (2, 3, 4, 5)]
        return Features(skips=skips, props=props)
