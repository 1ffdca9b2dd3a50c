"""Load maskrcnn-benchmark checkpoints and Detectron pickles into :class:`LegacyMaskRCNN`.

Files read:

- maskrcnn-benchmark checkpoints (``tools/train_net.py`` writes ``{"model": state_dict,
  "optimizer", "scheduler", "iteration"}``; a distributed run's keys start with ``module.``, which
  is dropped; a bare state dict also loads). Read with ``torch.load(weights_only=True)``.
- Detectron pickles (the caffe2 configs' ``catalog://Caffe2Detectron/COCO/...`` weights,
  ``{"blobs": {name: ndarray}, ...}``), read by an unpickler that admits only numpy arrays,
  dtypes and plain containers (a pickle that would call anything else is refused, naming the
  global), renamed as maskrcnn-benchmark's ``utils/c2_model_loading.py`` renames them, and
  matched to the model's keys by its rule (``utils/model_serialization.py``: each model key takes
  the longest loaded key that is a suffix of it). Detectron's affine batch norms have no running
  statistics: those stay 0 and 1, as in maskrcnn-benchmark.
- This project's proposal-net checkpoints of a legacy architecture
  (``dmm.proposals.train_propnet``: ``{"format": "dmm-propnet", "arch", "model"}`` with
  maskrcnn-benchmark's key names).

The architecture and the class count are read from the file (the number of ``layer3`` blocks,
the grouped 3x3 conv's shape, ``cls_score``'s rows). A key the model lacks or needs, or a shape
that differs, is an :class:`~dmm.errors.InputError` naming the file and the keys.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1
    from numpy.core import multiarray as _multiarray

from dmm.errors import InputError, MissingInputError, UnsafePickleError
from dmm.io import load_torch

from .model import LEGACY_ARCHS, LegacyMaskRCNN, LegacySettings

log = logging.getLogger("dmm.proposals")

CHECKPOINT_FORMAT = "dmm-propnet"
#: the key whose rows give the class count (maskrcnn-benchmark's names)
CLASS_KEY = "roi_heads.box.predictor.cls_score.weight"
ANCHOR_PREFIX = "rpn.anchor_generator.cell_anchors."
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."


# ---------------------------------------------------------------------------------------------
# maskrcnn-benchmark names <-> this model's (torchvision's) names

_TO_BENCHMARK = [
    (r"^backbone\.body\.(conv1|bn1)\.", r"backbone.body.stem.\1."),
    (r"^backbone\.fpn\.inner_blocks\.(\d+)\.0\.", lambda m: f"backbone.fpn.fpn_inner{int(m[1]) + 1}."),
    (r"^backbone\.fpn\.layer_blocks\.(\d+)\.0\.", lambda m: f"backbone.fpn.fpn_layer{int(m[1]) + 1}."),
    (r"^rpn\.head\.conv\.0\.0\.", "rpn.head.conv."),
    (r"^roi_heads\.box_head\.", "roi_heads.box.feature_extractor."),
    (r"^roi_heads\.box_predictor\.", "roi_heads.box.predictor."),
    (r"^roi_heads\.mask_head\.(\d+)\.0\.", lambda m: f"roi_heads.mask.feature_extractor.mask_fcn{int(m[1]) + 1}."),
    (r"^roi_heads\.mask_predictor\.", "roi_heads.mask.predictor."),
]


def benchmark_key(key: str) -> str:
    """maskrcnn-benchmark's name of one of this model's state-dict keys."""
    for pattern, repl in _TO_BENCHMARK:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    return key


def benchmark_state_dict(model: LegacyMaskRCNN) -> dict[str, torch.Tensor]:
    """The model's state dict with maskrcnn-benchmark's key names (anchors included): what a
    maskrcnn-benchmark checkpoint's ``"model"`` holds."""
    out = {benchmark_key(k): v for k, v in model.state_dict().items()}
    for i, cell in enumerate(model.rpn.cells):
        out[f"{ANCHOR_PREFIX}{i}"] = cell.clone()
    return dict(sorted(out.items()))


# ---------------------------------------------------------------------------------------------
# Detectron pickles

_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): __import__("collections").OrderedDict,
    # Python 3 writes bytes in protocol 2 as _codecs.encode(text, "latin1")
    ("_codecs", "encode"): __import__("codecs").encode,
}


