"""Configuration: yacs defaults, yaml files and ``KEY VALUE`` command-line overrides.

Every mistake in a config is a :class:`dmm.errors.ConfigError` naming the key and where it came
from (the yaml file or the command line): unknown keys, values of the wrong type, yaml that does
not parse, an odd number of overrides, and values no run can use (:func:`validate_config`: a
choice key outside its allowed values (:data:`dmm.config.keys.CHOICES`), a matching method with
an implementation it does not run with, a float that is not a finite float32, a number out of
range).

Dotted keys are read and set with :func:`config_value` and :func:`set_config_value`.
"""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml
from yacs.config import CfgNode

from ..errors import ConfigError, MissingInputError
from ..io import write_text
from .defaults import get_cfg_defaults
from .keys import (CHOICES, MATCHING_IMPLEMENTATIONS, check_choice, check_matching_pair, config_value,
                   flatten_config, set_config_value)

log = logging.getLogger("dmm.config")

CONFIG_DIR = Path(__file__).resolve().parent / "yaml"
#: the largest finite float32: a float key beyond it overflows where torch reads it
FLOAT32_MAX = 3.4028234663852886e38
#: keys of older configs that are switches no more: old key -> the key its True turns on.
#: SOLVER.AMP (bfloat16 autocast over the whole training forward, CUDA only) nested with
#: MODEL.AMP (the backbone and necks); MODEL.AMP is now the one switch (defaults.py).
RETIRED_SWITCHES = {"SOLVER.AMP": "MODEL.AMP"}


def package_configs() -> list[str]:
    """Names of the package's config files (``src/dmm/config/yaml/<name>.yaml``), sorted."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_config_path(name: str | os.PathLike) -> Path:
    """A yaml path as given, or the name of one of the package's files (``train``, ``eval.yaml``)."""
    path = Path(name)
    if path.is_file():
        return path
    for candidate in (CONFIG_DIR / path.name, CONFIG_DIR / f"{path.name}.yaml"):
        if candidate.is_file():
            return candidate
    known = ", ".join(package_configs())
    raise MissingInputError(f"config file {name!s} not found (package configs: {known})")


#: yacs's ValueError for a value of the wrong type
_TYPE_MISMATCH = re.compile(r"Type mismatch \(<class '(\w+)'> vs\. <class '(\w+)'>\) with values \((.*) vs\. (.*)\) "
                            r"for config key: (\S+)", re.S)

_TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "True or False",
               "list": "a list", "tuple": "a list", "NoneType": "None"}


def _merge_error(source: str, error: Exception) -> ConfigError:
    """yacs's KeyError or AssertionError (unknown key) or ValueError (wrong type) as a
    ConfigError naming ``source``."""
    if isinstance(error, (KeyError, AssertionError)):
        key = str(error.args[0]).rsplit(": ", 1)[-1]
        return ConfigError(f"{source}: unknown config key {key} (the keys and their defaults are in "
                           "src/dmm/config/defaults.py)")
    mismatch = _TYPE_MISMATCH.search(str(error))
    if mismatch:
        wanted, given, _, value, key = mismatch.groups()
        return ConfigError(f"{source}: {key} takes {_TYPE_WORDS.get(wanted, wanted)}, got {value} "
                           f"({_TYPE_WORDS.get(given, given)})")
    return ConfigError(f"{source}: {error}")


def _merge_file(cfg: CfgNode, file: Path) -> None:
    """Merge the yaml mapping of ``file`` into ``cfg``."""
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {file} is not valid yaml: {e}") from None
    if data is None:
        return
    if not isinstance(data, dict):
        raise ConfigError(f"config file {file} is not a mapping of config keys "
                          f"(its top level is a {type(data).__name__})")
    turned_on = _pop_retired(data, f"config file {file}")
    try:
        cfg.merge_from_other_cfg(CfgNode(data))
    except (KeyError, ValueError) as e:
        raise _merge_error(f"config file {file}", e) from None
    for key in turned_on:
        set_config_value(cfg, key, True)


def _retired_switch(key: str, value: Any, source: str) -> list[str]:
    """The keys a retired switch turns on: its new key when ``value`` is True, none when False."""
    if isinstance(value, str):
        value = yaml.safe_load(value)
    if not isinstance(value, bool):
        raise ConfigError(f"{source}: {key} = {value!r} must be True or False")
    if not value:
        return []
    new = RETIRED_SWITCHES[key]
    log.warning("%s: %s is no longer a key; its True turns on %s (docs/faithfulness.md)", source, key, new)
    return [new]


def _pop_retired(data: dict, source: str) -> list[str]:
    """Remove the retired switches from a config file's mapping; the keys they turn on."""
    turned_on = []
    for key in RETIRED_SWITCHES:
        section, leaf = key.split(".")
        node = data.get(section)
        if isinstance(node, dict) and leaf in node:
            turned_on += _retired_switch(key, node.pop(leaf), source)
    return turned_on


def _replace_retired(opts: Sequence[str]) -> list:
    """``KEY VALUE`` overrides with each retired switch replaced by the key it turns on (or dropped)."""
    out: list = []
    for key, value in zip(opts[::2], opts[1::2]):
        if key in RETIRED_SWITCHES:
            out += [item for new in _retired_switch(key, value, "command-line override") for item in (new, True)]
        else:
            out += [key, value]
    return out


