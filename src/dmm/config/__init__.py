"""Configuration: yacs defaults, yaml files and ``KEY VALUE`` command-line overrides."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from yacs.config import CfgNode

from ..io import write_text
from .defaults import get_cfg_defaults

CONFIG_DIR = Path(__file__).resolve().parent / "yaml"


def resolve_config_path(name: str | os.PathLike) -> Path:
    """A yaml path as given, or the name of one of the package's files (``train``, ``eval.yaml``)."""
    path = Path(name)
    if path.is_file():
        return path
    for candidate in (CONFIG_DIR / path.name, CONFIG_DIR / f"{path.name}.yaml"):
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
    raise FileNotFoundError(f"config file {name!s} not found (package configs: {known})")


def load_config(path: str | os.PathLike | None = None, opts: Sequence[str] = ()) -> CfgNode:
    """Defaults, then the yaml file at ``path`` (if any), then ``KEY VALUE`` pairs in ``opts``.

    Unknown keys are errors, so a typo never silently falls back to a default.
    """
    cfg = get_cfg_defaults()
    if len(opts) % 2:
        raise ValueError(f"overrides must be KEY VALUE pairs, got an odd number: {list(opts)}")
    # yacs reports unknown keys and type mismatches with assert: turn them into real errors.
    if path is not None:
        file = resolve_config_path(path)
        try:
            cfg.merge_from_file(str(file))
        except AssertionError as e:
            raise KeyError(f"{file}: {e}") from None
    try:
        cfg.merge_from_list(list(opts))
    except AssertionError as e:
        raise KeyError(f"command-line override: {e}") from None
    cfg.freeze()
    return cfg


def save_config(cfg: CfgNode, path: str | os.PathLike) -> None:
    """Write the fully resolved config as yaml, atomically."""
    write_text(path, cfg.dump())


__all__ = ["CfgNode", "get_cfg_defaults", "load_config", "save_config", "resolve_config_path"]