class _ArrayUnpickler(pickle.Unpickler):
    """Resolves only numpy arrays, dtypes and plain containers."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _NUMPY_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refusing to load global {module}.{name}: a Detectron weights "
                                    "pickle may only hold numpy arrays") from None


def read_detectron_pickle(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The blobs of a Detectron weights pickle (``{"blobs": {...}}`` or the blobs themselves)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = _ArrayUnpickler(f, encoding="latin1").load()
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise InputError(f"weights file {path} is truncated or not a Detectron pickle "
                         f"({type(e).__name__}: {e})") from None
    blobs = data.get("blobs", data) if isinstance(data, dict) else None
    if not isinstance(blobs, dict):
        raise InputError(f"{path} is not a Detectron weights pickle (a dict of numpy arrays, or "
                         "{'blobs': ...})")
    blobs = {k: np.asarray(v) if isinstance(v, np.generic) else v for k, v in blobs.items()}
    odd = [str(k) for k, v in blobs.items() if not isinstance(v, np.ndarray)]
    if odd:
        raise InputError(f"{path}: Detectron blobs that are not arrays: {_few(odd)}")
    return blobs


_DETECTRON_RULES = [
    (r"^conv1_w$", "conv1.weight"),
    (r"^res_conv1_bn_([sb])$", lambda m: f"bn1.{_AFFINE[m[1]]}"),
    (r"^res(\d)_(\d+)_branch2([abc])_w$", lambda m: f"layer{int(m[1]) - 1}.{m[2]}.conv{'abc'.index(m[3]) + 1}.weight"),
    (r"^res(\d)_(\d+)_branch2([abc])_bn_([sb])$",
     lambda m: f"layer{int(m[1]) - 1}.{m[2]}.bn{'abc'.index(m[3]) + 1}.{_AFFINE[m[4]]}"),
    (r"^res(\d)_(\d+)_branch1_w$", lambda m: f"layer{int(m[1]) - 1}.{m[2]}.downsample.0.weight"),
    (r"^res(\d)_(\d+)_branch1_bn_([sb])$", lambda m: f"layer{int(m[1]) - 1}.{m[2]}.downsample.1.{_AFFINE[m[3]]}"),
    (r"^fpn_inner_res(\d)_(\d+)_sum(?:_lateral)?_([wb])$", lambda m: f"fpn_inner{int(m[1]) - 1}.{_PARAM[m[3]]}"),
    (r"^fpn_res(\d)_(\d+)_sum_([wb])$", lambda m: f"fpn_layer{int(m[1]) - 1}.{_PARAM[m[3]]}"),
    (r"^conv_rpn_fpn2_([wb])$", lambda m: f"rpn.head.conv.{_PARAM[m[1]]}"),
    (r"^rpn_(cls_logits|bbox_pred)_fpn2_([wb])$", lambda m: f"rpn.head.{m[1]}.{_PARAM[m[2]]}"),
    (r"^(fc6|fc7|cls_score|bbox_pred|conv5_mask|mask_fcn_logits)_([wb])$", lambda m: f"{m[1]}.{_PARAM[m[2]]}"),
    (r"^_\[mask\]_fcn(\d)_([wb])$", lambda m: f"mask_fcn{m[1]}.{_PARAM[m[2]]}"),
    (r"^pred_([wb])$", lambda m: f"fc1000.{_PARAM[m[1]]}"),  # an ImageNet classifier: unused
]
_AFFINE = {"s": "weight", "b": "bias"}
_PARAM = {"w": "weight", "b": "bias"}


def detectron_name(blob: str) -> str | None:
    """maskrcnn-benchmark's short name of a Detectron blob (``res2_0_branch2a_w`` ->
    ``layer1.0.conv1.weight``, ``conv_rpn_fpn2_w`` -> ``rpn.head.conv.weight``), or None for a
    name outside the FPN Mask R-CNN's layout."""
    for pattern, repl in _DETECTRON_RULES:
        m = re.match(pattern, blob)
        if m:
            return repl if isinstance(repl, str) else repl(m)
    return None


def align_by_suffix(model_keys: list[str], loaded: dict[str, Any]) -> dict[str, str]:
    """``{model key: loaded key}``: each model key takes the longest loaded key that is a suffix
    of it (maskrcnn-benchmark's ``align_and_update_state_dicts``); unmatched keys are left out."""
    out = {}
    for key in model_keys:
        best = max((k for k in loaded if key.endswith(k)), key=len, default=None)
        if best is not None:
            out[key] = best
    return out


