"""Benchmark of dmm.metrics: parallel folder scoring against a single-process run of the
same code on the same folders, and the cropped F-measure against the full-frame one.

Generates the folders itself (default 24 videos x 30 frames at 480x854, 3 objects; the
predictions are the ground truth shifted, eroded and speckled), then prints times and ratios.

    .venv/bin/python benchmarks/bench_metrics.py [--videos 24] [--frames 30] [--processes 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from dmm.metrics import evaluate_folders
from dmm.metrics.measures import boundary_map, dilation_radius, f_measure


def make_frames(rng: np.random.Generator, n_frames: int, shape: tuple[int, int], n_objects: int) -> list[np.ndarray]:
    """Moving ellipses, uint8 (h, w) label images."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    start = rng.uniform([0.2 * h, 0.2 * w], [0.8 * h, 0.8 * w], size=(n_objects, 2))
    speed = rng.uniform(-3, 3, size=(n_objects, 2))
    radii = rng.uniform(30, 110, size=(n_objects, 2))
    frames = []
    for t in range(n_frames):
        out = np.zeros(shape, np.uint8)
        for k in range(n_objects):
            cy, cx = start[k] + t * speed[k]
            out[((yy - cy) / radii[k, 0]) ** 2 + ((xx - cx) / radii[k, 1]) ** 2 <= 1] = k + 1
        frames.append(out)
    return frames


def damaged(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """A plausible prediction: shifted a few pixels, one object eroded, speckle noise."""
    out = np.roll(labels, tuple(rng.integers(-6, 7, size=2)), axis=(0, 1))
    obj = int(rng.integers(1, int(labels.max()) + 1))
    eroded = cv2.erode((out == obj).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    out[(out == obj) & ~eroded] = 0
    out[rng.random(labels.shape) < 0.002] = 0
    return out


def save(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(labels, mode="P")
    img.putpalette([0, 0, 0] + [255, 0, 0, 0, 255, 0, 0, 0, 255] * 85)
    img.save(path)


def generate_video(root: Path, video: int, n_frames: int, shape: tuple[int, int], n_objects: int) -> None:
    """Write one ground-truth video and its damaged prediction (seeded by the video index)."""
    rng = np.random.default_rng(video)
    for t, labels in enumerate(make_frames(rng, n_frames, shape, n_objects)):
        save(root / "gt" / f"video{video:03d}" / f"{5 * t:05d}.png", labels)
        save(root / "res" / f"video{video:03d}" / f"{5 * t:05d}.png", damaged(rng, labels))


def generate(root: Path, n_videos: int, n_frames: int, shape: tuple[int, int], n_objects: int, workers: int) -> None:
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(partial(generate_video, root, n_frames=n_frames, shape=shape, n_objects=n_objects),
                      range(n_videos)))


def burn(n: int) -> int:
    """Pure-Python CPU work, to measure how much parallelism the machine gives right now."""
    total = 0
    for i in range(n):
        total += i * i
    return total


def machine_speedup(processes: int, tasks: int = 8, n: int = 2_000_000) -> float:
    """Speed-up of ``processes`` worker processes over one on CPU-bound work, now."""
    serial_t, _ = timed(lambda: [burn(n) for _ in range(tasks)], 1)
    with ProcessPoolExecutor(processes) as pool:
        list(pool.map(burn, [n] * processes))  # start the workers first
        par_t, _ = timed(lambda: list(pool.map(burn, [n] * tasks)), 1)
    return serial_t / par_t


def full_frame_f(gt: np.ndarray, pred: np.ndarray) -> float:
    """The official way: boundaries and dilation over the whole frame (baseline)."""
    from skimage.morphology import disk  # here, so that spawned workers do not import it

    kernel = disk(dilation_radius(gt.shape)).astype(np.uint8)
    gb, pb = boundary_map(gt), boundary_map(pred)
    gd = cv2.dilate(gb.astype(np.uint8), kernel).astype(bool)
    pd = cv2.dilate(pb.astype(np.uint8), kernel).astype(bool)
    n_g, n_p = gb.sum(), pb.sum()
    if n_g == 0 or n_p == 0:
        return float(n_g == n_p)
    p, r = (pb & gd).sum() / n_p, (gb & pd).sum() / n_g
    return 0.0 if p + r == 0 else float(2 * p * r / (p + r))


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed(fn, repeats: int) -> tuple[float, object]:
    """Best wall time of ``repeats`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--objects", type=int, default=3)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--processes", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    shape = (args.height, args.width)
    with tempfile.TemporaryDirectory(prefix="bench_metrics_") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        generate(root, args.videos, args.frames, shape, args.objects, args.processes)
        print(f"generated {args.videos} videos x {args.frames} frames at {shape[0]}x{shape[1]}, "
              f"{args.objects} objects, in {time.perf_counter() - t0:.1f}s")

        cpu0 = cpu_seconds()
        serial_t, serial = timed(lambda: evaluate_folders(root / "gt", root / "res", processes=1), args.repeats)
        cpu1 = cpu_seconds()
        par_t, par = timed(lambda: evaluate_folders(root / "gt", root / "res", processes=args.processes),
                           args.repeats)
        cpu2 = cpu_seconds()
        assert serial == par, "parallel and serial scores differ"
        ideal = machine_speedup(args.processes)
        print(f"folder scoring, 1 process:       {serial_t:7.2f}s  (J&F {serial['global']['JF_mean']:.4f})")
        print(f"folder scoring, {args.processes} processes:     {par_t:7.2f}s  "
              f"speed-up x{serial_t / par_t:.2f} on {os.cpu_count()} CPUs")
        print(f"pure CPU work, {args.processes} processes vs 1 right now: x{ideal:.2f} "
              f"(load average {os.getloadavg()[0]:.1f}; below x{args.processes} the machine is shared)")
        print(f"folder scoring speed-up / pure CPU speed-up: {serial_t / par_t / ideal:.2f} "
              "(1.0 = all the parallelism the machine gives now)")
        cpu_ratio = (cpu2 - cpu1) / (cpu1 - cpu0)
        print(f"CPU seconds, {args.processes} processes vs 1: x{cpu_ratio:.2f} (work added by the "
              f"parallel run, inflated when other jobs share the cores; idle bound x{args.processes / cpu_ratio:.2f})")

        rng = np.random.default_rng(1)
        pairs = [(f == 1, damaged(rng, f) == 1) for f in make_frames(rng, 20, shape, args.objects)]
        full_t, full = timed(lambda: [full_frame_f(g, p) for g, p in pairs], 3)
        crop_t, crop = timed(lambda: [f_measure(g, p) for g, p in pairs], 3)
        assert np.allclose(full, crop), "cropped and full-frame F differ"
        print(f"F-measure per object-frame, full frame: {1e3 * full_t / len(pairs):6.2f} ms; "
              f"cropped: {1e3 * crop_t / len(pairs):6.2f} ms  speed-up x{full_t / crop_t:.2f}")


if __name__ == "__main__":
    main()
