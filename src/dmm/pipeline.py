"""The whole pipeline on the built-in synthetic dataset, with no downloads.

``python -m dmm.pipeline [--tiny] [KEY VALUE ...]`` (what ``scripts/run_synthetic.sh`` runs):

1. generate the synthetic dataset (YouTube-VOS layout) unless it is there;
2. write synthetic proposals for its train and valid splits unless they are there;
3. train DMM-Net with ``src/dmm/config/yaml/synthetic.yaml`` (a rerun resumes the run in
   OUTPUT_DIR; a run made with another config is refused, naming the key that differs);
4. segment the valid videos with DMM-Net and with two baselines (first-frame copy, and
   tracking by proposal IoU with Hungarian assignment);
5. score the three against the valid ground truth and print one table;
6. write overlay GIFs for a few videos and a per-video J&F chart.

Every step skips work already done, so an interrupted run continues where it stopped.
``--tiny`` (a seconds-long smoke run) keeps to folders of its own (``*synthetic_tiny``), so it
never meets the real run's dataset, proposals or checkpoints.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tabulate import tabulate  # noqa: E402

from .checkpointing import Checkpointer  # noqa: E402
from .cli import add_overrides, command_parser, run  # noqa: E402
from .config import flatten_config, load_config, save_config  # noqa: E402
from .data import build_reader  # noqa: E402
from .data.synthetic import SyntheticConfig, generate  # noqa: E402
from .engine.baselines import build_baseline  # noqa: E402
from .engine.distributed import init_distributed  # noqa: E402
from .engine.results import checkpoint_producer, provenance, segment_videos  # noqa: E402
from .engine.proposal_source import ProposalSource  # noqa: E402
from .engine.tracker import DMMTracker  # noqa: E402
from .engine.trainer import RESUMABLE, Trainer  # noqa: E402
from .engine.validation import ground_truth_dir, make_validator  # noqa: E402
from .engine.visualize import write_overlay_animation  # noqa: E402
from .errors import InputError  # noqa: E402
from .io import atomic_path, write_json, write_text  # noqa: E402
from .metrics import evaluate_folders  # noqa: E402
from .proposals.synthetic import generate as generate_proposals  # noqa: E402

log = logging.getLogger("dmm.pipeline")

METHODS = {"dmmnet": "DMM-Net (trained here)", "copy_first": "first-frame mask copied",
           "iou_hungarian": "proposal IoU + Hungarian"}
KEYS = ("J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay", "JF_mean")

# A run small enough for a test: tiny videos, a handful of iterations, in folders of its own.
TINY = SyntheticConfig(num_train=6, num_valid=2, num_frames=6, height=64, width=112, seed=0, max_targets=3)
TINY_OPTS = ["DATA.INPUT_H", "64", "DATA.INPUT_W", "112", "SOLVER.EPOCHS", "1", "SOLVER.BATCH_SIZE", "2",
             "SOLVER.MAX_ITERS", "2", "DATA.NUM_WORKERS", "0", "VAL.ENABLED", "False",
             "DATA.ROOT", "datasets/synthetic_tiny", "OUTPUT_DIR", "experiments/dmmnet/synthetic_tiny",
             "PROPOSALS.TRAIN_DIR", "experiments/proposals/synthetic_tiny/train",
             "PROPOSALS.EVAL_DIR", "experiments/proposals/synthetic_tiny/valid"]


def parse_args(argv=None) -> argparse.Namespace:
    p = command_parser("python -m dmm.pipeline", __doc__)
    p.add_argument("--config", default="synthetic", help="config name or yaml")
    p.add_argument("--tiny", action="store_true", help="a seconds-long smoke run (tests)")
    p.add_argument("--train-videos", type=int, default=None, help="train videos to generate (default: 40; --tiny: 6)")
    p.add_argument("--valid-videos", type=int, default=None, help="valid videos to generate (default: 10; --tiny: 2)")
    p.add_argument("--frames", type=int, default=None, help="frames per generated video (default: 20; --tiny: 6)")
    p.add_argument("--gifs", type=int, default=3, help="overlay GIFs for this many valid videos")
    add_overrides(p)
    return p.parse_args(argv)


def synthetic_config(args: argparse.Namespace) -> SyntheticConfig:
    base = TINY if args.tiny else SyntheticConfig()
    return SyntheticConfig(
        num_train=args.train_videos or base.num_train,
        num_valid=args.valid_videos or base.num_valid,
        num_frames=args.frames or base.num_frames,
        height=base.height, width=base.width, seed=base.seed, max_targets=base.max_targets,
    )


def check_same_run(cfg, syn: SyntheticConfig) -> None:
    """Refuse to continue a dataset or run made with another config: the synthetic dataset in
    ``DATA.ROOT`` must have been drawn with ``syn``, and a run in ``OUTPUT_DIR`` must have been
    made with ``cfg`` (but for the keys a resumed run may change); the first difference is named."""
    record = Path(cfg.DATA.ROOT) / "synthetic_record.json"
    if record.is_file():
        drawn = json.loads(record.read_text()).get("config", {})
        for key, value in syn.__dict__.items():
            if drawn.get(key) != value:
                raise InputError(f"DATA.ROOT {cfg.DATA.ROOT} holds a synthetic dataset drawn with {key} "
                                 f"{drawn.get(key)!r}, this run wants {value!r} ({record}): point DATA.ROOT at "
                                 f"a new folder, or remove that dataset")
    saved = Path(cfg.OUTPUT_DIR) / "config.yaml"
    if saved.is_file():
        ran, wanted = flatten_config(load_config(saved)), flatten_config(cfg)
        for key, value in wanted.items():
            if key not in RESUMABLE and ran.get(key) != value:
                raise InputError(f"OUTPUT_DIR {cfg.OUTPUT_DIR} holds a run made with {key} {ran.get(key)!r}, this "
                                 f"run's config has {value!r} ({saved}): point OUTPUT_DIR at a new folder, "
                                 f"or remove that run")


def ensure_data(cfg, syn: SyntheticConfig) -> None:
    """Steps 1 and 2: the dataset and its proposals, each made once."""
    root = Path(cfg.DATA.ROOT)
    if not (root / "synthetic_record.json").exists():
        if root.exists() and any(root.iterdir()):
            raise InputError(f"DATA.ROOT {root} is not empty and holds no synthetic dataset "
                             f"(no synthetic_record.json): the pipeline only writes into a folder of its own; "
                             f"point DATA.ROOT at a new or empty folder")
        print(f"[1/6] generating the synthetic dataset in {root}")
        generate(root, syn, overwrite=root.exists())
    else:
        print(f"[1/6] synthetic dataset found in {root}")
    for split, out in (("train", cfg.PROPOSALS.TRAIN_DIR), ("valid", cfg.PROPOSALS.EVAL_DIR)):
        if Path(out).is_dir():
            print(f"[2/6] proposals for {split} found in {out}")
            continue
        print(f"[2/6] writing synthetic proposals for {split} to {out}")
        generate_proposals(root, split, out, seed=cfg.SEED)


def score_table(scores: dict[str, dict]) -> str:
    rows = [[METHODS[m]] + [f"{scores[m]['global'][k]:.3f}" for k in KEYS] for m in METHODS if m in scores]
    return tabulate(rows, headers=["method", *KEYS], tablefmt="github")


def plot_per_video(scores: dict[str, dict], out_png: Path) -> None:
    """Grouped bars of per-video J&F mean for each method."""
    videos = sorted(scores["dmmnet"]["videos"])
    x = np.arange(len(videos))
    width = 0.8 / len(scores)
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(videos) + 2), 4))
    for k, (method, s) in enumerate(scores.items()):
        ax.bar(x + k * width, [s["videos"][v]["JF_mean"] for v in videos], width, label=METHODS[method])
    ax.set_xticks(x + width * (len(scores) - 1) / 2, videos, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("J&F mean")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("synthetic valid: J&F per video")
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s: %(message)s")
    opts = (TINY_OPTS if args.tiny else []) + list(args.opts)
    cfg = load_config(args.config, opts)
    tic = time.perf_counter()
    syn = synthetic_config(args)
    check_same_run(cfg, syn)
    ensure_data(cfg, syn)

    info = init_distributed(cfg.DEVICE)
    out_dir = Path(cfg.OUTPUT_DIR)
    print(f"[3/6] training DMM-Net ({cfg.MODEL.BACKBONE}, {cfg.DATA.INPUT_H} x {cfg.DATA.INPUT_W}) in {out_dir}")
    resume = str(out_dir) if Checkpointer(out_dir).checkpoints() else None
    # a run killed before its first checkpoint left only logs: start it again
    trainer = Trainer(cfg, info, resume=resume, overwrite=resume is None)
    cfg = trainer.cfg
    trainer.train(make_validator(cfg, info.device))
    model = trainer.model.eval()
    train_seconds = time.perf_counter() - tic

    split = cfg.DATA.EVAL_SPLIT
    reader = build_reader(cfg.DATA, split)
    proposal_fn = ProposalSource.for_evaluation(cfg.PROPOSALS)
    results = out_dir / "eval" / split
    print(f"[4/6] segmenting {len(reader.videos)} {split} videos with DMM-Net and the baselines")
    segment_videos(DMMTracker(model), reader, reader.videos, proposal_fn, results / "dmmnet", cfg,
                   device=info.device, batch_videos=cfg.TEST.BATCH_VIDEOS,
                   source=provenance(cfg, checkpoint_producer(trainer.last_checkpoint)), on_mismatch="redo")
    for name in ("copy_first", "iou_hungarian"):
        segment_videos(build_baseline(name), reader, reader.videos, proposal_fn, results / name, cfg, desc=name,
                       source=provenance(cfg, name), on_mismatch="redo")

    print("[5/6] scoring")
    gt_dir = ground_truth_dir(cfg.DATA, split)
    scores = {m: evaluate_folders(gt_dir, results / m) for m in METHODS}
    table = score_table(scores)
    write_json(results / "scores.json", {m: s["global"] for m, s in scores.items()})
    write_text(results / "scores.md", table + "\n")
    save_config(cfg, results / "config.yaml")

    print("[6/6] writing overlays and plots")
    plot_per_video(scores, results / "jf_per_video.png")
    gifs = []
    for video in reader.videos[: args.gifs]:
        frames = reader.info(video).frames
        images = [reader.image(video, f) for f in frames]
        gifs.append(write_overlay_animation(
            images, [gt_dir / video, results / "dmmnet" / video, results / "iou_hungarian" / video],
            frames, results / "overlays" / f"{video}.gif", titles=["ground truth", "DMM-Net", "IoU+Hungarian"]))

    total = time.perf_counter() - tic
    print()
    print(f"Synthetic valid ({len(reader.videos)} videos), measured in this run:")
    print(table)
    print()
    print(f"time: {total / 60:.1f} min in all, {train_seconds / 60:.1f} min up to the end of training")
    print(f"scores:        {results / 'scores.json'}")
    print(f"loss curves:   {out_dir / 'loss_curves.png'}")
    print(f"J&F per video: {results / 'jf_per_video.png'}")
    print(f"overlay GIFs:  {', '.join(str(g) for g in gifs)}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