def load_config(path: str | os.PathLike | None = None, opts: Sequence[str] = ()) -> CfgNode:
    """Defaults, then the yaml file at ``path`` (if any), then ``KEY VALUE`` pairs in ``opts``.

    Unknown keys are errors, so a typo never silently falls back to a default; the result is
    checked by :func:`validate_config` and frozen.
    """
    cfg = get_cfg_defaults()
    if len(opts) % 2:
        raise ConfigError(f"command-line overrides must be KEY VALUE pairs, got an odd number: "
                          f"{' '.join(opts)}")
    if path is not None:
        _merge_file(cfg, resolve_config_path(path))
    try:
        cfg.merge_from_list(_replace_retired(opts))
    except (KeyError, AssertionError, ValueError) as e:
        raise _merge_error("command-line override", e) from None
    validate_config(cfg)
    cfg.freeze()
    return cfg


def _at_least(low: float) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v >= low), f">= {low}"


_PROBABILITY = ((lambda v: 0.0 <= v <= 1.0), "in [0, 1]")
_THREE_VALUES = ((lambda v: len(v) == 3), "3 values (R, G, B)")

#: key -> (test of its value, what the test asks for). Choice keys are in :data:`CHOICES`.
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "DEVICE": ((lambda v: re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", v) is not None), "auto, cpu, cuda or cuda:<index>"),
    "DATA.INPUT_H": _at_least(32),
    "DATA.INPUT_W": _at_least(32),
    "DATA.LENGTH_CLIP": _at_least(1),
    "DATA.MAX_OBJECTS": _at_least(1),
    "DATA.NUM_WORKERS": _at_least(0),
    "DATA.MEAN": _THREE_VALUES,
    "DATA.STD": ((lambda v: len(v) == 3 and all(x > 0 for x in v)), "3 positive values (R, G, B)"),
    "DATA.SCALE": ((lambda v: len(v) == 2 and 0 < v[0] <= v[1]), "[min, max] with 0 < min <= max"),
    "DATA.RANDOM_FRAME_PROB": _PROBABILITY,
    "DATA.HFLIP_PROB": _PROBABILITY,
    "PROPOSALS.TOPK": _at_least(1),
    "PROPOSALS.MASK_THRESHOLD": _PROBABILITY,
    "PROPOSALS.NMS_IOU": _PROBABILITY,
    "MODEL.IOU_WEIGHT": _PROBABILITY,
    "MATCHING.LR": _at_least(0),
    "MATCHING.TRAIN_MAX_ITER": _at_least(0),
    "MATCHING.TRAIN_PROJ_ITER": _at_least(0),
    "MATCHING.TEST_MAX_ITER": _at_least(0),
    "MATCHING.TEST_PROJ_ITER": _at_least(0),
    "MATCHING.SINKHORN_ITER": _at_least(0),
    "SOLVER.NECK_LR": _at_least(0),
    "SOLVER.BACKBONE_LR": _at_least(0),
    "SOLVER.DECODER_LR": _at_least(0),
    "SOLVER.WEIGHT_DECAY": _at_least(0),
    "SOLVER.EPOCHS": _at_least(0),
    "SOLVER.BATCH_SIZE": _at_least(1),
    "SOLVER.OWN_PRED_PROB": _PROBABILITY,
    "SOLVER.GRAD_CLIP": _at_least(0),
    "SOLVER.CHECKPOINT_PERIOD": _at_least(1),
    "SOLVER.LOG_PERIOD": _at_least(1),
    "VAL.PERIOD": _at_least(1),
    "VAL.NUM_VIDEOS": _at_least(0),
    "TEST.BATCH_VIDEOS": _at_least(1),
}


def _is_float32(value: Any) -> bool:
    """Whether every float in ``value`` (a number or a list of them) is finite within float32's range."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return all(math.isfinite(v) and abs(v) <= FLOAT32_MAX for v in values if isinstance(v, float))


def validate_config(cfg: CfgNode) -> None:
    """Reject values no run can use with a ConfigError naming the key: a float that is not a
    finite float32 (torch computes in float32), a choice key outside its allowed values
    (:data:`CHOICES`, named in the message), a ``MATCHING.METHOD`` with a
    ``MATCHING.IMPLEMENTATION`` it does not run with, a batch of 0, an input smaller than the
    network's stride, a negative learning rate, ..."""
    for key, value in flatten_config(cfg).items():
        if not _is_float32(value):
            raise ConfigError(f"config key {key} = {value!r} is impossible: it must be finite and within "
                              f"float32's range (|x| <= {FLOAT32_MAX!r})")
    for key in CHOICES:
        check_choice(key, config_value(cfg, key))
    check_matching_pair(cfg.MATCHING.METHOD, cfg.MATCHING.IMPLEMENTATION)
    for key, (ok, wanted) in _RULES.items():
        value = config_value(cfg, key)
        if not ok(value):
            raise ConfigError(f"config key {key} = {value!r} is impossible: it must be {wanted}")


def save_config(cfg: CfgNode, path: str | os.PathLike) -> None:
    """Write the fully resolved config as yaml, atomically."""
    write_text(path, cfg.dump())


__all__ = ["CHOICES", "CfgNode", "MATCHING_IMPLEMENTATIONS", "check_choice", "check_matching_pair", "config_value",
           "flatten_config", "get_cfg_defaults", "load_config", "resolve_config_path", "save_config",
           "set_config_value", "validate_config"]
