"""Training iterations of a config timed for two (or more) source trees side by side.

Generates a synthetic dataset and its proposals once (a temp folder, or ``--work DIR``), loads
the first ``--batches`` batches of the config's training loader once per tree, then runs each
tree's ``Trainer.run_step`` on them in its own subprocess (``PYTHONPATH=<tree>/src``), in rounds
that alternate the trees (A B A B ...), so that load from other jobs on a shared machine falls on
both alike. Every round builds the trainer afresh (same seed, same weights) and times
``--iters`` steps after one untimed warm-up step; data loading is not timed. Prints each tree's
per-iteration wall and CPU times (the process's own CPU seconds: with ``--threads 1`` far less
disturbed by other jobs than wall time), their medians, and the ratios of every tree's medians to
the first tree's.

    .venv/bin/python benchmarks/bench_train_iters.py [--config synthetic] [--iters 4] [--rounds 2]
        [--tree A_DIR --tree B_DIR] [--threads 1] [--own] [--work DIR] [--json OUT] [--quick]

Without ``--tree`` the tree this script lives in is timed alone. ``--own`` feeds the model's own
previous predictions at every step (the synthetic run's last epoch); by default the ground truth
(its first two epochs). ``--quick`` is a smoke run: 2 rounds of 1 iteration on a small dataset.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="synthetic", help="config name or yaml (default: synthetic)")
    p.add_argument("--tree", action="append", type=Path, default=None,
                   help="a source tree (a checkout holding src/dmm); repeat to compare; the first is the baseline")
    p.add_argument("--iters", type=int, default=4, help="timed iterations per round")
    p.add_argument("--rounds", type=int, default=2, help="rounds per tree, alternating the trees")
    p.add_argument("--threads", type=int, default=1,
                   help="torch.set_num_threads in every child (default 1: CPU seconds then count work, not "
                        "threads waiting for each other; 0: torch's default)")
    p.add_argument("--own", action="store_true", help="feed the model's own predictions at every step")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 rounds of 1 iteration, small data")
    p.add_argument("--work", type=Path, default=None, help="folder for the generated data (default: a temp folder)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("opts", nargs="*", help="KEY VALUE config overrides")
    p.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)  # internal: the batches file
    return p.parse_args(argv)


def base_opts(config_opts: list[str], work: Path) -> list[str]:
    return ["DATA.ROOT", str(work / "data"), "PROPOSALS.TRAIN_DIR", str(work / "proposals"),
            "PROPOSALS.EVAL_DIR", str(work / "proposals"), "OUTPUT_DIR", str(work / "run"), "DEVICE", "cpu",
            "VAL.ENABLED", "False", "DATA.NUM_WORKERS", "0", "SOLVER.CHECKPOINT_PERIOD", "100000", *config_opts]


def make_batches(args: argparse.Namespace, work: Path, count: int) -> Path:
    """Generate the data and save the first ``count`` training batches (with this tree's code)."""
    import torch

    from dmm.config import load_config
    from dmm.data.synthetic import SyntheticConfig, generate
    from dmm.engine.distributed import DistInfo
    from dmm.engine.trainer import Trainer
    from dmm.proposals.synthetic import generate as generate_proposals

    syn = (SyntheticConfig(num_train=4, num_valid=0, num_frames=6, height=128, width=224, max_targets=4)
           if args.quick else SyntheticConfig(num_train=12, num_valid=0))
    if not (work / "data" / "synthetic_record.json").exists():
        generate(work / "data", syn, overwrite=True, progress=False)
        generate_proposals(work / "data", "train", work / "proposals", seed=0, progress=False)
    cfg = load_config(args.config, base_opts(args.opts, work))
    trainer = Trainer(cfg, DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu")), overwrite=True)
    batches = []
    for epoch in range(1000):
        for batch in trainer._loader(epoch, 0):
            batches.append(batch)
            if len(batches) == count:
                out = work / "batches.pt"
                torch.save(batches, out)
                return out
    raise SystemExit("error: the config's loader gave no batches")


def child(args: argparse.Namespace) -> None:
    """One round in this process: build the trainer, one warm-up step, ``--iters`` timed steps."""
    import torch

    from dmm.config import load_config
    from dmm.engine.distributed import DistInfo
    from dmm.engine.trainer import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    work = args.child.parent
    cfg = load_config(args.config, base_opts(args.opts, work))
    torch.manual_seed(cfg.SEED)
    trainer = Trainer(cfg, DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu")), overwrite=True)
    trainer.model.train()
    batches = torch.load(args.child, weights_only=False)
    flags = [True if args.own else False] * (cfg.DATA.LENGTH_CLIP - 1)
    times, cpu, losses = [], [], []
    for i, batch in enumerate(batches[: args.iters + 1]):
        tic, cpu_tic = time.perf_counter(), time.process_time()
        values = trainer.run_step([batch], [flags])
        if i:
            times.append(time.perf_counter() - tic)
            cpu.append(time.process_time() - cpu_tic)
            losses.append(values["total"])
    print(json.dumps({"times": times, "cpu": cpu, "losses": losses}))


def shown(tree: Path) -> str:
    """A tree as the output names it: relative to the working directory (no machine's absolute path)."""
    return os.path.relpath(tree)


def run_round(tree: Path, args: argparse.Namespace, batches: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(batches), "--config", args.config,
           "--iters", str(args.iters), "--threads", str(args.threads), *(["--own"] if args.own else []), *args.opts]
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree)
    if proc.returncode:
        raise SystemExit(f"error: the round in {tree} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.iters, args.rounds = 1, 2
    if args.child is not None:
        child(args)
        return 0
    trees = [t.resolve() for t in (args.tree or [REPO])]
    for t in trees:
        if not (t / "src" / "dmm").is_dir():
            raise SystemExit(f"error: --tree {t} holds no src/dmm")
    with tempfile.TemporaryDirectory(prefix="bench_train_iters_") as tmp:
        work = (args.work or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        batches = make_batches(args, work, args.iters + 1)
        times: list[list[float]] = [[] for _ in trees]  # per tree, by position (a tree may repeat)
        cpu: list[list[float]] = [[] for _ in trees]
        losses: list[list[float]] = [[] for _ in trees]
        for r in range(args.rounds):
            for i, t in enumerate(trees):
                result = run_round(t, args, batches)
                times[i] += result["times"]
                cpu[i] += result["cpu"]
                losses[i] = result["losses"]
                print(f"round {r + 1}, {shown(t)}: wall " + ", ".join(f"{s:.2f}" for s in result["times"])
                      + " s/iter; CPU " + ", ".join(f"{s:.2f}" for s in result["cpu"]) + " s/iter", flush=True)
    base, base_cpu = statistics.median(times[0]), statistics.median(cpu[0])
    print(f"\n{args.config}, {args.iters} iterations x {args.rounds} rounds per tree, trees alternating, "
          f"threads {args.threads or 'default'}, {'own predictions' if args.own else 'ground truth'} fed back; "
          f"CPU = the process's CPU seconds, steadier than wall time on a shared machine")
    summary = []
    for i, t in enumerate(trees):
        med, med_cpu = statistics.median(times[i]), statistics.median(cpu[i])
        summary.append({"tree": shown(t), "median_s": med, "times": times[i], "ratio": med / base,
                        "median_cpu_s": med_cpu, "cpu": cpu[i], "cpu_ratio": med_cpu / base_cpu, "losses": losses[i]})
        print(f"  {shown(t):24} median wall {med:6.2f} s/iter {med / base:5.2f}x, CPU {med_cpu:6.2f} s/iter "
              f"{med_cpu / base_cpu:5.2f}x (losses of the last round: {', '.join(f'{x:.4f}' for x in losses[i])})")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
