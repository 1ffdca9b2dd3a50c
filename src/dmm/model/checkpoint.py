"""Checkpoints: this project's training checkpoints and the authors' released weights.

A checkpoint directory holds ``trainer.pt`` (model state dict with ``encoder.*`` and ``decoder.*``
keys, optimizer states, epoch, iteration and RNG states) and ``config.yaml``; both are written
atomically. :func:`load_weights` also reads the authors' ``trainer.pt`` (a bare state dict, or
one under a top-level ``model`` / ``state_dict`` key) and the older ``encoder.pt`` + ``decoder.pt``.
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import InputError, MissingInputError
from ..io import atomic_dir, save_torch

TRAINER_FILE = "trainer.pt"
CONFIG_FILE = "config.yaml"
FORMAT = "dmm-checkpoint-1"

Optimizers = Mapping[str, torch.optim.Optimizer] | Sequence[torch.optim.Optimizer] | None


def _named(optimizers: Optimizers) -> dict[str, torch.optim.Optimizer]:
    if optimizers is None:
        return {}
    if isinstance(optimizers, Mapping):
        return dict(optimizers)
    return {str(i): opt for i, opt in enumerate(optimizers)}


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch and CUDA generator states, as tensors and plain numbers."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Undo :func:`rng_state` (the CUDA part only where CUDA is available)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(directory: str | os.PathLike, model: nn.Module, optimizers: Optimizers, cfg,
                    epoch: int, iteration: int, finite: bool = True) -> Path:
    """Write the checkpoint folder ``directory`` (``trainer.pt`` and ``config.yaml``) atomically.

    ``optimizers`` is a mapping name -> optimizer (or a sequence, named "0", "1", ...);
    ``finite`` records whether the weights were all finite.
    """
    directory = Path(directory)
    payload = {
        "format": FORMAT,
        "model": model.state_dict(),
        "optimizers": {name: opt.state_dict() for name, opt in _named(optimizers).items()},
        "epoch": int(epoch),
        "iteration": int(iteration),
        "rng": rng_state(),
        "finite": bool(finite),
    }
    with atomic_dir(directory, overwrite=True) as tmp:
        save_torch(payload, tmp / TRAINER_FILE)
        if cfg is not None:
            (tmp / CONFIG_FILE).write_text(cfg.dump())
    return directory


def _load(path: Path) -> Any:
    if not path.is_file():
        raise MissingInputError(f"checkpoint file {path} does not exist")
    with torch.serialization.safe_globals([argparse.Namespace]):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise InputError(f"cannot read checkpoint {path}: it holds pickled objects other than tensors and "
                             f"plain values, so it is refused for safety ({str(e).splitlines()[0]})") from e
        except (RuntimeError, OSError, EOFError, ValueError) as e:
            raise InputError(f"cannot read checkpoint {path}: the file is truncated or not a torch file "
                             f"({str(e).splitlines()[0]})") from e


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def extract_state_dict(obj: Any, source: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The model state dict in a loaded file: bare, or under ``model`` / ``state_dict``.

    A ``module.`` prefix (DataParallel) is removed.
    """
    if not _is_state_dict(obj):
        for key in ("model", "state_dict"):
            if isinstance(obj, Mapping) and _is_state_dict(obj.get(key)):
                obj = obj[key]
                break
        else:
            keys = sorted(obj)[:10] if isinstance(obj, Mapping) else type(obj).__name__
            raise InputError(f"{source}: no state dict found (top level: {keys}); expected a state dict "
                             f"or one under 'model' / 'state_dict'")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str | os.PathLike) -> None:
    """Raise naming missing and unexpected keys, or a key whose shape differs (with both shapes)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise InputError(f"{source}: {len(missing)} missing keys {missing[:20]}, "
                         f"{len(unexpected)} unexpected keys {unexpected[:20]} (check MODEL.BACKBONE)")
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise InputError(f"{source}: key {key} has shape {tuple(value.shape)} but the model's is "
                             f"{tuple(own[key].shape)} (check MODEL.BACKBONE)")


def load_state_dict_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str | os.PathLike) -> None:
    check_state_dict(model, state, source)
    model.load_state_dict(state, strict=True)


def _prefixed(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {(k if k.startswith(prefix) else prefix + k): v for k, v in state.items()}


def load_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Load model weights strictly from this project's or the authors' checkpoints.

    ``path`` is a ``trainer.pt`` file, or a directory holding ``trainer.pt`` or the older
    ``encoder.pt`` + ``decoder.pt`` pair (keys with or without the ``encoder.`` / ``decoder.`` prefix).
    """
    path = Path(path)
    if path.is_dir():
        if (path / TRAINER_FILE).is_file():
            path = path / TRAINER_FILE
        elif (path / "encoder.pt").is_file() and (path / "decoder.pt").is_file():
            state = _prefixed(extract_state_dict(_load(path / "encoder.pt"), path / "encoder.pt"), "encoder.")
            state.update(_prefixed(extract_state_dict(_load(path / "decoder.pt"), path / "decoder.pt"), "decoder."))
            load_state_dict_strict(model, state, path)
            return
        else:
            raise MissingInputError(f"{path} holds neither {TRAINER_FILE} nor encoder.pt + decoder.pt")
    if not path.exists():
        raise MissingInputError(f"checkpoint {path} does not exist")
    load_state_dict_strict(model, extract_state_dict(_load(path), path), path)


def config_beside(checkpoint: str | os.PathLike) -> Path | None:
    """The ``config.yaml`` saved with a checkpoint of this project (in its folder), or None."""
    path = Path(checkpoint)
    folder = path if path.is_dir() else path.parent
    candidate = folder / CONFIG_FILE
    return candidate if candidate.is_file() else None


def load_checkpoint(directory: str | os.PathLike, model: nn.Module, optimizers: Optimizers = None,
                    restore_rng: bool = False) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (model strictly, optimizers by name).

    Returns ``{"epoch", "iteration", "rng", "config"}`` (config: the yaml text or None).
    With ``restore_rng`` the saved generator states are restored too.
    """
    directory = Path(directory)
    file = directory / TRAINER_FILE if directory.is_dir() else directory
    payload = _load(file)
    load_state_dict_strict(model, extract_state_dict(payload, file), file)
    saved = payload.get("optimizers", {}) if isinstance(payload, Mapping) else {}
    for name, opt in _named(optimizers).items():
        if name not in saved:
            raise InputError(f"{file}: no state for optimizer {name!r} (saved: {sorted(saved)})")
        opt.load_state_dict(saved[name])
    rng = payload.get("rng") if isinstance(payload, Mapping) else None
    if restore_rng and rng is not None:
        restore_rng_state(rng)
    config_path = file.parent / CONFIG_FILE
    return {
        "epoch": payload.get("epoch") if isinstance(payload, Mapping) else None,
        "iteration": payload.get("iteration") if isinstance(payload, Mapping) else None,
        "rng": rng,
        "config": config_path.read_text() if config_path.is_file() else None,
    }
