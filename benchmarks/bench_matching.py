"""Matching layer timing: the exact (per-problem, 2019 arithmetic) and batched implementations vs scipy's Hungarian.

Prints milliseconds per problem of both implementations of the relaxed layer, the speedup of
the batched one over the exact one (measured in this run), the share of problems where the two
stop at the same outer step, and the share whose row argmax equals the Hungarian optimum. Runs
on CPU, and on CUDA too when present.

    .venv/bin/python benchmarks/bench_matching.py [--reference-problems 8]
"""

from __future__ import annotations

import argparse

import torch

from dmm.model.matching import hungarian_matching, relax
from timing import best_time  # benchmarks/timing.py

SETTINGS = {"eval": (40, 5), "train": (10, 5)}  # 2019 dmm/configs/{eval,train}.yaml


def problems(batch: int, max_n: int = 5, m: int = 50, seed: int = 0):
    """Cost -(0.7 cosine + 0.3 IoU) with N in 1..max_n templates and M proposals, padded."""
    g = torch.Generator().manual_seed(seed)
    n = torch.randint(1, max_n + 1, (batch,), generator=g)
    cosine = torch.rand(batch, max_n, m, generator=g) * 1.2 - 0.2
    iou = torch.rand(batch, max_n, m, generator=g) * (torch.rand(batch, max_n, m, generator=g) < 0.1)
    cost = -(0.7 * cosine + 0.3 * iou)
    valid = torch.arange(max_n)[None, :, None] < n[:, None, None]
    return cost, valid.expand(batch, max_n, m).clone(), n.tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; problems of 1..5 templates x 50 proposals")
    print(f"{'device':6} {'setting':8} {'batch':>5} {'exact ms/pb':>11} {'batched ms/pb':>13} {'speedup':>8} "
          f"{'same steps':>10} {'hungarian ms/pb':>15} {'argmax = optimum':>16}")
    for device in devices:
        for setting, (it, pit) in SETTINGS.items():
            for batch in (1, 8, 64):
                cost, valid, _ = problems(batch, seed=batch)
                cost, valid = cost.to(device), valid.to(device)
                times, outs = {}, {}
                for impl in ("exact", "batched"):
                    outs[impl] = relax(cost, valid, it, pit, 0.1, impl)  # also the warm-up
                    times[impl] = best_time(lambda: relax(cost, valid, it, pit, 0.1, impl), device, args.repeat) / batch
                hung_s = best_time(lambda: hungarian_matching(cost, valid), device, args.repeat) / batch
                out = outs["exact"][0]
                same_steps = (outs["exact"][1] == outs["batched"][1]).float().mean().item()
                opt = hungarian_matching(cost, valid)
                rows = valid.any(2)
                same = ((out.argmax(2) == opt.argmax(2)) | ~rows).all(1).float().mean().item()
                print(f"{device.type:6} {setting:8} {batch:5d} {times['exact'] * 1e3:11.3f} {times['batched'] * 1e3:13.3f} "
                      f"{times['exact'] / times['batched']:7.1f}x {same_steps:10.0%} {hung_s * 1e3:15.3f} {same:16.2%}")


if __name__ == "__main__":
    main()
