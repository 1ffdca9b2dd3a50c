"""Engine throughput and inference memory: training clips/s with and without data loading,
inference frames/s for one video and for a batch of videos, and peak inference memory on a
20-frame and a 200-frame synthetic video, all in the same run.

Generates a synthetic dataset and synthetic proposals (in a temp folder, or ``--work DIR``),
then:

* training: builds ``dmm.engine.trainer.Trainer`` and times ``--iters`` of its steps after
  ``--warmup`` untimed ones, once with its loader in the loop (``DATA.NUM_WORKERS 0``: loading
  included) and once on one batch loaded beforehand (compute alone);
* inference: runs ``DMMTracker`` + ``segment_videos`` on a one-video valid set of 20 frames, one
  of 200 frames and a set of 8 videos of 20 frames segmented in lockstep (``TEST.BATCH_VIDEOS
  8``), each in a fresh subprocess, and measures frames/s, the peak memory of the inference
  process (the kernel's RSS high-water mark on the CPU, reset after imports so their transient
  peak does not hide it; ``torch.cuda.max_memory_allocated`` on CUDA), and, for information,
  how far that peak rose over the state right after the model build. ``--fast`` also times the
  fast CUDA settings (``MATCHING.IMPLEMENTATION triton``, ``MODEL.AMP``) beside the faithful
  defaults.

The target: peak inference memory of the 200-frame video / the 20-frame video < 1.1
(memory must not grow with video length). Exit status 1 when that check fails. Part of the
growth column is file-backed: the proposal store memory-maps a video's proposal file and pages
of the frames read so far stay resident (reclaimable page cache), about 50 KiB per frame with
synthetic proposals.

    .venv/bin/python benchmarks/bench_engine.py [--quick] [--device auto|cpu|cuda]
        [--backbone resnet50] [--input 255x448 | --small] [--iters 5] [--json OUT] [--work DIR]
        [--matching exact|batched|triton] [--short-frames 20 --long-frames 200 --batch-videos 8]
        [--prepare-only]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tabulate import tabulate

from dmm.config import load_config
from dmm.data.synthetic import SyntheticConfig
from dmm.data.synthetic import generate as generate_dataset
from dmm.engine.distributed import DistInfo, resolve_device
from dmm.proposals.synthetic import generate as generate_proposals

MEMORY_RATIO_TARGET = 1.1
SHORT_FRAMES, LONG_FRAMES = 20, 200  # defaults of --short-frames / --long-frames
BATCH_VIDEOS = 8  # default of --batch-videos: the lockstep run's videos, of the short length each


@dataclass(frozen=True)
class Settings:
    """What one benchmark run measures."""

    device: str  # resolved: "cpu" or "cuda"
    backbone: str
    input_h: int
    input_w: int
    frame_h: int  # synthetic frame size
    frame_w: int
    train_videos: int
    train_frames: int
    batch_size: int
    warmup: int
    iters: int
    train_max_iter: int  # MATCHING.TRAIN_MAX_ITER
    short_frames: int = SHORT_FRAMES  # the one-video runs' lengths (the memory check compares them)
    long_frames: int = LONG_FRAMES
    batch_videos: int = BATCH_VIDEOS  # the lockstep run's videos, each short_frames long
    matching: str = "exact"  # MATCHING.IMPLEMENTATION of every run but the fast ones


@dataclass(frozen=True)
class DataPaths:
    """Where the generated data lives."""

    train_root: Path
    train_proposals: Path
    valid_roots: dict[str, Path]  # "short", "long" (one video each), "batch" (batch_videos videos)
    valid_proposals: dict[str, Path]


def parse_size(text: str) -> tuple[int, int]:
    """``"255x448"`` -> ``(255, 448)`` (height x width)."""
    try:
        h, w = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW like 255x448, got {text!r}") from None
    return h, w


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: resnet18, 64x112 input and frames, 2 timed iterations")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--backbone", default=None, help="resnet18/34/50/101 (default resnet50; quick: resnet18)")
    p.add_argument("--input", type=parse_size, default=None, metavar="HxW",
                   help="network input size (default 255x448, the paper's; quick: 64x112)")
    p.add_argument("--small", action="store_true", help="shorthand for --input 128x224")
    p.add_argument("--iters", type=int, default=None, help="timed training iterations (default 5; quick: 2)")
    p.add_argument("--warmup", type=int, default=1, help="untimed training iterations first")
    p.add_argument("--batch-size", type=int, default=None, help="clips per iteration (default 4; quick: 2)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    p.add_argument("--skip-train", action="store_true", help="inference only")
    p.add_argument("--short-frames", type=int, default=SHORT_FRAMES, help="the short video's frames (default 20)")
    p.add_argument("--long-frames", type=int, default=LONG_FRAMES, help="the long video's frames (default 200)")
    p.add_argument("--batch-videos", type=int, default=BATCH_VIDEOS,
                   help="videos segmented in lockstep, each --short-frames long (default 8)")
    p.add_argument("--matching", default="exact", choices=("exact", "batched", "triton"),
                   help="MATCHING.IMPLEMENTATION of the runs (default exact, the 2019 arithmetic)")
    p.add_argument("--prepare-only", action="store_true",
                   help="generate the data under --work and stop (a later run with the same --work reuses it)")
    p.add_argument("--fast", action="store_true",
                   help="on CUDA, also time the fast settings (fused matching kernel, bf16 autocast)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--work", type=Path, default=None,
                   help="folder for the generated data and outputs (default: a temp folder, removed after)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: one inference run
    return p.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Resolve defaults (full or quick) and the device."""
    quick = args.quick
    size = (128, 224) if args.small else args.input or ((64, 112) if quick else (255, 448))
    frame = (64, 112) if quick else (256, 448)
    return Settings(
        device=resolve_device(args.device).type,
        backbone=args.backbone or ("resnet18" if quick else "resnet50"),
        input_h=size[0], input_w=size[1], frame_h=frame[0], frame_w=frame[1],
        train_videos=4 if quick else 8, train_frames=6 if quick else 20,
        batch_size=args.batch_size or (2 if quick else 4),
        warmup=args.warmup, iters=args.iters or (2 if quick else 5),
        train_max_iter=10 if quick else 40,
        short_frames=args.short_frames, long_frames=args.long_frames, batch_videos=args.batch_videos,
        matching=args.matching,
    )


