"""The Python side of ``benchmarks/gpu_check.sh``: one subcommand per part that is not a
``bench_*.py`` script, and the report writer.

Each part writes one JSON file (``--json``); ``report`` reads them, the parts table the shell
script kept (``parts.tsv``: name, exit code, seconds, time limit) and each part's log, and writes
``GPU_REPORT.md`` and ``gpu_report.json``. The module imports only the standard library at the
top, so ``deps`` runs (and names what is missing) on an interpreter that lacks the project's
dependencies.

    python benchmarks/gpu_check.py deps
    python benchmarks/gpu_check.py env|tests|golden|amp|ddp --device cuda|cpu [--smoke] --json OUT [--work DIR]
    python benchmarks/gpu_check.py report --work DIR --out OUT_DIR [--smoke]
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: requirements.txt names whose import name differs
IMPORT_NAMES = {"opencv-python-headless": "cv2", "scikit-image": "skimage", "pillow": "PIL", "pyyaml": "yaml"}
MIN_TORCH = (2, 11)

#: the parts, in the order the shell script runs them, with what each measures
PARTS = {
    "env": "device, driver, torch and Triton versions",
    "tests": "pytest -m cuda (every CUDA-marked test) and the faithfulness tests",
    "golden": "the golden evaluation on the device against the CPU (exact, batched, Triton matching)",
    "model": "bench_model.py: frame and step against the backbone, the 2019 decoder layout beside it",
    "engine": "bench_engine.py: frames/s (one video, videos in lockstep), training clips/s, peak memory",
    "matching": "bench_matching.py: ms per problem, exact / batched / Triton, B = 1 and 64, forward and backward",
    "amp": "MODEL.AMP on against off: speed and J&F on the synthetic valid set, one checkpoint",
    "ddp": "two-process DDP (NCCL on CUDA, gloo on the CPU) against one process accumulating: gradients",
}


def write_json(path: Path, record: dict) -> None:
    """Write ``record`` atomically (a part killed at its time limit leaves no half file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------
# deps: what the interpreter lacks
# ------------------------------------------------------------------------------------------


def required_modules(requirements: Path = ROOT / "requirements.txt") -> dict[str, str]:
    """requirement name -> import name, for every line of requirements.txt."""
    out = {}
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name = re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower()
            out[name] = IMPORT_NAMES.get(name, name.replace("-", "_"))
    return out


def missing_modules() -> list[str]:
    """``module (requirement)`` for each required module this interpreter cannot find."""
    missing = []
    for requirement, module in required_modules().items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(module if module == requirement else f"{module} ({requirement})")
    return missing


def cmd_deps(args: argparse.Namespace) -> int:
    missing = missing_modules()
    if missing:
        print(f"error: {sys.executable} lacks the Python modules: {', '.join(missing)}; put their wheels in a "
              f"folder and run WHEELS=DIR bash benchmarks/gpu_check.sh (benchmarks/README.md, GPU check, says how "
              f"to fill it)")
        return 3
    import torch

    version = tuple(int(x) for x in re.findall(r"\d+", torch.__version__)[:2])
    if version < MIN_TORCH:
        print(f"warning: torch {torch.__version__} is older than {'.'.join(map(str, MIN_TORCH))}: the figures "
              f"may not hold for a recent torch")
    print(f"dependencies: all {len(required_modules())} of requirements.txt found by {sys.executable}")
    return 0


# ------------------------------------------------------------------------------------------
# env
# ------------------------------------------------------------------------------------------


def nvidia_smi() -> dict:
    """Name, driver and memory of each GPU from nvidia-smi ({} without it)."""
    if shutil.which("nvidia-smi") is None:
        return {}
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"gpus": [dict(zip(("name", "driver", "memory"), (x.strip() for x in line.split(","))))
                     for line in out.strip().splitlines() if line.strip()]}


