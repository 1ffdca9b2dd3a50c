"""ResNet backbones from torchvision, returning C2..C5, with ImageNet weights.

ImageNet weights are read from ``MODEL.WEIGHTS_DIR`` or from torchvision's cache
(``$TORCH_HOME/hub/checkpoints``) under the file names torchvision uses; when neither has them,
torchvision's weights API downloads the 2019 (V1) weights into its cache. Offline, the error
names the file and the folders searched.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torchvision import models

from ..errors import ConfigError, InputError, MissingInputError, MissingKeyError
from ..io import load_torch

# Backbone name -> (constructor, output channels of C2..C5, torchvision weight enum).
_RESNETS = {
    "resnet18": (models.resnet18, (64, 128, 256, 512), models.ResNet18_Weights),
    "resnet34": (models.resnet34, (64, 128, 256, 512), models.ResNet34_Weights),
    "resnet50": (models.resnet50, (256, 512, 1024, 2048), models.ResNet50_Weights),
    "resnet101": (models.resnet101, (256, 512, 1024, 2048), models.ResNet101_Weights),
}


def backbone_channels(name: str) -> tuple[int, int, int, int]:
    """Channels of C2, C3, C4, C5 for a backbone name."""
    return _RESNETS[_check_name(name)][1]


def _check_name(name: str) -> str:
    if name not in _RESNETS:
        raise ConfigError(f"unknown MODEL.BACKBONE {name!r}; expected one of {sorted(_RESNETS)}")
    return name


def imagenet_weight_files(name: str) -> list[str]:
    """torchvision's file names for the ImageNet weights of ``name``, V1 (the 2019 weights) first."""
    enum = _RESNETS[_check_name(name)][2]
    return [Path(w.url).name for w in enum]


def _weight_folders(weights_dir: str | os.PathLike | None) -> list[Path]:
    """Where ImageNet weights are looked for: ``weights_dir``, then torchvision's cache."""
    folders = [Path(weights_dir)] if weights_dir else []
    return folders + [Path(torch.hub.get_dir()) / "checkpoints"]


def find_imagenet_weights(name: str, weights_dir: str | os.PathLike | None) -> Path | None:
    """The first existing ImageNet weight file for ``name`` in ``weights_dir`` or torchvision's
    cache, or None."""
    files = imagenet_weight_files(name)
    for folder in _weight_folders(weights_dir):
        for file in files:
            if (folder / file).is_file():
                return folder / file
    return None


def download_imagenet_weights(name: str, weights_dir: str | os.PathLike | None
                              ) -> dict[str, torch.Tensor]:
    """torchvision's V1 ImageNet state dict of ``name`` through its weights API, which
    downloads it into torchvision's cache.

    Raises:
        MissingInputError: the download failed (offline), naming the file and the folders searched.
    """
    weights = _RESNETS[_check_name(name)][2].IMAGENET1K_V1
    try:
        return weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except (OSError, RuntimeError, ValueError) as e:
        files = imagenet_weight_files(name)
        folders = ", ".join(str(f) for f in _weight_folders(weights_dir))
        raise MissingInputError(
            f"ImageNet weights for {name} not found: put {files[0]} (or {', '.join(files[1:])}) "
            f"into one of {folders} (MODEL.WEIGHTS_DIR or torchvision's cache), or set "
            f"MODEL.PRETRAINED none; downloading {weights.url} failed: {e}") from None


def load_backbone_state(resnet: nn.Module, state: dict, source: str | os.PathLike) -> None:
    """Load a torchvision-style ResNet state dict strictly, naming ``source`` and bad keys."""
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    own = resnet.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise MissingKeyError(f"{source}: missing keys {missing[:10]}, unexpected keys "
                              f"{unexpected[:10]}")
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise InputError(
                f"{source}: key {key} has shape {tuple(value.shape)}, the model expects "
                f"{tuple(own[key].shape)}"
            )
    resnet.load_state_dict(state)


def build_resnet(name: str, pretrained: str = "none",
                 weights_dir: str | os.PathLike | None = None) -> nn.Module:
    """A full torchvision ResNet (fc included, so checkpoint keys match the authors').

    Args:
        name: resnet18 / resnet34 / resnet50 / resnet101.
        pretrained: "imagenet" (torchvision's weights: local, cached or downloaded), "none"
            (random init) or a path to a ResNet state-dict file.
        weights_dir: folder searched before torchvision's cache for "imagenet".
    """
    ctor = _RESNETS[_check_name(name)][0]
    resnet = ctor(weights=None)
    choice = str(pretrained).strip()
    if choice.lower() == "none" or choice == "":
        return resnet
    if choice.lower() != "imagenet":
        load_backbone_state(resnet, load_torch(choice, "backbone weights file"), choice)
        return resnet
    path = find_imagenet_weights(name, weights_dir)
    if path is None:
        load_backbone_state(resnet, download_imagenet_weights(name, weights_dir),
                            f"torchvision's ImageNet weights for {name}")
    else:
        load_backbone_state(resnet, load_torch(path, "ImageNet weights file"), path)
    return resnet


def resnet_stages(resnet: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """Run a torchvision ResNet and return [C2, C3, C4, C5] (strides 4, 8, 16, 32).

    images: (B, 3, H, W) float, normalised.
    """
    x = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(images))))
    c2 = resnet.layer1(x)
    c3 = resnet.layer2(c2)
    c4 = resnet.layer3(c3)
    c5 = resnet.layer4(c4)
    return [c2, c3, c4, c5]