# ------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------


def make_data(work: Path, s: Settings) -> DataPaths:
    """Synthetic train set, two one-video valid sets (20 and 200 frames), their proposals.

    Kept under ``work/data_<frames HxW>`` and reused when already there (``--work``).
    """
    work = work / f"data_{s.frame_h}x{s.frame_w}_{s.train_videos}x{s.train_frames}"
    train_root = work / "train_set"
    if not (train_root / "synthetic_record.json").exists():
        generate_dataset(train_root, SyntheticConfig(num_train=s.train_videos, num_valid=0,
                                                     num_frames=s.train_frames, height=s.frame_h,
                                                     width=s.frame_w, seed=0),
                         overwrite=train_root.exists(), progress=False)
    train_props = work / "proposals" / "train"
    generate_proposals(train_root, "train", train_props, seed=0, progress=False)
    valid_roots, valid_props = {}, {}
    for name, videos, frames in (("short", 1, s.short_frames), ("long", 1, s.long_frames),
                                 ("batch", s.batch_videos, s.short_frames)):
        root = work / f"valid_{name}_{videos}x{frames}"
        if not (root / "synthetic_record.json").exists():
            generate_dataset(root, SyntheticConfig(num_train=0, num_valid=videos, num_frames=frames,
                                                   height=s.frame_h, width=s.frame_w, seed=0),
                             overwrite=root.exists(), progress=False)
        props = work / "proposals" / f"valid_{name}_{videos}x{frames}"
        generate_proposals(root, "valid", props, seed=0, progress=False)
        valid_roots[name], valid_props[name] = root, props
    return DataPaths(train_root, train_props, valid_roots, valid_props)


def config_opts(s: Settings, root: Path, train_props: Path, eval_props: Path, out_dir: Path) -> list[str]:
    """``KEY VALUE`` overrides of the ``synthetic`` config for this run."""
    return [
        "DATA.ROOT", str(root), "PROPOSALS.TRAIN_DIR", str(train_props), "PROPOSALS.EVAL_DIR", str(eval_props),
        "OUTPUT_DIR", str(out_dir), "DEVICE", s.device, "MODEL.BACKBONE", s.backbone,
        "MODEL.PRETRAINED", "none", "DATA.INPUT_H", str(s.input_h), "DATA.INPUT_W", str(s.input_w),
        "SOLVER.BATCH_SIZE", str(s.batch_size), "SOLVER.MAX_ITERS", str(s.warmup + s.iters),
        "SOLVER.EPOCHS", "1000", "SOLVER.CHECKPOINT_PERIOD", "100000", "VAL.ENABLED", "False",
        "DATA.NUM_WORKERS", "0", "MATCHING.TRAIN_MAX_ITER", str(s.train_max_iter),
        "MATCHING.IMPLEMENTATION", s.matching,
    ]


#: the fast settings, for CUDA: the fused matching kernel and bf16 autocast (on a CPU both are
#: slower than the defaults: the exact layer's early exits win there, and bf16 has no hardware path)
FAST_OPTS = ["MATCHING.IMPLEMENTATION", "triton", "MODEL.AMP", "True"]


