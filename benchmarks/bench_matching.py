"""Matching layer timing: the exact (per-problem, 2019 arithmetic), batched and (CUDA) Triton implementations.

Prints milliseconds per problem of each implementation of the relaxed layer at batch 1 (one
frame of one video) and 64, the speedup over the exact one measured in this run, the share of
problems where the batched layer stops at the exact one's outer step, scipy's Hungarian solver,
and the share whose row argmax equals the Hungarian optimum; then, at the training iterations,
the forward and backward together (what a training step pays). Runs on CPU, and on CUDA too
when present. Target (CUDA): the fused kernel <= 0.5 ms per frame at batch 1.

    .venv/bin/python benchmarks/bench_matching.py [--repeat 3] [--device all|cpu|cuda] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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
    parser.add_argument("--device", default="all", choices=("all", "cpu", "cuda"),
                        help="all: the CPU, and CUDA when present (default)")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the milliseconds per problem here: {device: {setting: {batch: {impl: ms}}}}")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    devices = {"all": [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else []),
               "cpu": [torch.device("cpu")], "cuda": [torch.device("cuda")]}[args.device]
    record: dict[str, dict] = {}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; problems of 1..5 templates x 50 proposals")
    for device in devices:
        impls = ("exact", "batched") + (("triton",) if device.type == "cuda" else ())
        ms = record.setdefault(device.type, {})
        print(f"\n{device.type}: ms per problem (speedup over exact)")
        print(f"{'setting':8} {'batch':>5} " + " ".join(f"{i:>18}" for i in impls)
              + f" {'same steps':>10} {'hungarian':>10} {'argmax = optimum':>16}")
        for setting, (it, pit) in SETTINGS.items():
            for batch in (1, 64):
                cost, valid, _ = problems(batch, seed=batch)
                cost, valid = cost.to(device), valid.to(device)
                times, outs = {}, {}
                with torch.no_grad():
                    for impl in impls:
                        outs[impl] = relax(cost, valid, it, pit, 0.1, impl)  # also the warm-up
                        times[impl] = best_time(lambda: relax(cost, valid, it, pit, 0.1, impl), device,
                                                args.repeat) / batch
                hung_s = best_time(lambda: hungarian_matching(cost, valid), device, args.repeat) / batch
                same_steps = (outs["exact"][1] == outs["batched"][1]).float().mean().item()
                opt = hungarian_matching(cost, valid)
                rows = valid.any(2)
                same = ((outs["exact"][0].argmax(2) == opt.argmax(2)) | ~rows).all(1).float().mean().item()
                ms.setdefault(setting, {})[str(batch)] = {i: times[i] * 1e3 for i in impls} | {"hungarian": hung_s * 1e3}
                cells = " ".join(f"{times[i] * 1e3:9.3f} ({times['exact'] / times[i]:5.1f}x)" for i in impls)
                print(f"{setting:8} {batch:5d} {cells} {same_steps:10.0%} {hung_s * 1e3:10.3f} {same:16.2%}")
        print(f"\n{device.type}: forward + backward at the training iterations, ms per problem (speedup over exact)")
        print(f"{'batch':>5} " + " ".join(f"{i:>18}" for i in impls))
        it, pit = SETTINGS["train"]
        for batch in (1, 64):
            cost, valid, _ = problems(batch, seed=batch)
            cost, valid = cost.to(device), valid.to(device)
            grad = torch.randn(cost.shape, generator=torch.Generator().manual_seed(batch)).to(device)

            def forward_backward(impl: str) -> None:
                leaf = cost.clone().requires_grad_()
                (relax(leaf, valid, it, pit, 0.1, impl)[0] * grad).sum().backward()

            times = {}
            for impl in impls:
                forward_backward(impl)  # warm-up
                times[impl] = best_time(lambda: forward_backward(impl), device, args.repeat) / batch
            ms.setdefault("train forward+backward", {})[str(batch)] = {i: times[i] * 1e3 for i in impls}
            print(f"{batch:5d} " + " ".join(f"{times[i] * 1e3:9.3f} ({times['exact'] / times[i]:5.1f}x)" for i in impls))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"torch": torch.__version__, "ms_per_problem": record}, indent=2) + "\n")


if __name__ == "__main__":
    main()
