"""ResNet backbones from torchvision, returning C2..C5, with ImageNet weights.

ImageNet weights are read from ``MODEL.WEIGHTS_DIR`` or from torchvision's cache
(``$TORCH_HOME/hub/checkpoints``) under the file names torchvision uses; when neither has them,
torchvision's weights API downloads them into its cache. Offline, the error names the files and
the folders searched.

The 2019 code loaded ``torchvision.models.resnet50(pretrained=True)``: the V1 weights (the
file ``resnet50-19c8e357.pth`` of torchvision 0.3, which torchvision serves today as
``IMAGENET1K_V1``, ``resnet50-0676ba61.pth``). V1 is the default (``MODEL.IMAGENET_WEIGHTS``)
and either file name is taken; the V2 weights (a newer, stronger training recipe) only when
asked for, never as a stand-in for a missing V1 file. The file loaded is logged.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn
from torchvision import models

from ..config.keys import check_choice
from ..errors import ConfigError, InputError, MissingInputError, MissingKeyError
from ..io import load_torch

log = logging.getLogger("dmm.model")

# Backbone name -> (constructor, output channels of C2..C5, torchvision weight enum).
_RESNETS = {
    "resnet18": (models.resnet18, (64, 128, 256, 512), models.ResNet18_Weights),
    "resnet34": (models.resnet34, (64, 128, 256, 512), models.ResNet34_Weights),
    "resnet50": (models.resnet50, (256, 512, 1024, 2048), models.ResNet50_Weights),
    "resnet101": (models.resnet101, (256, 512, 1024, 2048), models.ResNet101_Weights),
}
#: the V1 files under the names torchvision 0.3 (2019) downloaded them as
LEGACY_V1_FILES = {"resnet18": "resnet18-5c106cde.pth", "resnet34": "resnet34-333f7ec4.pth",
                   "resnet50": "resnet50-19c8e357.pth", "resnet101": "resnet101-5d3b4d8f.pth"}


def backbone_channels(name: str) -> tuple[int, int, int, int]:
    """Channels of C2, C3, C4, C5 for a backbone name."""
    return _RESNETS[_check_name(name)][1]


def _check_name(name: str) -> str:
    return check_choice("MODEL.BACKBONE", name)


def _weights_enum(name: str, version: str):
    """torchvision's ``IMAGENET1K_<version>`` weights of ``name``."""
    enum = _RESNETS[_check_name(name)][2]
    member = getattr(enum, f"IMAGENET1K_{check_choice('MODEL.IMAGENET_WEIGHTS', version)}", None)
    if member is None:
        have = ", ".join(w.name.split("_")[-1] for w in enum)
        raise ConfigError(f"MODEL.IMAGENET_WEIGHTS {version!r}: torchvision has no such ImageNet weights for "
                          f"{name} (it has {have})")
    return member


def imagenet_weight_files(name: str, version: str = "V1") -> list[str]:
    """The file names of ``name``'s ImageNet ``version`` weights: torchvision's own first, then
    (V1) the name torchvision 0.3 used in 2019."""
    files = [Path(_weights_enum(name, version).url).name]
    if version == "V1":
        files.append(LEGACY_V1_FILES[name])
    return files


def _weight_folders(weights_dir: str | os.PathLike | None) -> list[Path]:
    """Where ImageNet weights are looked for: ``weights_dir``, then torchvision's cache."""
    folders = [Path(weights_dir)] if weights_dir else []
    return folders + [Path(torch.hub.get_dir()) / "checkpoints"]


def find_imagenet_weights(name: str, weights_dir: str | os.PathLike | None, version: str = "V1") -> Path | None:
    """The first existing file of ``name``'s ImageNet ``version`` weights in ``weights_dir`` or
    torchvision's cache, or None (a file of the other version is never taken)."""
    files = imagenet_weight_files(name, version)
    for folder in _weight_folders(weights_dir):
        for file in files:
            if (folder / file).is_file():
                return folder / file
    return None


def download_imagenet_weights(name: str, weights_dir: str | os.PathLike | None, version: str = "V1"
                              ) -> dict[str, torch.Tensor]:
    """torchvision's ``version`` ImageNet state dict of ``name`` through its weights API, which
    downloads it into torchvision's cache.

    Raises:
        MissingInputError: the download failed (offline), naming the files and the folders searched.
    """
    weights = _weights_enum(name, version)
    try:
        return weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except (OSError, RuntimeError, ValueError) as e:
        files = " or ".join(imagenet_weight_files(name, version))
        folders = ", ".join(str(f) for f in _weight_folders(weights_dir))
        raise MissingInputError(
            f"ImageNet {version} weights for {name} not found: put {files} into one of {folders} "
            f"(MODEL.WEIGHTS_DIR or torchvision's cache), or set MODEL.PRETRAINED none; downloading "
            f"{weights.url} failed: {e}") from None


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
                 weights_dir: str | os.PathLike | None = None, imagenet_version: str = "V1") -> nn.Module:
    """A full torchvision ResNet (fc included, so checkpoint keys match the authors').

    Args:
        name: resnet18 / resnet34 / resnet50 / resnet101.
        pretrained: "imagenet" (torchvision's weights: local, cached or downloaded), "none"
            (random init) or a path to a ResNet state-dict file.
        weights_dir: folder searched before torchvision's cache for "imagenet".
        imagenet_version: "V1" (2019) or "V2" (``MODEL.IMAGENET_WEIGHTS``).
    """
    ctor = _RESNETS[_check_name(name)][0]
    resnet = ctor(weights=None)
    choice = str(pretrained).strip()
    if choice.lower() == "none" or choice == "":
        return resnet
    if choice.lower() != "imagenet":
        load_backbone_state(resnet, load_torch(choice, "backbone weights file"), choice)
        log.info("backbone %s: weights from %s", name, choice)
        return resnet
    path = find_imagenet_weights(name, weights_dir, imagenet_version)
    if path is None:
        load_backbone_state(resnet, download_imagenet_weights(name, weights_dir, imagenet_version),
                            f"torchvision's ImageNet {imagenet_version} weights for {name}")
        path = Path(torch.hub.get_dir()) / "checkpoints" / imagenet_weight_files(name, imagenet_version)[0]
    else:
        load_backbone_state(resnet, load_torch(path, "ImageNet weights file"), path)
    log.info("backbone %s: ImageNet %s weights from %s", name, imagenet_version, path)
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