# ------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_steps(batches, step, device: torch.device, total: int) -> list[float]:
    """Seconds of each of ``total`` iterations: fetching a batch (data loading) plus ``step``."""
    times: list[float] = []
    epoch = 0
    while len(times) < total:
        _sync(device)
        tic = time.perf_counter()
        for batch in batches(epoch):
            step(batch, len(times))
            _sync(device)
            toc = time.perf_counter()
            times.append(toc - tic)
            tic = toc
            if len(times) >= total:
                break
        epoch += 1
    return times


def bench_training(s: Settings, data: DataPaths, out_dir: Path) -> dict:
    """Clips/s of the trainer's own step: with its loader in the loop, and on one batch loaded beforehand."""
    from dmm.engine.trainer import Trainer, own_prediction_flags

    cfg = load_config("synthetic", config_opts(s, data.train_root, data.train_proposals,
                                               data.valid_proposals["short"], out_dir))
    device = resolve_device(s.device)
    trainer = Trainer(cfg, DistInfo(rank=0, world_size=1, local_rank=0, device=device), overwrite=True)
    trainer.model.train()
    steps = cfg.DATA.LENGTH_CLIP - 1

    def step(batch: dict, it: int) -> None:  # the synthetic config: one batch-norm group a step
        trainer.run_step([batch], [own_prediction_flags(cfg.SEED, it, steps, 0.0)])

    total = s.warmup + s.iters
    with_loading = sum(_time_steps(lambda epoch: trainer._loader(epoch, 0), step, device, total)[s.warmup:])
    batch = next(iter(trainer._loader(0, 0)))
    compute = sum(_time_steps(lambda epoch: [batch] * total, step, device, total)[s.warmup:])
    clips = s.iters * s.batch_size
    return {"iters": s.iters, "clips": clips, "seconds": with_loading, "clips_per_s": clips / with_loading,
            "compute_seconds": compute, "compute_clips_per_s": clips / compute,
            "loading_share": max(0.0, 1 - compute / with_loading)}


# ------------------------------------------------------------------------------------------
# Inference (one fresh process per video length)
# ------------------------------------------------------------------------------------------


def _proc_status_bytes(field: str) -> int | None:
    """``VmRSS`` / ``VmHWM`` of this process from ``/proc/self/status`` (Linux), else None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def max_rss_bytes() -> int:
    """Peak resident set size so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if platform.system() == "Darwin" else int(peak) * 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (VmHWM) to the current RSS (Linux >= 4.0).

    Without it the peak measured after the model build would be hidden under the peak of
    imports and model construction.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _proc_status_bytes("VmHWM") is not None
    except OSError:
        return False


def rss_now_and_peak(reset: bool) -> tuple[int, int]:
    """(current RSS, peak RSS since the reset) when ``reset`` worked, else ru_maxrss twice."""
    if reset:
        return _proc_status_bytes("VmRSS") or 0, _proc_status_bytes("VmHWM") or 0
    return max_rss_bytes(), max_rss_bytes()


