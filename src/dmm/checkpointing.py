"""Checkpoints: the one module that writes and reads them, for DMM-Net and the proposal net.

**Writing.** A run's checkpoints are folders ``<root>/<name>/`` named by :func:`checkpoint_name`
(``epoXX_iterXXXXX``), each holding ``trainer.pt`` and whatever text files the caller adds
(``config.yaml``), written atomically (:func:`write_checkpoint`): a folder that exists is complete.
A DMM-Net training checkpoint's ``trainer.pt`` is :func:`training_payload`: the model state dict
(``encoder.*`` and ``decoder.*`` keys), the optimizer states, epoch, iteration and RNG states.
After each save :class:`Checkpointer` keeps the newest ``keep_last`` folders, those of the
epochs in ``keep_epochs`` and the newest one whose weights were all finite; the others are
removed, and so are temporary files that interrupted writes left behind.

**Reading.** :func:`load_checkpoint` restores a training checkpoint (model, optimizers, RNG);
:func:`load_weights` reads this project's ``trainer.pt`` and the authors' released ones (a bare
state dict, or one under ``model`` / ``state_dict``, or the older ``encoder.pt`` +
``decoder.pt``); :func:`load_optimizer_states` restores optimizers from either (the 2019
``enc_opt.pt`` and ``dec_opt.pt`` remapped by parameter name); :func:`load_rvos_weights` starts
the ResNet-101 stage from the RVOS model as 2019 did.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .checkpoint_names import checkpoint_name, parse_name
from .errors import DMMError, InputError, MissingInputError
from .io import atomic_dir, load_torch, save_torch

log = logging.getLogger("dmm.checkpointing")

TRAINER_FILE = PAYLOAD = "trainer.pt"
CONFIG_FILE = "config.yaml"
FORMAT = "dmm-checkpoint-1"
_TEMP = re.compile(r"^\..*\.tmp$")


def state_is_finite(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether every floating-point tensor of a state dict is finite."""
    return all(bool(torch.isfinite(v).all()) for v in state.values() if torch.is_floating_point(v))


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


def training_payload(state: Mapping[str, torch.Tensor], optimizers: Optimizers, epoch: int,
                     iteration: int) -> dict[str, Any]:
    """A DMM-Net training checkpoint's ``trainer.pt``: the model ``state`` dict, the optimizers'
    states (by name), epoch, iteration and the RNG states."""
    return {
        "format": FORMAT,
        "model": dict(state),
        "optimizers": {name: opt.state_dict() for name, opt in _named(optimizers).items()},
        "epoch": int(epoch),
        "iteration": int(iteration),
        "rng": rng_state(),
    }


def write_checkpoint(directory: str | os.PathLike, payload: Mapping[str, Any], files: Mapping[str, str] = (),
                     finite: bool = True) -> Path:
    """Write the folder ``directory`` atomically: ``trainer.pt`` = ``payload`` plus ``finite``
    (whether the saved weights were all finite), and the text ``files``."""
    directory = Path(directory)
    with atomic_dir(directory, overwrite=True) as tmp:
        save_torch({**payload, "finite": bool(finite)}, tmp / TRAINER_FILE)
        for name, text in dict(files).items():
            (tmp / name).write_text(text)
    return directory


def save_checkpoint(directory: str | os.PathLike, model: nn.Module, optimizers: Optimizers, cfg,
                    epoch: int, iteration: int) -> Path:
    """One training checkpoint folder (``trainer.pt`` and the ``cfg``'s ``config.yaml``) outside a
    :class:`Checkpointer`'s retention (the trainer saves through one)."""
    state = model.state_dict()
    files = {CONFIG_FILE: cfg.dump()} if cfg is not None else {}
    return write_checkpoint(directory, training_payload(state, optimizers, epoch, iteration), files,
                            state_is_finite(state))


def _load(path: Path) -> Any:
    """A checkpoint file through :func:`dmm.io.load_torch` (the 2019 ones hold an ``argparse.Namespace``)."""
    return load_torch(path, "checkpoint file", allowed=[argparse.Namespace])


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


def _pair(folder: Path, names: tuple[str, str], what: str) -> tuple[Path, Path]:
    files = tuple(folder / n for n in names)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise MissingInputError(f"{what} {folder}: {', '.join(missing)} not found")
    return files