def detectron_to_benchmark(blobs: dict[str, np.ndarray], model_keys: list[str], source: Path
                           ) -> dict[str, torch.Tensor]:
    """Detectron blobs as a state dict with maskrcnn-benchmark's full key names.

    Momentum blobs are dropped; blobs outside the FPN Mask R-CNN's naming are skipped with a
    warning (maskrcnn-benchmark ignores what matches no key); a renamed blob that no model key
    takes (another architecture) is an error naming it (the ImageNet classifier ``pred_*`` excepted).
    """
    renamed, unknown = {}, []
    for blob, value in blobs.items():
        if blob.endswith("_momentum"):
            continue
        name = detectron_name(blob)
        if name is None:
            unknown.append(blob)
        else:
            renamed[name] = torch.from_numpy(np.ascontiguousarray(value))
    if unknown:
        log.warning("%s: skipping Detectron blobs outside the FPN Mask R-CNN layout: %s", source, _few(unknown))
    match = align_by_suffix(model_keys, renamed)
    unused = sorted(set(renamed) - set(match.values()) - {"fc1000.weight", "fc1000.bias"})
    if unused:
        raise InputError(f"{source}: Detectron blobs that fit no key of the model (another "
                         f"architecture?): {_few(unused)}")
    return {key: renamed[old] for key, old in match.items()}


# ---------------------------------------------------------------------------------------------
# reading any of the files

def _few(keys: list[str], n: int = 8) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def is_detectron_file(path: Path) -> bool:
    """A Detectron pickle: ``.pkl``, or neither a torch zip nor a pre-1.6 torch file."""
    if path.suffix == ".pkl":
        return True
    with open(path, "rb") as f:
        head = f.read(len(_TORCH_LEGACY_MAGIC))
    return not (head.startswith(b"PK\x03\x04") or head == _TORCH_LEGACY_MAGIC)


def is_benchmark_state(state: Any) -> bool:
    """Whether a state dict has maskrcnn-benchmark's key names (``module.`` dropped)."""
    return isinstance(state, dict) and any(
        isinstance(k, str) and k.removeprefix("module.").startswith("backbone.body.stem.") for k in state)


def infer_arch(state: dict[str, torch.Tensor], source: Path) -> str:
    """The legacy architecture of a maskrcnn-benchmark state dict, from its shapes."""
    blocks = {int(m[1]) for k in state if (m := re.match(r"backbone\.body\.layer3\.(\d+)\.", k))}
    conv2 = state.get("backbone.body.layer1.0.conv2.weight")
    if conv2 is not None and len(blocks) == 23 and tuple(conv2.shape) == (256, 8, 3, 3):
        return "legacy_x101_32x8d_fpn"
    if conv2 is not None and len(blocks) == 6 and tuple(conv2.shape) == (64, 64, 3, 3):
        return "legacy_r50_fpn"
    shape = None if conv2 is None else tuple(conv2.shape)
    raise InputError(f"{source}: a maskrcnn-benchmark state dict of an architecture this project does not "
                     f"build ({len(blocks)} layer3 blocks, layer1.0.conv2 {shape}); known: "
                     f"{', '.join(LEGACY_ARCHS)} (X-101-32x8d: 23 blocks, (256, 8, 3, 3); R-50: 6, (64, 64, 3, 3))")


def _strip_module(state: dict[str, Any]) -> dict[str, Any]:
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def _reference_keys(arch: str, num_classes: int) -> list[str]:
    """maskrcnn-benchmark's key names of ``arch`` with ``num_classes`` (built on the meta device)."""
    with torch.device("meta"):
        model = LegacyMaskRCNN(arch, num_classes)
    return list(benchmark_state_dict(model))


def read_detectron_weights(path: Path, arch: str | None = None) -> tuple[dict[str, torch.Tensor], str, int]:
    """``(state, arch, num_classes)`` of a Detectron pickle, with maskrcnn-benchmark's key names.

    The architecture is read from the number of ``res4`` blocks (23: X-101-32x8d, 6: R-50) unless
    ``arch`` names it."""
    blobs = read_detectron_pickle(path)
    depth = len({m[1] for b in blobs if (m := re.match(r"res4_(\d+)_", b))})
    arch = arch or {23: "legacy_x101_32x8d_fpn", 6: "legacy_r50_fpn"}.get(depth)
    if arch not in LEGACY_ARCHS:
        raise InputError(f"{path}: a Detectron pickle with {depth} res4 blocks: not one of the architectures "
                         f"this project builds ({', '.join(LEGACY_ARCHS)})")
    if "cls_score_w" not in blobs:
        raise InputError(f"{path}: a Detectron pickle without cls_score_w: not a Mask R-CNN's weights")
    num_classes = int(blobs["cls_score_w"].shape[0])
    return detectron_to_benchmark(blobs, _reference_keys(arch, num_classes), path), arch, num_classes


def is_legacy_object(obj: Any) -> bool:
    """Whether a loaded weights file holds maskrcnn-benchmark-named weights (a checkpoint, a bare
    state dict, or this project's checkpoint of a legacy architecture)."""
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        return obj.get("arch") in LEGACY_ARCHS
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    return is_benchmark_state(state)


