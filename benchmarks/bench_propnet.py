"""Proposal-net extraction speed: the authors' X-101 nets against torchvision's R50-FPN-v2.

    .venv/bin/python benchmarks/bench_propnet.py [--frames 3] [--size 720x1280] [--quick]

Frames per second of ``dmm.proposals.extract.detect_labelled`` (the extraction's per-batch call:
resize, network, post-processing, masks) in the same run, on the CPU and on CUDA when present,
one frame at a time, the models taking turns frame by frame (so a change in the machine's load
hits them alike), from the median time per frame after one untimed warm-up frame each:

- ``legacy_x101_32x8d_fpn`` with 2 classes (the authors' binary proposal nets) and with 81 (the
  COCO model of the training proposals), maskrcnn-benchmark's test-time rules
  (``dmm.proposals.legacy_net``), score threshold 0.0 and 50 detections (2019's settings for
  val200 / test-dev);
- torchvision's ``maskrcnn_resnet50_fpn_v2`` (91 classes, the same settings), the baseline.

Weights are random (no download): the speed depends on the architecture and the number of boxes
each stage handles, not on what is detected; with a threshold of 0.0 every class keeps all 1000
proposals before NMS, the worst case. Frames are synthetic (``--size``, default a YouTube-VOS
720x1280 frame, resized to 800/1333 as the 2019 runs did); ``--quick`` uses 320/544, one frame.
The ratio column is frames/s relative to torchvision's R50-FPN-v2 measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from dmm.proposals.extract import detect_labelled
from dmm.proposals.model import load_propnet


def seconds_per_frame(models: list, frames: list[np.ndarray], device: torch.device) -> list[float]:
    """Median seconds per frame of each model, the models taking turns frame by frame."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times: list[list[float]] = [[] for _ in models]
    for model in models:  # warm-up
        detect_labelled(model.to(device).eval(), frames[:1])
    for frame in frames:
        for i, model in enumerate(models):
            sync()
            start = time.perf_counter()
            detect_labelled(model, [frame])
            sync()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=3, help="timed frames per model")
    p.add_argument("--size", default="720x1280", help="HxW of the synthetic frames")
    p.add_argument("--quick", action="store_true", help="test size 320/544, one frame")
    args = p.parse_args(argv)
    height, width = (int(v) for v in args.size.split("x"))
    min_size, max_size = (320, 544) if args.quick else (800, 1333)
    count = 1 if args.quick else args.frames
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    settings = dict(min_size=min_size, max_size=max_size, score_thresh=0.0, detections_per_img=50)
    models = [("torchvision R50-FPN-v2, 91 classes", "resnet50_fpn_v2", 91),
              ("maskrcnn-benchmark X-101-32x8d FPN, 2 classes", "legacy_x101_32x8d_fpn", 2),
              ("maskrcnn-benchmark X-101-32x8d FPN, 81 classes", "legacy_x101_32x8d_fpn", 81)]
    print(f"frames {height}x{width} resized to {min_size}/{max_size}, {count} timed frame(s) per model, "
          f"torch threads {torch.get_num_threads()}")
    nets = []
    for _, arch, classes in models:
        torch.manual_seed(0)
        nets.append(load_propnet(None, arch, classes, **settings))
    for device in devices:
        seconds = seconds_per_frame(nets, frames, device)
        print(f"\n{device.type}:\n| model | s/frame | frames/s | ratio to R50-FPN-v2 |\n|---|---|---|---|")
        for (name, _, _), sec in zip(models, seconds):
            print(f"| {name} | {sec:.2f} | {1 / sec:.3f} | {seconds[0] / sec:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
