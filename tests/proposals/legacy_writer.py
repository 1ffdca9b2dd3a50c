"""Writes files in maskrcnn-benchmark's predictions.pth layout (run as a subprocess by tests).

Usage: python legacy_writer.py OUT.pth N_FRAMES SEED [legacy|zip|evil|nan]. A throwaway package
``maskrcnn_benchmark.structures.bounding_box`` with a ``BoxList`` class is created in a
temporary folder put on sys.path, so the pickle names exactly that class. ``nan`` writes the
zip format with a NaN in the first mask of frame 1.
"""

import inspect
import os
import sys
import tempfile
from pathlib import Path

import torch

import boxlist_reader

#: the BoxList stand-in of boxlist_reader.py (a sibling: this script's folder is on sys.path)
BOXLIST_SRC = "import torch\n\n" + inspect.getsource(boxlist_reader.BoxList)


class Evil:
    def __reduce__(self):
        return (os.system, (f"touch {sys.argv[1]}.pwned",))


def boxlist_class() -> type:
    """``maskrcnn_benchmark.structures.bounding_box.BoxList`` from a throwaway package put on
    sys.path, so that pickles name exactly that class (call once per process)."""
    pkg = Path(tempfile.mkdtemp()) / "maskrcnn_benchmark"
    (pkg / "structures").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "structures" / "__init__.py").write_text("")
    (pkg / "structures" / "bounding_box.py").write_text(BOXLIST_SRC)
    sys.path.insert(0, str(pkg.parent))
    from maskrcnn_benchmark.structures.bounding_box import BoxList

    return BoxList


def main():
    out, n, seed, kind = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    if kind == "evil":
        torch.save([Evil()], out)
        return
    BoxList = boxlist_class()
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        k = i % 4 * 3  # 0, 3, 6, 9 detections
        xy = torch.rand(k, 2, generator=g) * 50
        b = BoxList(torch.cat([xy, xy + 5 + torch.rand(k, 2, generator=g) * 20], 1), (96, 64))
        b.add_field("scores", torch.rand(k, generator=g))
        b.add_field("labels", torch.randint(1, 81, (k,), generator=g))
        b.add_field("mask", torch.rand(k, 1, 28, 28, generator=g))
        if kind == "nan" and i == 1:
            b.extra_fields["mask"][0, 0, 3, 4] = float("nan")
        items.append(b)
    torch.save(items, out, _use_new_zipfile_serialization=(kind != "legacy"))


if __name__ == "__main__":
    main()