def legacy_state_from_object(obj: Any, path: Path, arch: str | None = None
                             ) -> tuple[dict[str, torch.Tensor], str, int]:
    """``(state, arch, num_classes)`` of a loaded maskrcnn-benchmark checkpoint (``module.``
    dropped) or this project's checkpoint of a legacy architecture."""
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        arch = arch or obj.get("arch")
        obj = obj.get("model")
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    if not is_benchmark_state(state):
        raise InputError(f"{path} is not a maskrcnn-benchmark checkpoint (no backbone.body.stem.* keys)")
    state = _strip_module(state)
    if CLASS_KEY not in state:
        raise InputError(f"{path}: no {CLASS_KEY}: not a Mask R-CNN checkpoint")
    found = infer_arch(state, path)
    if arch is not None and arch != found:
        raise InputError(f"{path} holds a {found} model, not the {arch} asked for")
    return state, found, int(state[CLASS_KEY].shape[0])


def read_legacy_weights(path: str | os.PathLike, arch: str | None = None
                        ) -> tuple[dict[str, torch.Tensor], str, int, str]:
    """``(state, arch, num_classes, kind)`` of a legacy weights file.

    ``state`` has maskrcnn-benchmark's key names; ``kind`` is ``"detectron"`` or
    ``"maskrcnn-benchmark"``; ``arch`` None reads the architecture from the file.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"weights file {path} not found")
    if is_detectron_file(path):
        return (*read_detectron_weights(path, arch), "detectron")
    return (*legacy_state_from_object(load_torch(path, "weights file"), path, arch), "maskrcnn-benchmark")


def load_benchmark_state(model: LegacyMaskRCNN, state: dict[str, torch.Tensor], source: Path,
                         allow_missing_stats: bool = False) -> None:
    """Copy a maskrcnn-benchmark-named state dict into ``model``, strictly.

    Missing or unexpected keys and shape mismatches are one error naming the file and the keys;
    the stored cell anchors must equal the model's. ``allow_missing_stats`` lets the frozen batch
    norms' running statistics be absent (Detectron pickles), keeping 0 and 1.
    """
    ours = {benchmark_key(k): k for k in model.state_dict()}
    cells = {f"{ANCHOR_PREFIX}{i}": c for i, c in enumerate(model.rpn.cells)}
    missing = [k for k in ours if k not in state]
    if allow_missing_stats:
        missing = [k for k in missing if not k.endswith((".running_mean", ".running_var"))]
    unexpected = [k for k in state if k not in ours and k not in cells]
    if missing or unexpected:
        raise InputError(f"{source} does not fit a {model.arch} Mask R-CNN with {model.num_classes} classes: "
                         f"missing keys: {_few(missing) or 'none'}; unexpected keys: {_few(unexpected) or 'none'}")
    for key, cell in cells.items():
        if key in state and (state[key].shape != cell.shape or not torch.equal(state[key].float(), cell)):
            raise InputError(f"{source}: {key} holds other anchors than the config's ({state[key].tolist()} "
                             f"against {cell.tolist()}): another RPN.ANCHOR_SIZES / ASPECT_RATIOS")
    target = model.state_dict()
    bad = [f"{k} {tuple(state[k].shape)} (model {tuple(target[ours[k]].shape)})" for k in ours
           if k in state and tuple(state[k].shape) != tuple(target[ours[k]].shape)]
    if bad:
        raise InputError(f"{source}: wrongly shaped weights for a {model.arch} with {model.num_classes} "
                         f"classes: {_few(bad)}")
    with torch.no_grad():
        for key, name in ours.items():
            if key in state:
                target[name].copy_(state[key])
            else:  # a Detectron affine batch norm: maskrcnn-benchmark's initial statistics
                target[name].fill_(0.0 if key.endswith(".running_mean") else 1.0)


def legacy_model_from_state(state: dict[str, torch.Tensor], arch: str, num_classes: int, source: Path,
                            detectron: bool = False, settings: LegacySettings | None = None,
                            **detection: Any) -> LegacyMaskRCNN:
    """A :class:`LegacyMaskRCNN` holding ``state`` (maskrcnn-benchmark's names), in eval mode."""
    model = LegacyMaskRCNN.uninitialized(arch, num_classes, settings)
    load_benchmark_state(model, state, source, allow_missing_stats=detectron)
    return model.configure(**detection).eval()


def load_legacy_maskrcnn(path: str | os.PathLike, arch: str | None = None,
                         settings: LegacySettings | None = None, **detection: Any) -> LegacyMaskRCNN:
    """A :class:`LegacyMaskRCNN` with the weights of ``path`` (architecture and class count from
    the file), in eval mode; ``detection`` as in :meth:`LegacyMaskRCNN.configure`."""
    state, arch, num_classes, kind = read_legacy_weights(path, arch)
    return legacy_model_from_state(state, arch, num_classes, Path(path), kind == "detectron", settings,
                                   **detection)
