"""Write a split's detections as maskrcnn-benchmark's ``predictions.pth`` (the 2019 layout).

``tools/test_net.py`` saved ``torch.save(predictions, "predictions.pth")``: a list, one entry per
frame of the split in dataset order, of ``maskrcnn_benchmark.structures.bounding_box.BoxList``
objects with the attributes ``bbox`` ((M, 4) float32 xyxy in pixels of the resized frame),
``size`` ((w, h) of the resized frame), ``mode`` (``"xyxy"``) and ``extra_fields``
(``labels`` int64 (M,), ``scores`` float32 (M,), ``mask`` float32 (M, 1, 28, 28); in the order
the authors' run gave them, see :data:`FIELD_ORDER`). The 2019 ``tools/reduce_pth_size_by_videos.py``
and this project's (``dmm.proposals.reduce``) read it.

The pickle names that class without maskrcnn-benchmark installed: a pure-Python pickler writes the
class reference for :class:`BoxListRecord` under maskrcnn-benchmark's module and name; the file is
written in torch's pre-1.6 format (what the 2019 torch wrote and read), atomically.
"""

from __future__ import annotations

import os
import pickle
from typing import Iterable

import torch

from dmm.io import atomic_path

from .model import LegacyDetections

BOXLIST_MODULE = "maskrcnn_benchmark.structures.bounding_box"
BOXLIST_NAME = "BoxList"
#: the fields' order in the golden fixture's BoxLists (``cat_boxlist`` orders them by a Python set,
#: so the authors' order depended on the hash seed; nothing numeric does)
FIELD_ORDER = ("labels", "scores", "mask")


class BoxListRecord:
    """The attributes of one maskrcnn-benchmark BoxList; pickled as that class."""

    def __init__(self, bbox: torch.Tensor, size: tuple[int, int], mode: str, extra_fields: dict) -> None:
        self.bbox = bbox
        self.size = size
        self.mode = mode
        self.extra_fields = extra_fields

    @classmethod
    def from_detections(cls, d: LegacyDetections) -> "BoxListRecord":
        fields = {"labels": d.labels.detach().cpu().to(torch.int64).contiguous(),
                  "scores": d.scores.detach().cpu().to(torch.float32).contiguous(),
                  "mask": d.masks.detach().cpu().to(torch.float32).contiguous()}
        return cls(d.boxes.detach().cpu().to(torch.float32).contiguous(), d.size, "xyxy",
                   {k: fields[k] for k in FIELD_ORDER})


class _BoxListPickler(pickle._Pickler):
    """Writes :class:`BoxListRecord`'s class as maskrcnn-benchmark's BoxList."""

    def save_global(self, obj, name=None):
        if obj is BoxListRecord:
            self.write(pickle.GLOBAL + f"{BOXLIST_MODULE}\n{BOXLIST_NAME}\n".encode("ascii"))
            self.memoize(obj)
            return
        super().save_global(obj, name)


class _PickleModule:
    """The ``pickle_module`` handed to ``torch.save``."""

    __name__ = "dmm_boxlist_pickle"
    Pickler = _BoxListPickler

    @staticmethod
    def dump(obj, file, protocol=2):
        _BoxListPickler(file, protocol=protocol).dump(obj)


def write_legacy_predictions(path: str | os.PathLike, frames: Iterable[LegacyDetections]) -> int:
    """Write ``predictions.pth`` (one BoxList per frame, in the given order) atomically.

    Returns the number of frames written.
    """
    items = [BoxListRecord.from_detections(d) for d in frames]
    with atomic_path(path) as tmp:
        torch.save(items, tmp, pickle_module=_PickleModule, pickle_protocol=2,
                   _use_new_zipfile_serialization=False)
    return len(items)