def run_inference_child(opts: list[str]) -> dict:
    """Build the model, then segment the valid split once; returns speed and peak memory growth."""
    from dmm.data import build_reader
    from dmm.engine.results import segment_videos
    from dmm.engine.proposal_source import ProposalSource
    from dmm.engine.tracker import DMMTracker
    from dmm.model.dmmnet import DMMNet

    cfg = load_config("synthetic", opts)
    device = resolve_device(cfg.DEVICE)
    torch.manual_seed(0)
    model = DMMNet.from_config(cfg).to(device).eval()
    reader = build_reader(cfg.DATA, cfg.DATA.EVAL_SPLIT)
    frames = sum(len(reader.info(v).frames) for v in reader.videos)
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        cuda_base = torch.cuda.memory_allocated(device)
    gc.collect()
    hwm = reset_peak_rss()
    rss_base, _ = rss_now_and_peak(hwm)
    tic = time.perf_counter()
    segment_videos(DMMTracker(model), reader, reader.videos, ProposalSource.for_evaluation(cfg.PROPOSALS),
                   Path(cfg.OUTPUT_DIR) / "results", cfg, device=device, batch_videos=cfg.TEST.BATCH_VIDEOS,
                   show_progress=False)
    _sync(device)
    seconds = time.perf_counter() - tic
    _, rss_peak = rss_now_and_peak(hwm)
    result = {"frames": frames, "seconds": seconds, "fps": frames / seconds, "rss_source": "VmHWM" if hwm
              else "ru_maxrss", "rss_base_bytes": rss_base, "rss_peak_bytes": rss_peak,
              "rss_growth_bytes": rss_peak - rss_base}
    if device.type == "cuda":
        result["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(device)
        result["cuda_growth_bytes"] = result["cuda_peak_bytes"] - cuda_base
    result["peak_bytes"] = result.get("cuda_peak_bytes", rss_peak)
    result["growth_bytes"] = result.get("cuda_growth_bytes", result["rss_growth_bytes"])
    return result


def runs(s: Settings) -> dict[str, tuple[str, int]]:
    """The inference runs: name -> (valid set, TEST.BATCH_VIDEOS)."""
    return {f"one video, {s.short_frames} frames": ("short", 1), f"one video, {s.long_frames} frames": ("long", 1),
            f"{s.batch_videos} videos in lockstep": ("batch", s.batch_videos)}


def bench_inference(s: Settings, data: DataPaths, work: Path, threads: int, fast: bool) -> dict[str, dict]:
    """Each run in its own fresh interpreter, so peaks do not mix; ``fast`` adds the fast settings' runs."""
    variants = {"default": []} | ({"fast": FAST_OPTS} if fast and s.device == "cuda" else {})
    if fast and s.device != "cuda":
        print("--fast: the fast settings are CUDA settings; on the CPU only the defaults are timed", flush=True)
    results = {}
    for variant, extra in variants.items():
        for name, (subset, batch) in runs(s).items():
            if variant == "fast" and subset == "long":
                continue  # the memory check is the default's
            out_dir = work / f"infer_{variant}_{subset}"
            shutil.rmtree(out_dir, ignore_errors=True)  # segment_videos skips finished videos
            opts = config_opts(s, data.valid_roots[subset], data.train_proposals, data.valid_proposals[subset],
                               out_dir) + ["TEST.BATCH_VIDEOS", str(batch), *extra]
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(opts), "--threads", str(threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"inference ({variant}, {name}) failed:\n{proc.stderr[-3000:]}")
            results[f"{variant}: {name}"] = json.loads(proc.stdout.strip().splitlines()[-1])
    return results


# ------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def report(s: Settings, train: dict | None, infer: dict[str, dict]) -> tuple[str, dict]:
    """The printed table and the JSON record; the record's ``pass`` is the memory check."""
    short = infer[f"default: one video, {s.short_frames} frames"]
    long = infer[f"default: one video, {s.long_frames} frames"]
    ratio = long["peak_bytes"] / max(short["peak_bytes"], 1)
    ok = ratio < MEMORY_RATIO_TARGET
    kind = "CUDA max_memory_allocated" if s.device == "cuda" else "RSS"
    rows = []
    if train is not None:
        rows.append(["training, loading included", f"{train['clips_per_s']:.3f} clips/s", "",
                     f"{train['clips']} clips in {train['seconds']:.1f} s", "", ""])
        rows.append(["training, compute alone", f"{train['compute_clips_per_s']:.3f} clips/s",
                     f"loading {train['loading_share']:.0%} of the loop",
                     f"{train['clips']} clips in {train['compute_seconds']:.1f} s", "", ""])
    for name, r in infer.items():
        growth = mib(r["growth_bytes"]) + (f" (RSS {mib(r['rss_growth_bytes'])})" if "cuda_growth_bytes" in r else "")
        relative = f"{r['fps'] / short['fps']:.2f}x one video" if r is not short else ""
        rows.append([f"inference ({name})", f"{r['fps']:.2f} frames/s", relative,
                     f"{r['frames']} frames in {r['seconds']:.1f} s", mib(r["peak_bytes"]), growth])
    table = tabulate(rows, headers=["run", "speed", "ratio", "work", f"peak {kind}", "growth over model build"],
                     tablefmt="github")
    head = (f"device {s.device}, {s.backbone}, matching {s.matching}, input {s.input_h}x{s.input_w}, frames {s.frame_h}x{s.frame_w}, "
            f"batch {s.batch_size}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    verdict = (f"peak inference memory {s.long_frames}/{s.short_frames} frames: {ratio:.3f} "
               f"(target < {MEMORY_RATIO_TARGET}): {'PASS' if ok else 'FAIL'}")
    if s.device == "cuda" and "rss_growth_bytes" in long:
        verdict += (f"\nhost RSS {s.long_frames}/{s.short_frames} frames: "
                    f"{long['rss_growth_bytes'] / max(short['rss_growth_bytes'], 1):.3f}")
    record = {"settings": asdict(s), "torch": torch.__version__, "training": train, "inference": infer,
              "memory_ratio": ratio, "target": MEMORY_RATIO_TARGET, "pass": ok}
    return f"{head}\n{table}\n{verdict}", record


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.child is not None:
        print(json.dumps(run_inference_child(json.loads(args.child))))
        return 0
    s = settings_from_args(args)
    with tempfile.TemporaryDirectory(prefix="bench_engine_") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        tic = time.perf_counter()
        data = make_data(work, s)
        print(f"data generated in {time.perf_counter() - tic:.1f} s under {work}", flush=True)
        if args.prepare_only:
            return 0
        train = None if args.skip_train else bench_training(s, data, work / "train_run")
        infer = bench_inference(s, data, work, args.threads, args.fast)
    text, record = report(s, train, infer)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return 0 if record["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