def cmd_env(args: argparse.Namespace) -> int:
    import torch

    record = {"device": f"{args.device} (smoke)" if args.smoke else args.device, "python": platform.python_version(),
              "torch": torch.__version__, "torch_cuda": torch.version.cuda, "cpu": platform.processor() or
              platform.machine(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    for name in ("torchvision", "triton"):
        try:
            record[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            record[name] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        record |= {"gpu": props.name, "gpu_count": torch.cuda.device_count(),
                   "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                   "multiprocessors": props.multi_processor_count, "capability": f"{props.major}.{props.minor}",
                   "cudnn": torch.backends.cudnn.version(), "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                   "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                   "nccl": ".".join(map(str, torch.cuda.nccl.version())) if torch.distributed.is_nccl_available()
                   else None}
        record |= nvidia_smi()
        if record.get("gpus"):
            record["driver"] = record["gpus"][0]["driver"]
    for key, value in record.items():
        print(f"{key}: {value}")
    write_json(args.json, record)
    return 0


# ------------------------------------------------------------------------------------------
# tests
# ------------------------------------------------------------------------------------------


def cuda_marked_files() -> list[str]:
    """The test files that mark a test ``cuda`` (what ``pytest -m cuda tests`` would select from)."""
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                  if "mark.cuda" in p.read_text())


def junit_counts(path: Path) -> dict:
    """tests / failures / errors / skipped of a pytest junit XML file."""
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    failed = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    return counts | {"failed_tests": failed}


def run_pytest(name: str, targets: list[str], extra: list[str], work: Path) -> dict:
    """One pytest run in a subprocess (its output passed through), summarised from its junit XML."""
    xml = work / f"{name}.xml"
    cmd = [sys.executable, "-m", "pytest", *targets, "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", *extra]
    print("$", " ".join(cmd), flush=True)
    tic = time.perf_counter()
    rc = subprocess.run(cmd, cwd=ROOT).returncode
    record = {"command": " ".join(cmd[1:]), "rc": rc, "seconds": time.perf_counter() - tic}
    if xml.is_file():
        record |= junit_counts(xml)
    return record


def cmd_tests(args: argparse.Namespace) -> int:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    skipped = []
    if args.smoke:
        # the CPU: the CUDA-marked tests' files (each test skips itself) and one faithfulness file
        cuda = run_pytest("cuda_tests", ["-m", "cuda", *cuda_marked_files()], [], work)
        faith = run_pytest("faithfulness", ["tests/faithfulness/test_resize.py"], [], work)
        skipped.append("faithfulness: only test_resize.py in smoke mode (the whole folder takes minutes on 2 cores)")
    else:
        cuda = run_pytest("cuda_tests", ["-m", "cuda", "tests"], [], work)
        # the fixtures pin one thread per test: spread the files over processes when xdist is there
        xdist = ["-n", "8"] if importlib.util.find_spec("xdist") is not None else []
        faith = run_pytest("faithfulness", ["tests/faithfulness"], xdist, work)
        skipped.append("faithfulness: these tests take no device; they ran on this machine's CPU and torch "
                       "(the golden part runs their evaluation on CUDA)")
    record = {"runs": {"cuda-marked": cuda, "faithfulness": faith}, "skipped": skipped}
    write_json(args.json, record)
    return 0 if cuda["rc"] in (0, 5) and faith["rc"] == 0 else 1


# ------------------------------------------------------------------------------------------
# golden: the 2019 fixtures' evaluation on the device against the CPU
# ------------------------------------------------------------------------------------------


def golden_videos(e: dict, videos: list[int]):
    """The fixture's videos as ``propagate`` takes them, and its raw proposals."""
    from dmm.data.frames import FrameInput
    from dmm.structures import ObjectInfo, Proposals, VideoInfo
    from tests.faithfulness.golden import INPUT_SIZE

    frames_per_video = e["images"].shape[1]
    out = []
    for b in videos:
        names = [f"{t:05d}" for t in range(frames_per_video)]
        objects = {k + 1: ObjectInfo(k + 1, names[0], 0) for k in range(e["meta"]["objects"][b])}
        frames = [FrameInput(t, names[t], e["images"][b, t], e["labels0"][b].numpy() if t == 0 else None, INPUT_SIZE)
                  for t in range(frames_per_video)]
        out.append((VideoInfo(f"video{b}", names, objects), frames))

    def proposal_fn(video: str, index: int, name: str) -> Proposals:
        rp = e["raw_proposals"][int(video[len("video"):])][index]
        return Proposals(rp["boxes"], rp["scores"], rp["masks"], tuple(e["meta"]["raw_size"]), "roi")

    return out, proposal_fn


def golden_run(model, device: str, implementation: str, videos: list[int]) -> dict:
    """Label maps (per video and frame) and refined probabilities of one evaluation of a copy of
    the golden ``model`` on ``device`` with the matching ``implementation``, and its seconds."""
    import torch

    from dmm.engine.inference import propagate
    from dmm.engine.tracker import DMMTracker
    from tests.faithfulness.golden import INPUT_SIZE, golden_config, load

    e = load("eval")
    model = copy.deepcopy(model).to(device)
    model.matcher = replace(model.matcher, implementation=implementation)
    probs = []

    class Recording(DMMTracker):
        def step(self, state, features, proposals):
            p, state = super().step(state, features, proposals)
            probs.append(p.float().cpu())
            return p, state

    clips, proposal_fn = golden_videos(e, videos)
    with torch.no_grad():
        tic = time.perf_counter()
        results = list(propagate(Recording(model), clips, proposal_fn, INPUT_SIZE, golden_config().PROPOSALS,
                                 device=torch.device(device)))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - tic
    labels = {(r.video, r.index): torch.from_numpy(r.labels) for r in results}
    return {"labels": labels, "probs": probs, "seconds": seconds, "fixture": e["labels"]}


def compare_golden(base: dict, run: dict, videos: list[int]) -> dict:
    """How ``run`` differs from ``base`` (and from the 2019 fixture's label maps)."""
    differing = sum(int((run["labels"][k] != base["labels"][k]).sum()) for k in base["labels"])
    total = sum(v.numel() for v in base["labels"].values())
    refined = max((float((a - b).abs().max()) for a, b in zip(run["probs"], base["probs"])), default=0.0)
    fixture = sum(int((run["labels"][f"video{b}", t] != run["fixture"][b, t]).sum())
                  for b in videos for t in range(run["fixture"].shape[1]))
    return {"labels_identical": differing == 0, "label_pixels_differing": differing, "label_pixels": total,
            "max_refined_difference": refined, "label_pixels_differing_from_2019": fixture,
            "seconds": run["seconds"], "cpu_seconds": base["seconds"], "speedup_over_cpu": base["seconds"] / run["seconds"]}


def cmd_golden(args: argparse.Namespace) -> int:
    import torch

    sys.path.insert(0, str(ROOT))  # tests.faithfulness.golden: the fixtures and their weight rule
    from tests.faithfulness.golden import golden_model

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model = golden_model(work)  # the 2019 model with the fixtures' weights, through the checkpoint loader
    videos = [0] if args.smoke else [0, 1]
    implementations = ["exact"] if args.smoke else ["exact", "batched", "triton"]
    skipped = ["golden: video 0 and the exact layer only in smoke mode"] if args.smoke else []
    record = {"device": args.device, "videos": videos, "implementations": {}, "skipped": skipped}
    if args.device == "cuda":
        record["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
    if args.device != "cpu":
        golden_run(model, args.device, "batched", videos[:1])  # untimed: CUDA context, cuDNN plans
    bases: dict[str, dict] = {}
    for implementation in implementations:
        # Triton runs on CUDA only; its CPU baseline is the batched layer (the same arithmetic)
        base_impl = "batched" if implementation == "triton" else implementation
        if base_impl not in bases:
            bases[base_impl] = golden_run(model, "cpu", base_impl, videos)
        base = bases[base_impl]
        run = golden_run(model, args.device, implementation, videos)
        record["implementations"][implementation] = compare_golden(base, run, videos) | {"cpu_baseline": base_impl}
        print(implementation, json.dumps(record["implementations"][implementation]), flush=True)
    write_json(args.json, record)
    return 0


# ------------------------------------------------------------------------------------------
# amp and ddp: a synthetic dataset, a short training run, evaluation
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSize:
    """The synthetic data and training run of the amp and ddp parts."""

    train_videos: int
    valid_videos: int
    frames: int
    frame_hw: tuple[int, int]
    input_hw: tuple[int, int]
    backbone: str
    iters: int


SMOKE_SIZE = RunSize(train_videos=4, valid_videos=2, frames=5, frame_hw=(64, 112), input_hw=(64, 112),
                     backbone="resnet18", iters=2)
GPU_SIZE = RunSize(train_videos=6, valid_videos=4, frames=10, frame_hw=(128, 224), input_hw=(128, 224),
                   backbone="resnet50", iters=40)


def synthetic_data(work: Path, size: RunSize) -> tuple[Path, Path]:
    """A synthetic dataset and its proposals under ``work`` (reused when there): (root, proposals)."""
    from dmm.data.synthetic import SyntheticConfig, generate
    from dmm.proposals.synthetic import generate as generate_proposals

    root, proposals = work / "synthetic", work / "proposals"
    if not (root / "synthetic_record.json").exists():
        generate(root, SyntheticConfig(num_train=size.train_videos, num_valid=size.valid_videos,
                                       num_frames=size.frames, height=size.frame_hw[0], width=size.frame_hw[1],
                                       seed=0, max_targets=5), overwrite=root.exists(), progress=False)
    for split in ("train", "valid"):
        if not (proposals / split).is_dir():
            generate_proposals(root, split, proposals / split, seed=0, progress=False)
    return root, proposals


def run_opts(root: Path, proposals: Path, out: Path, device: str, size: RunSize) -> list[str]:
    """``KEY VALUE`` overrides of the synthetic config for a short run."""
    return ["DATA.ROOT", str(root), "PROPOSALS.TRAIN_DIR", str(proposals / "train"),
            "PROPOSALS.EVAL_DIR", str(proposals / "valid"), "OUTPUT_DIR", str(out), "DEVICE", device,
            "MODEL.BACKBONE", size.backbone, "DATA.INPUT_H", str(size.input_hw[0]),
            "DATA.INPUT_W", str(size.input_hw[1]), "DATA.NUM_WORKERS", "0", "VAL.ENABLED", "False",
            "MATCHING.IMPLEMENTATION", "batched", "SOLVER.CHECKPOINT_PERIOD", "100000", "SOLVER.EPOCHS", "1000"]


def segment_and_score(model, cfg, out: Path, device, score: bool = True) -> dict:
    """Segment the valid split into ``out`` and (``score``) score it: seconds, frames/s, J&F."""
    import torch

    from dmm.data import build_reader
    from dmm.engine.proposal_source import ProposalSource
    from dmm.engine.results import segment_videos
    from dmm.engine.tracker import DMMTracker
    from dmm.engine.validation import ground_truth_dir
    from dmm.metrics import evaluate_folders

    reader = build_reader(cfg.DATA, cfg.DATA.EVAL_SPLIT)
    shutil.rmtree(out, ignore_errors=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    tic = time.perf_counter()
    segment_videos(DMMTracker(model), reader, reader.videos, ProposalSource.for_evaluation(cfg.PROPOSALS), out,
                   cfg, device=device, show_progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - tic
    frames = sum(len(reader.info(v).frames) for v in reader.videos)
    record = {"seconds": seconds, "frames": frames, "fps": frames / seconds}
    if score:
        scores = evaluate_folders(ground_truth_dir(cfg.DATA, cfg.DATA.EVAL_SPLIT), out, processes=1)["global"]
        record |= {key: scores[key] for key in ("JF_mean", "J_mean", "F_mean")}
    return record


def cmd_amp(args: argparse.Namespace) -> int:
    from dmm.config import load_config
    from dmm.device import resolve_device
    from dmm.engine.distributed import DistInfo
    from dmm.engine.trainer import Trainer

    size = SMOKE_SIZE if args.smoke else GPU_SIZE
    work = Path(args.work)
    root, proposals = synthetic_data(work / "data", size)
    device = resolve_device(args.device)
    cfg = load_config("synthetic", run_opts(root, proposals, work / "run", args.device, size)
                      + ["SOLVER.MAX_ITERS", str(size.iters)])
    tic = time.perf_counter()
    trainer = Trainer(cfg, DistInfo(rank=0, world_size=1, local_rank=0, device=device), overwrite=True)
    trainer.train()
    train_seconds = time.perf_counter() - tic
    model = trainer.model.eval()
    runs = {}
    for amp in (False, True):
        model.amp = amp
        if not args.smoke:  # an untimed pass first: cuDNN plans, autocast kernels
            segment_and_score(model, cfg, work / f"amp_{amp}", device, score=False)
        runs["on" if amp else "off"] = segment_and_score(model, cfg, work / f"amp_{amp}", device)
    off, on = runs["off"], runs["on"]
    record = {"device": args.device, "size": size.__dict__, "train_seconds": train_seconds,
              "checkpoint": str(trainer.last_checkpoint), "off": off, "on": on,
              "speedup": off["seconds"] / on["seconds"], "JF_difference": on["JF_mean"] - off["JF_mean"],
              "skipped": ["amp: bf16 autocast has no fast CPU path: the smoke run checks the code, not the speed"]
              if args.device == "cpu" else []}
    print(json.dumps(record, indent=1, default=str), flush=True)
    write_json(args.json, record)
    return 0


def ddp_step(out: str, opts: list[str]) -> int:
    """One training step (launched plainly or by torchrun); rank 0 saves the gradients and buffers."""
    import torch

    from dmm.config import load_config
    from dmm.engine.distributed import cleanup, init_distributed
    from dmm.engine.trainer import Trainer

    cfg = load_config("synthetic", opts)
    info = init_distributed(cfg.DEVICE)
    trainer = Trainer(cfg, info)
    trainer.train()
    if info.is_main:
        grads = {n: p.grad.detach().cpu() for n, p in trainer.model.named_parameters() if p.grad is not None}
        buffers = {n: b.detach().cpu() for n, b in trainer.model.named_buffers()}
        torch.save({"grads": grads, "buffers": buffers, "steps": trainer.iters_per_epoch}, out)
    cleanup(info)
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gradient_difference(a: dict, b: dict) -> tuple[float, list[str]]:
    """Largest |a - b| over each gradient's scale (its largest magnitude), and the names over 1e-4."""
    worst, over = 0.0, []
    for name, grad in a.items():
        other = b[name]
        scale = max(float(grad.abs().max()), float(other.abs().max()), 1e-12)
        rel = float((grad - other).abs().max()) / scale
        worst = max(worst, rel)
        if rel > 1e-4:
            over.append(name)
    return worst, over


def cmd_ddp(args: argparse.Namespace) -> int:
    import torch

    size = SMOKE_SIZE
    work = Path(args.work)
    root, proposals = synthetic_data(work / "data", size)
    backend = "nccl" if args.device == "cuda" else "gloo"
    record = {"device": args.device, "backend": backend, "skipped": []}
    if args.device == "cuda" and not torch.distributed.is_nccl_available():
        record["skipped"].append("ddp: this torch has no NCCL")
        write_json(args.json, record)
        return 0

    def opts(name: str) -> list[str]:
        return run_opts(root, proposals, work / name, args.device, size) + [
            "SOLVER.BATCH_SIZE", "1", "SOLVER.BN_GROUPS", "2", "SOLVER.MAX_ITERS", "1", "SOLVER.GRAD_CLIP", "0.0"]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    me = [sys.executable, str(Path(__file__).resolve()), "ddp-step"]
    tic = time.perf_counter()
    one = subprocess.run([*me, str(work / "one.pt"), *opts("one")], capture_output=True, text=True, env=env)
    record["one_process_seconds"] = time.perf_counter() - tic
    print(one.stdout[-2000:], one.stderr[-2000:], flush=True)
    if one.returncode != 0:
        raise RuntimeError(f"the one-process step failed (exit {one.returncode})")
    tic = time.perf_counter()
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                          f"--master_port={free_port()}", *me[1:], str(work / "two.pt"), *opts("two")],
                         capture_output=True, text=True, env=env)
    record["two_process_seconds"] = time.perf_counter() - tic
    print(two.stdout[-3000:], two.stderr[-3000:], flush=True)
    if two.returncode != 0:
        text = two.stdout + two.stderr
        if args.device == "cuda" and torch.cuda.device_count() < 2 and re.search(r"[Dd]uplicate GPU", text):
            record["skipped"].append("ddp: NCCL refuses two ranks on one GPU (Duplicate GPU detected); "
                                     "needs a machine with 2 GPUs")
            write_json(args.json, record)
            return 0
        raise RuntimeError(f"the two-process step failed (exit {two.returncode})")
    a, b = torch.load(work / "one.pt"), torch.load(work / "two.pt")
    if a["grads"].keys() != b["grads"].keys() or a["steps"] != b["steps"]:
        raise RuntimeError("the one- and two-process runs differ in their parameters with gradients or their steps")
    worst, over = gradient_difference(a["grads"], b["grads"])
    buffers = max(float((a["buffers"][n].double() - b["buffers"][n].double()).abs().max()) for n in a["buffers"])
    record |= {"gpus": torch.cuda.device_count() if args.device == "cuda" else 0, "parameters": len(a["grads"]),
               "max_relative_gradient_difference": worst, "over_1e-4": over, "max_buffer_difference": buffers}
    print(json.dumps(record, indent=1), flush=True)
    write_json(args.json, record)
    return 0


# ------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One figure against its target."""

    part: str
    name: str
    value: float | None  # None: not measured (the part failed, or skipped it)
    limit: float
    higher_is_better: bool
    unit: str = ""

    def verdict(self, smoke: bool) -> str:
        if self.value is None:
            return "not measured"
        if smoke:
            return "n/a (smoke)"
        ok = self.value >= self.limit if self.higher_is_better else self.value <= self.limit
        return "PASS" if ok else "FAIL"

    def as_dict(self, smoke: bool) -> dict:
        return {"part": self.part, "name": self.name, "value": self.value, "unit": self.unit,
                "target": f"{'>=' if self.higher_is_better else '<='} {self.limit:g}", "verdict": self.verdict(smoke)}


def dig(record: dict | None, *keys):
    """``record[k0][k1]...``, or None where a key is missing."""
    for key in keys:
        if not isinstance(record, dict) or key not in record:
            return None
        record = record[key]
    return record


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def targets(parts: dict[str, dict | None]) -> list[Target]:
    """The issue's targets, read off the parts' JSON records."""
    out = []
    tests = parts.get("tests")
    for run in ("cuda-marked", "faithfulness"):
        r = dig(tests, "runs", run)
        bad = None if r is None or "tests" not in r else r["failures"] + r["errors"]
        out.append(Target("tests", f"{run} tests failing", bad, 0, False))
    for impl, r in (dig(parts.get("golden"), "implementations") or {"exact": None}).items():
        out.append(Target("golden", f"{impl}: label pixels differing from the CPU", dig(r, "label_pixels_differing"),
                          0, False))
    model = dig(parts.get("model"), "ms", "cuda", "5") or dig(parts.get("model"), "ms", "cpu", "5")
    layout = "fast" if dig(model, "fast") else "default"
    out.append(Target("model", f"frame / backbone, 5 objects ({layout} settings)",
                      ratio(dig(model, layout, "frame"), dig(model, layout, "backbone")), 2.0, False, "x"))
    engine = parts.get("engine")
    s = dig(engine, "settings") or {}
    infer = dig(engine, "inference") or {}
    one = dig(infer, f"default: one video, {s.get('short_frames')} frames", "fps")
    lock = dig(infer, f"default: {s.get('batch_videos')} videos in lockstep", "fps")
    out += [Target("engine", f"frames/s, one video ({s.get('matching')} matching)", one, 60, True, "frames/s"),
            Target("engine", f"frames/s, {s.get('batch_videos')} videos in lockstep", lock, 150, True, "frames/s"),
            Target("engine", f"training clips/s, loading included, batch {s.get('batch_size')}",
                   dig(engine, "training", "clips_per_s"), 16, True, "clips/s"),
            Target("engine", f"peak memory {s.get('long_frames')} / {s.get('short_frames')} frames",
                   dig(engine, "memory_ratio"), 1.1, False, "x")]
    matching = dig(parts.get("matching"), "ms_per_problem")
    triton = dig(matching, "cuda", "eval", "1", "triton")
    out.append(Target("matching", "Triton forward, B = 1 (eval iterations)", triton, 0.5, False, "ms"))
    out.append(Target("ddp", "max relative gradient difference, 2 processes vs 1 accumulating",
                      dig(parts.get("ddp"), "max_relative_gradient_difference"), 1e-4, False))
    return out


def read_parts_table(work: Path) -> list[dict]:
    rows = []
    table = work / "parts.tsv"
    for line in table.read_text().splitlines() if table.is_file() else []:
        name, rc, seconds, limit = line.split("\t")[:4]
        rows.append({"part": name, "rc": int(rc), "seconds": float(seconds), "limit": int(limit)})
    return rows


def log_tail(work: Path, name: str, lines: int) -> str:
    path = work / "logs" / f"{name}.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.is_file() else ""


def status(row: dict | None) -> str:
    if row is None:
        return "not run"
    if row["rc"] == 0:
        return "ok"
    return f"timed out after {row['limit']} s" if row["rc"] in (124, 137) else f"failed (exit {row['rc']})"


def figures_md(parts: dict[str, dict | None]) -> list[str]:
    """Each part's main figures as markdown lines."""
    md = []
    env = parts.get("env") or {}
    tests = parts.get("tests")
    for run, r in (dig(tests, "runs") or {}).items():
        if "tests" in r:
            md.append(f"- tests, {run}: {r['passed']} passed, {r['failures']} failed, {r['errors']} errors, "
                      f"{r['skipped']} skipped in {r['seconds']:.1f} s (`{r['command']}`)"
                      + (f"; failing: {', '.join(r['failed_tests'][:10])}" if r["failed_tests"] else ""))
    for impl, r in (dig(parts.get("golden"), "implementations") or {}).items():
        md.append(f"- golden, {impl} (CPU baseline {r['cpu_baseline']}): label maps identical: "
                  f"{'yes' if r['labels_identical'] else 'NO'} ({r['label_pixels_differing']} of {r['label_pixels']} "
                  f"pixels differ; {r['label_pixels_differing_from_2019']} differ from the 2019 fixture), max |refined "
                  f"difference| {r['max_refined_difference']:.2e}; {r['seconds']:.2f} s vs CPU {r['cpu_seconds']:.2f} s "
                  f"({r['speedup_over_cpu']:.1f}x)")
    model = parts.get("model")
    for device, per_objects in (dig(model, "ms") or {}).items():
        for objects, layouts in per_objects.items():
            cells = []
            for layout, p in layouts.items():
                if isinstance(p, dict):
                    cells.append(f"{layout}: frame {p['frame']:.1f} ms = {p['frame'] / p['backbone']:.2f}x backbone "
                                 f"({p['backbone']:.1f} ms), step {p['step'] / p['backbone']:.2f}x")
            md.append(f"- model, {device}, {model['backbone']} {model['input'][0]}x{model['input'][1]}, {objects} "
                      f"object(s): " + "; ".join(cells))
    engine = parts.get("engine")
    if engine:
        train = engine.get("training") or {}
        if train:
            md.append(f"- engine, training: {train['clips_per_s']:.2f} clips/s loading included, "
                      f"{train['compute_clips_per_s']:.2f} compute alone (batch {engine['settings']['batch_size']})")
        for name, r in engine["inference"].items():
            md.append(f"- engine, {name}: {r['fps']:.1f} frames/s, peak {r['peak_bytes'] / 2**20:.0f} MiB")
        md.append(f"- engine, peak memory {engine['settings']['long_frames']} / {engine['settings']['short_frames']} "
                  f"frames: {engine['memory_ratio']:.3f}")
    for device, settings in (dig(parts.get("matching"), "ms_per_problem") or {}).items():
        for setting, batches in settings.items():
            for batch, ms in batches.items():
                exact = ms.get("exact")
                md.append(f"- matching, {device}, {setting}, B = {batch}: " + ", ".join(
                    f"{impl} {v:.3f} ms" + (f" ({exact / v:.1f}x exact)" if exact and impl != "exact" else "")
                    for impl, v in ms.items()))
    amp = parts.get("amp")
    if amp:
        md.append(f"- amp: off {amp['off']['fps']:.1f} frames/s, J&F {amp['off']['JF_mean']:.4f}; on "
                  f"{amp['on']['fps']:.1f} frames/s, J&F {amp['on']['JF_mean']:.4f}; speedup {amp['speedup']:.2f}x, "
                  f"J&F difference {amp['JF_difference']:+.4f} ({amp['size']['backbone']}, "
                  f"{amp['size']['input_hw'][0]}x{amp['size']['input_hw'][1]}, {amp['size']['iters']} training "
                  f"iterations)")
    ddp = parts.get("ddp")
    if ddp and "max_relative_gradient_difference" in ddp:
        md.append(f"- ddp ({ddp['backend']}): max relative gradient difference "
                  f"{ddp['max_relative_gradient_difference']:.2e} over {ddp['parameters']} parameters, buffers "
                  f"{ddp['max_buffer_difference']:.2e}; one process {ddp['one_process_seconds']:.1f} s, two "
                  f"{ddp['two_process_seconds']:.1f} s")
    if env:
        md.insert(0, "- env: " + ", ".join(f"{k} {v}" for k, v in env.items() if k not in ("gpus",)))
    return md


def cmd_report(args: argparse.Namespace) -> int:
    work, out = Path(args.work), Path(args.out)
    rows = {r["part"]: r for r in read_parts_table(work)}
    parts: dict[str, dict | None] = {}
    for name in PARTS:
        path = work / f"{name}.json"
        parts[name] = json.loads(path.read_text()) if path.is_file() else None
    env = parts.get("env") or {}
    device = env.get("device", "cpu (smoke)" if args.smoke else "unknown")
    checks = [t.as_dict(args.smoke) for t in targets(parts)]
    skipped = [s for p in parts.values() if p for s in p.get("skipped", [])]
    if env.get("gpu") is None:
        skipped.append("model, engine, matching: the Triton kernel and the fast settings (Triton matching, bf16 "
                       "autocast) need CUDA")
    record = {"device": device, "smoke": args.smoke, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "env": env, "budget_s": sum(r["limit"] for r in rows.values()),
              "parts": {name: {"what": what, "status": status(rows.get(name)),
                               "rc": dig(rows.get(name), "rc"), "seconds": dig(rows.get(name), "seconds"),
                               "limit_s": dig(rows.get(name), "limit"), "figures": parts[name],
                               "log_tail": log_tail(work, name, 40) if dig(rows.get(name), "rc") else ""}
                        for name, what in PARTS.items()},
              "targets": checks, "skipped": skipped}
    md = [f"# GPU check report", "", f"device: {device}", "",
          f"{record['date']}; GPU {env.get('gpu', 'none')}, driver {env.get('driver', 'none')}, torch "
          f"{env.get('torch')}, torchvision {env.get('torchvision')}, Triton {env.get('triton')}, CUDA "
          f"{env.get('torch_cuda')}, Python {env.get('python')}, {env.get('cpu_count')} CPUs. Command: "
          f"`bash benchmarks/gpu_check.sh{' --smoke' if args.smoke else ''}`; time limits sum to "
          f"{record['budget_s']} s.", "", "## Parts", "", "| part | measures | status | exit code | seconds | limit s |",
          "|---|---|---|---|---|---|"]
    for name, p in record["parts"].items():
        seconds = "" if p["seconds"] is None else f"{p['seconds']:.1f}"
        md.append(f"| {name} | {p['what']} | {p['status']} | {'' if p['rc'] is None else p['rc']} | {seconds} | "
                  f"{'' if p['limit_s'] is None else p['limit_s']} |")
    md += ["", "## Targets", "", "| part | figure | value | target | verdict |", "|---|---|---|---|---|"]
    for t in checks:
        value = "" if t["value"] is None else f"{t['value']:.4g} {t['unit']}".strip()
        md.append(f"| {t['part']} | {t['name']} | {value} | {t['target']} | {t['verdict']} |")
    md += ["", "## Figures", "", *figures_md(parts), "", "## Skipped", ""]
    md += [f"- {s}" for s in skipped] or ["- nothing"]
    errors = [(name, p["log_tail"]) for name, p in record["parts"].items() if p["log_tail"]]
    if errors:
        md += ["", "## Errors (the last lines of each failed part's log)"]
        for name, tail in errors:
            md += ["", f"### {name}", "", "```", tail, "```"]
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "gpu_report.json", record)
    tmp = out / "GPU_REPORT.md.tmp"
    tmp.write_text("\n".join(md) + "\n")
    os.replace(tmp, out / "GPU_REPORT.md")
    skipped_at = md.index("## Skipped")
    print("\n".join(md[md.index("## Parts"):md.index("## Figures")] + md[skipped_at:skipped_at + 2 + max(len(skipped), 1)]))
    print(f"wrote {out / 'GPU_REPORT.md'} and {out / 'gpu_report.json'}")
    failed = [name for name in PARTS if dig(rows.get(name), "rc") not in (0,)]
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("deps", help="name the required modules this interpreter lacks (exit 3 if any)")
    for name in ("env", "tests", "golden", "amp", "ddp"):
        p = sub.add_parser(name, help=PARTS[name])
        p.add_argument("--device", choices=("cpu", "cuda"), required=True)
        p.add_argument("--smoke", action="store_true", help="tiny sizes, for a CPU")
        p.add_argument("--json", type=Path, required=True)
        p.add_argument("--work", type=Path, default=Path("gpu_check_work"), help="scratch folder")
    p = sub.add_parser("ddp-step", help=argparse.SUPPRESS)
    p.add_argument("out")
    p.add_argument("opts", nargs=argparse.REMAINDER)
    p = sub.add_parser("report", help="write GPU_REPORT.md and gpu_report.json")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "ddp-step":
        return ddp_step(args.out, args.opts)
    return {"deps": cmd_deps, "env": cmd_env, "tests": cmd_tests, "golden": cmd_golden, "amp": cmd_amp,
            "ddp": cmd_ddp, "report": cmd_report}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
