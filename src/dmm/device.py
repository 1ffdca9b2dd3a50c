"""Choosing the torch device from a config or command-line value (a leaf module)."""

from __future__ import annotations

import torch

from .errors import ConfigError


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` picks CUDA (this process's local GPU) when available, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"DEVICE {name!r} is not a device (auto, cpu, cuda, cuda:1, ...): {e}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"DEVICE {name!r} asks for CUDA, but no CUDA device is available (use DEVICE cpu or auto)")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device
