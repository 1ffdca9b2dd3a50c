"""Writes a split-wide ``predictions.pth`` as maskrcnn-benchmark's ``tools/test_net.py`` left it:
one pickled BoxList per frame, in the split's frame-index order (run as a subprocess by tests).

Usage: python predictions_writer.py OUT.pth FRAMES.json PER_FRAME SEED. FRAMES.json lists each
frame's ``[width, height]``. Each BoxList holds PER_FRAME detections: xyxy boxes inside the frame,
``scores``, ``labels`` and 28x28 ``mask`` probabilities (N, 1, 28, 28).
"""

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proposals"))
from legacy_writer import boxlist_class  # noqa: E402


def main() -> None:
    out, frames, per_frame, seed = sys.argv[1], json.loads(Path(sys.argv[2]).read_text()), int(sys.argv[3]), int(sys.argv[4])
    BoxList = boxlist_class()
    g = torch.Generator().manual_seed(seed)
    items = []
    for width, height in frames:
        corner = torch.rand(per_frame, 2, generator=g) * torch.tensor([width * 0.6, height * 0.6])
        extent = (0.2 + 0.2 * torch.rand(per_frame, 2, generator=g)) * torch.tensor([width, height])
        box = BoxList(torch.cat([corner, corner + extent], 1), (width, height))
        box.add_field("scores", torch.rand(per_frame, generator=g))
        box.add_field("labels", torch.randint(1, 81, (per_frame,), generator=g))
        box.add_field("mask", torch.rand(per_frame, 1, 28, 28, generator=g))
        items.append(box)
    torch.save(items, out)


if __name__ == "__main__":
    main()
