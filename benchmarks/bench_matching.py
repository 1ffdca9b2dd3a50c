"""Matching layer timing: the batched layer vs the per-problem reference vs scipy's Hungarian.

Prints milliseconds per problem, the speedup of the batched layer over the per-problem
reference (measured in this run), and the share of problems whose row argmax equals the
Hungarian optimum. Runs on CPU, and on CUDA too when present.

    .venv/bin/python benchmarks/bench_matching.py [--reference-problems 8]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "model"))
from reference_matching import reference_matching  # noqa: E402

from dmm.model.matching import hungarian_matching, relaxed_matching  # noqa: E402
from timing import best_time  # benchmarks/timing.py

SETTINGS = {"eval": (10, 5), "train": (40, 5), "default": (400, 50)}


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
    parser.add_argument("--reference-problems", type=int, default=8,
                        help="problems the slow reference runs per setting (its time is per problem)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    header = f"{'device':6} {'setting':8} {'batch':>5} {'batched ms/pb':>13} {'reference ms/pb':>15} " \
             f"{'speedup':>8} {'hungarian ms/pb':>15} {'argmax = optimum':>16}"
    print(header)
    for device in devices:
        for setting, (it, pit) in SETTINGS.items():
            ref_cost, ref_valid, ref_n = problems(args.reference_problems, seed=1)
            ref_cost = ref_cost.to(device)
            ref_s = best_time(lambda: [reference_matching(ref_cost[i, :k], it, pit, 0.1) for i, k in enumerate(ref_n)],
                          device, 1) / len(ref_n)
            for batch in (1, 8, 64):
                cost, valid, _ = problems(batch, seed=batch)
                cost, valid = cost.to(device), valid.to(device)
                relaxed_matching(cost, valid, it, pit, 0.1)  # warm-up
                s = best_time(lambda: relaxed_matching(cost, valid, it, pit, 0.1), device, args.repeat) / batch
                hung_s = best_time(lambda: hungarian_matching(cost, valid), device, args.repeat) / batch
                out = relaxed_matching(cost, valid, it, pit, 0.1)
                opt = hungarian_matching(cost, valid)
                rows = valid.any(2)
                same = ((out.argmax(2) == opt.argmax(2)) | ~rows).all(1).float().mean().item()
                print(f"{device.type:6} {setting:8} {batch:5d} {s * 1e3:13.3f} {ref_s * 1e3:15.3f} "
                      f"{ref_s / s:7.1f}x {hung_s * 1e3:15.3f} {same:16.2%}")


if __name__ == "__main__":
    main()
