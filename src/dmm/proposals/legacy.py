"""Read maskrcnn-benchmark's ``predictions.pth`` without maskrcnn-benchmark, safely.

Such a file is a ``torch.save``d list of
``maskrcnn_benchmark.structures.bounding_box.BoxList`` objects (attributes ``bbox`` (N, 4),
``size`` (width, height), ``mode`` "xyxy" or "xywh", ``extra_fields`` with ``scores``,
``labels`` and ``mask`` (N, 1, 28, 28)). A pickle can run arbitrary code, so it is read with
an unpickler that admits only that class (mapped onto :class:`LegacyBoxList`), torch's tensor
rebuild functions and storage types, and ``collections.OrderedDict``; any other global is
refused, naming it. Both ``torch.save`` formats (zip and the pre-1.6 legacy one) are handled:
``torch.load`` runs its unpickler as a subclass of this module's ``Unpickler``. A truncated or
unreadable file is an :class:`~dmm.errors.InputError` naming it. Finiteness is checked by
``dmm.proposals.reduce.reduce_by_videos``, which knows each entry's video and frame.
"""

from __future__ import annotations

import collections
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from dmm.errors import InputError, MissingInputError, UnsafePickleError
from dmm.structures import Proposals

BOXLIST = ("maskrcnn_benchmark.structures.bounding_box", "BoxList")


class LegacyBoxList:
    """Plain stand-in for maskrcnn-benchmark's BoxList: unpickling only sets its attributes."""

    bbox: torch.Tensor
    size: tuple[int, int]
    mode: str
    extra_fields: dict[str, Any]


_ALLOWED: dict[tuple[str, str], Any] = {
    BOXLIST: LegacyBoxList,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals a legacy predictions file needs.

    Storage types (``torch.FloatStorage``, ...) are resolved by ``torch.load``'s wrapper
    before they reach :meth:`find_class`; any other global raises ``UnpicklingError``.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: a proposals file may only hold "
                f"{'.'.join(BOXLIST)} objects and tensors") from None


class _RestrictedPickleModule:
    """The ``pickle_module`` handed to ``torch.load``."""

    __name__ = "dmm_restricted_pickle"
    Unpickler = RestrictedUnpickler
    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(file, **kwargs) -> Any:
        return RestrictedUnpickler(file, **kwargs).load()


def load_restricted(path: str | os.PathLike) -> Any:
    """``torch.load`` of ``path`` through :class:`RestrictedUnpickler` (on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"predictions file {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", pickle_module=_RestrictedPickleModule,
                          weights_only=False)
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e}") from None
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as e:
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise InputError(f"predictions file {path} is truncated or not a torch file "
                         f"({first_line})") from None


def boxlist_to_proposals(box: LegacyBoxList, where: str) -> Proposals:
    """One frame's BoxList as roi-mode (or full-mode, for pasted masks) Proposals."""
    try:
        width, height = (int(v) for v in box.size)
        boxes = box.bbox.to(torch.float32)
        if box.mode == "xywh":
            from torchvision.ops import box_convert  # imported here: torchvision loads slowly

            boxes = box_convert(boxes, "xywh", "xyxy")
        elif box.mode != "xyxy":
            raise ValueError(f"unknown box mode {box.mode!r}")
        fields = box.extra_fields
        scores = fields["scores"].to(torch.float32)
        masks = fields["mask"].to(torch.float32)
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise InputError(f"{where}: not a maskrcnn-benchmark BoxList with scores and masks "
                         f"({type(e).__name__}: {e})") from None
    if masks.dim() == 4:
        masks = masks[:, 0]
    pasted = tuple(masks.shape[1:]) == (height, width) and tuple(masks.shape[1:]) != (28, 28)
    mode = "full" if pasted else "roi"
    try:
        return Proposals(boxes.reshape(-1, 4), scores, masks, (height, width), mode)
    except ValueError as e:
        raise InputError(f"{where}: {e}") from None


def load_legacy_predictions(path: str | os.PathLike) -> list[Proposals]:
    """The per-frame proposals of a maskrcnn-benchmark ``predictions.pth``, in file order."""
    obj = load_restricted(path)
    if not isinstance(obj, (list, tuple)) or not all(isinstance(b, LegacyBoxList) for b in obj):
        raise InputError(f"{path}: expected a list of {'.'.join(BOXLIST)} objects, got "
                         f"{type(obj).__name__}")
    return [boxlist_to_proposals(b, f"{path} entry {i}") for i, b in enumerate(obj)]
