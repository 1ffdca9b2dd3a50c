"""Read a predictions.pth as maskrcnn-benchmark's environment would.

:func:`read_like_2019` puts a throwaway ``maskrcnn_benchmark.structures.bounding_box`` module with
a minimal ``BoxList`` (fields, indexing) into ``sys.modules`` (through pytest's ``monkeypatch``, so
it is gone after the test), reads the file with plain ``torch.load`` (no restricted unpickler: the
objects must come back as that class), and puts each frame through what the 2019
``tools/reduce_pth_size_by_videos.py`` does with it: ``get_field("scores")``, a descending sort,
the first TOPK, ``predictions[idx]``.
"""

from __future__ import annotations

import sys
import types

import torch


class BoxList:
    """The attributes and calls of maskrcnn-benchmark's BoxList that the 2019 tool uses."""

    def __init__(self, bbox, image_size, mode="xyxy"):
        self.bbox = bbox
        self.size = image_size
        self.mode = mode
        self.extra_fields = {}

    def add_field(self, field, field_data):
        self.extra_fields[field] = field_data

    def get_field(self, field):
        return self.extra_fields[field]

    def fields(self):
        return list(self.extra_fields.keys())

    def __getitem__(self, item):
        out = BoxList(self.bbox[item], self.size, self.mode)
        for k, v in self.extra_fields.items():
            out.add_field(k, v[item])
        return out

    def __len__(self):
        return self.bbox.shape[0]


def read_like_2019(path, top: int, monkeypatch) -> list[BoxList]:
    """Per frame of ``path``, its ``top`` best-scored detections as a :class:`BoxList`."""
    names = ["maskrcnn_benchmark", "maskrcnn_benchmark.structures", "maskrcnn_benchmark.structures.bounding_box"]
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setattr(sys.modules[names[-1]], "BoxList", BoxList, raising=False)
    out = []
    for p in torch.load(path, weights_only=False):
        assert type(p) is BoxList, type(p)
        _, idx = p.get_field("scores").sort(0, descending=True)
        out.append(p[idx[:top]])
    return out