def load_rvos_weights(model: nn.Module, folder: str | os.PathLike) -> list[str]:
    """Start from the RVOS one-shot YouTube-VOS model, as the 2019 ResNet-101 stage did
    (``train.py``, ``scripts/train/train_101.sh``): ``folder`` holds RVOS's ``encoder.pt`` (its
    ``base.*``, ``sk*``, ``bn*``) and ``decoder.pt`` (``clstm_list.*``, ``conv_out.*``); every key
    the model has too is copied (its shape must match: 2019 asserted it), RVOS keys the model lacks
    are ignored, and the model's keys RVOS lacks (the prop necks) keep their initialisation.

    A ``module.`` prefix is removed (2019 matched names exactly, so a DataParallel-saved file
    would have loaded nothing there; docs/faithfulness.md). Returns the keys left as they were.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInputError(f"RVOS model folder {folder} does not exist (2019: "
                                "experiments/dmmnet/pretrained_rvos/one-shot-model-youtubevos)")
    own = model.state_dict()
    loaded: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for prefix, file in zip(("encoder.", "decoder."), _pair(folder, ("encoder.pt", "decoder.pt"), "RVOS model")):
        for key, value in extract_state_dict(_load(file), file).items():
            name = prefix + key
            if name not in own:
                ignored.append(name)
                continue
            if tuple(value.shape) != tuple(own[name].shape):
                raise InputError(f"{file}: key {key} has shape {tuple(value.shape)} but the model's {name} is "
                                 f"{tuple(own[name].shape)} (check MODEL.BACKBONE: the RVOS model is a ResNet-101)")
            loaded[name] = value
    if not loaded:
        raise InputError(f"{folder}: no key of encoder.pt / decoder.pt matches the model (first keys: {ignored[:5]})")
    model.load_state_dict({**own, **loaded})
    kept = [k for k in own if k not in loaded]
    log.info("RVOS weights from %s: %d tensors loaded, %d kept their initialisation (%s...), %d ignored",
             folder, len(loaded), len(kept), ", ".join(kept[:3]), len(ignored))
    return kept


#: 2019 ``FeatureExtractorBase.get_skip_params``: the order of the necks group in ``enc_opt.pt``
LEGACY_NECK_ORDER = ("sk2", "sk3", "sk4", "sk5", "bn2", "bn3", "bn4", "bn5", "prop5", "prop4", "prop3", "prop2")
#: the 2019 optimizer files and the optimizer of this project each fills
LEGACY_OPTIMIZER_FILES = {"encoder": "enc_opt.pt", "decoder": "dec_opt.pt"}


def legacy_optimizer_layout(model: nn.Module) -> dict[str, list[list[str]]]:
    """Parameter names of the 2019 optimizers' groups, in their order (``train.py``): ``enc_opt``
    = [necks (``get_skip_params``), backbone (``base.named_parameters()``)], ``dec_opt`` = [the
    decoder's parameters]."""
    necks = [f"encoder.{m}.{n}" for m in LEGACY_NECK_ORDER for n, _ in getattr(model.encoder, m).named_parameters()]
    backbone = [f"encoder.base.{n}" for n, _ in model.encoder.base.named_parameters()]
    decoder = [f"decoder.{n}" for n, _ in model.decoder.named_parameters()]
    return {"encoder": [necks, backbone], "decoder": [decoder]}


def _group_names(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[list[str]]:
    names = {id(p): n for n, p in model.named_parameters()}
    return [[names[id(p)] for p in group["params"]] for group in optimizer.param_groups]


def remap_optimizer_state(saved: Mapping[str, Any], saved_names: list[list[str]], optimizer: torch.optim.Optimizer,
                          names: list[list[str]], params: Mapping[str, torch.Tensor], source: Path) -> dict:
    """An optimizer state dict saved with its groups' parameters in ``saved_names`` order, rewritten
    for ``optimizer`` whose groups hold ``names``: each parameter's moments move with its name;
    the saved hyper-parameters (learning rates included) are kept, as torch's ``load_state_dict``
    keeps them."""
    groups = saved.get("param_groups") if isinstance(saved, Mapping) else None
    if not isinstance(groups, list) or len(groups) != len(names):
        raise InputError(f"{source}: expected an optimizer state with {len(names)} parameter groups, found "
                         f"{len(groups) if isinstance(groups, list) else type(saved).__name__}")
    state, new_groups, index = {}, [], 0
    for k, (group, wanted, stored) in enumerate(zip(groups, names, saved_names)):
        if len(group["params"]) != len(stored) or sorted(wanted) != sorted(stored):
            raise InputError(f"{source}: parameter group {k} holds {len(group['params'])} parameters, the model's "
                             f"{len(wanted)} (check MODEL.BACKBONE)")
        position = {name: pid for name, pid in zip(stored, group["params"])}
        ids = []
        for name in wanted:
            entry = saved["state"].get(position[name])
            if entry is not None:
                for key, value in entry.items():
                    if torch.is_tensor(value) and value.dim() and tuple(value.shape) != tuple(params[name].shape):
                        raise InputError(f"{source}: the {key} of {name} has shape {tuple(value.shape)}, the "
                                         f"parameter {tuple(params[name].shape)}")
                state[index] = dict(entry)
            ids.append(index)
            index += 1
        extra = {"name": optimizer.param_groups[k]["name"]} if "name" in optimizer.param_groups[k] else {}
        new_groups.append({**{key: v for key, v in group.items() if key != "params"}, **extra, "params": ids})
    return {"state": state, "param_groups": new_groups}


def load_optimizer_states(model: nn.Module, optimizers: Mapping[str, torch.optim.Optimizer],
                          checkpoint: str | os.PathLike) -> str:
    """Restore the optimizers (Adam's moments and learning rates) from ``checkpoint``: this
    project's ``trainer.pt`` (its ``optimizers``) or the 2019 folder's ``enc_opt.pt`` +
    ``dec_opt.pt``. Returns which files were read; a checkpoint without optimizer state is an
    error naming it."""
    path = Path(checkpoint)
    folder = path if path.is_dir() else path.parent
    trainer = path / TRAINER_FILE if path.is_dir() else path
    if trainer.is_file():
        payload = _load(trainer)
        saved = payload.get("optimizers") if isinstance(payload, Mapping) else None
        if saved:
            for name, opt in optimizers.items():
                if name not in saved:
                    raise InputError(f"{trainer}: no state for optimizer {name!r} (saved: {sorted(saved)})")
                opt.load_state_dict(saved[name])
            return str(trainer)
    legacy = [folder / LEGACY_OPTIMIZER_FILES[name] for name in optimizers]
    if not all(f.is_file() for f in legacy):
        raise InputError(
            f"{path} holds no optimizer state (neither this project's trainer.pt with optimizers nor the 2019 "
            f"{' + '.join(LEGACY_OPTIMIZER_FILES.values())}): SOLVER.INIT_OPTIMIZERS restores Adam's moments and "
            "learning rates from it, as the 2019 online training's --resume did; give a checkpoint that has them, "
            "or set SOLVER.INIT_OPTIMIZERS False to start with fresh optimizers (a departure from 2019)")
    layout = legacy_optimizer_layout(model)
    params = dict(model.named_parameters())
    for (name, opt), file in zip(optimizers.items(), legacy):
        state = remap_optimizer_state(_load(file), layout[name], opt, _group_names(model, opt), params, file)
        opt.load_state_dict(state)
    return " + ".join(str(f) for f in legacy)


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


class Checkpointer:
    """Save, list, prune and find the checkpoints of one run folder."""

    def __init__(self, root: str | os.PathLike, keep_last: int = 3, keep_epochs: Iterable[int] = ()) -> None:
        self.root = Path(root)
        self.keep_last = max(1, int(keep_last))
        self.keep_epochs = {int(e) for e in keep_epochs}

    def checkpoints(self) -> list[Path]:
        """Complete checkpoint folders, oldest first (by iteration)."""
        if not self.root.is_dir():
            return []
        found = [(parse_name(p.name), p) for p in self.root.iterdir() if p.is_dir() and (p / PAYLOAD).is_file()]
        return [p for key, p in sorted((k, p) for k, p in found if k is not None)]

    def save(self, epoch: int, iteration: int, payload: dict[str, Any], files: Mapping[str, str] = (),
             finite: bool = True) -> Path:
        """Write ``<root>/epoXX_iterXXXXX/`` (``trainer.pt`` = ``payload``, plus text ``files``), then prune.

        ``finite``: whether the saved weights are all finite; the newest finite checkpoint is
        never pruned (see :meth:`latest_finite`).
        """
        path = write_checkpoint(self.root / checkpoint_name(epoch, iteration), payload, files, finite)
        self.prune()
        return path

    def is_finite(self, path: Path) -> bool:
        """Whether the checkpoint's weights were all finite when it was saved (False if unreadable)."""
        try:
            payload = load_torch(path / PAYLOAD, "checkpoint file", mmap=True)
        except DMMError:  # an unreadable checkpoint is not a finite one
            return False
        return bool(payload.get("finite", True)) if isinstance(payload, Mapping) else False

    def latest_finite(self) -> Path | None:
        """The newest checkpoint whose weights were finite when saved."""
        for path in reversed(self.checkpoints()):
            if self.is_finite(path):
                return path
        return None

    def prune(self) -> None:
        """Remove old checkpoints (keeping the newest ``keep_last``, ``keep_epochs`` and the newest
        finite one) and the temporary files of interrupted writes."""
        paths = self.checkpoints()
        keep = set(paths[-self.keep_last:])
        keep |= {p for p in paths if parse_name(p.name)[0] in self.keep_epochs}
        finite = self.latest_finite()
        if finite is not None:
            keep.add(finite)
        for path in paths:
            if path not in keep:
                shutil.rmtree(path, ignore_errors=True)
        self.sweep_temporaries()

    def sweep_temporaries(self) -> list[Path]:
        """Remove the ``.<name>.<random>.tmp`` leftovers of interrupted atomic writes in the run folder."""
        removed = []
        if not self.root.is_dir():
            return removed
        for path in self.root.iterdir():
            if _TEMP.match(path.name):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    def load_latest(self, load: Callable[[Path], Any]) -> tuple[Path, Any] | None:
        """``load`` the newest checkpoint that loads; truncated newer ones are skipped with a warning."""
        for path in reversed(self.checkpoints()):
            try:
                return path, load(path)
            except DMMError as e:
                log.warning("checkpoint %s cannot be read (%s); trying the one before", path, e)
        return None
