"""Dotted config keys: reading and setting them, and the allowed values of every choice key.

:data:`CHOICES` is the one place a choice key's allowed values are written: :func:`dmm.config.validate_config`
checks every key in it, and the modules that use a key import its values from here
(:func:`check_choice`) instead of keeping their own list. Adding a choice key is one line in it.
"""

from __future__ import annotations

from typing import Any

from yacs.config import CfgNode

from ..errors import ConfigError

#: ``MATCHING.METHOD`` -> the ``MATCHING.IMPLEMENTATION`` values it runs with. The relaxed layer
#: ("dykstra") has three implementations (:func:`dmm.model.matching.relax`); the Hungarian
#: solver runs each problem exactly on the host ("exact"), Sinkhorn the padded batch at once
#: ("batched"). Every other pair is a :class:`ConfigError`.
MATCHING_IMPLEMENTATIONS: dict[str, tuple[str, ...]] = {
    "dykstra": ("exact", "batched", "triton"),
    "hungarian": ("exact",),
    "sinkhorn": ("batched",),
}

#: choice key -> its allowed values (``src/dmm/config/defaults.py`` says what each one means).
CHOICES: dict[str, tuple[str, ...]] = {
    "DATA.DATASET": ("youtubevos", "davis"),
    "DATA.IMAGE_RESIZE": ("nearest", "bilinear"),
    "PROPOSALS.KEEP_ORDER": ("stored", "score"),
    "PROPOSALS.EMPTY_FRAME": ("split_last", "empty"),
    "MODEL.BACKBONE": ("resnet18", "resnet34", "resnet50", "resnet101"),
    "MODEL.IMAGENET_WEIGHTS": ("V1", "V2"),
    "MODEL.ROI_POOL": ("auto", "separable", "torchvision"),
    "MODEL.OBJECTS": ("legacy", "all"),
    "MATCHING.METHOD": tuple(MATCHING_IMPLEMENTATIONS),
    "MATCHING.IMPLEMENTATION": ("exact", "batched", "triton"),
    "SOLVER.INIT_WEIGHTS": ("dmm", "rvos"),
    "SOLVER.OWN_PRED_COIN": ("step", "group"),
    "TEST.LABELS_AT": ("input", "frame"),
}


def _parent(cfg: CfgNode, key: str) -> tuple[CfgNode, str]:
    """(the node holding the dotted ``key``, the key's last part); ConfigError for an unknown key."""
    node: Any = cfg
    *parents, leaf = key.split(".")
    for part in parents:
        if not isinstance(node, CfgNode) or part not in node:
            raise ConfigError(f"unknown config key {key}")
        node = node[part]
    if not isinstance(node, CfgNode) or leaf not in node:
        raise ConfigError(f"unknown config key {key}")
    return node, leaf


def config_value(cfg: CfgNode, key: str) -> Any:
    """The value of a dotted key (``"SOLVER.EPOCHS"``; a node for ``"MODEL"``)."""
    node, leaf = _parent(cfg, key)
    return node[leaf]


def set_config_value(cfg: CfgNode, key: str, value: Any) -> None:
    """Set an existing dotted key of a mutable (defrosted) config."""
    node, leaf = _parent(cfg, key)
    setattr(node, leaf, value)


def flatten_config(cfg: CfgNode, prefix: str = "") -> dict[str, Any]:
    """Every leaf of ``cfg`` by its dotted key, in the config's order."""
    out: dict[str, Any] = {}
    for name, value in cfg.items():
        key = f"{prefix}{name}"
        out.update(flatten_config(value, key + ".") if isinstance(value, CfgNode) else {key: value})
    return out


def check_choice(key: str, value: Any) -> str:
    """``value`` if it is one of the allowed values of the choice key ``key``, else a ConfigError
    naming the key, the value and the allowed values."""
    allowed = CHOICES[key]
    if value not in allowed:
        raise ConfigError(f"config key {key} = {value!r} is not a choice: it must be one of {', '.join(allowed)}")
    return value


def check_matching_pair(method: str, implementation: str) -> None:
    """A ConfigError naming the valid pairs unless ``MATCHING.METHOD`` runs with ``MATCHING.IMPLEMENTATION``."""
    check_choice("MATCHING.METHOD", method)
    check_choice("MATCHING.IMPLEMENTATION", implementation)
    if implementation not in MATCHING_IMPLEMENTATIONS[method]:
        pairs = ", ".join(f"{m} x {i}" for m, impls in MATCHING_IMPLEMENTATIONS.items() for i in impls)
        raise ConfigError(f"config keys MATCHING.METHOD = {method!r} and MATCHING.IMPLEMENTATION = "
                          f"{implementation!r} do not go together: the valid pairs (METHOD x IMPLEMENTATION) "
                          f"are {pairs}")


__all__ = ["CHOICES", "MATCHING_IMPLEMENTATIONS", "check_choice", "check_matching_pair", "config_value",
           "flatten_config", "set_config_value"]
