"""Run a trained DMM-Net over a split and write result PNGs.

``python -m dmm.test --config eval [--checkpoint DIR] [--split SPLIT] [--out DIR] [KEY VALUE ...]``

Writes ``<out>/<video>/<frame>.png`` (default ``<OUTPUT_DIR>/eval/<split>/merged``): palette PNGs at
each video's original size with its own object ids, one per frame of JPEGImages. With torchrun,
ranks share the videos. A rerun skips finished videos.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .config import load_config
from .data import build_reader
from .engine.distributed import barrier, cleanup, init_distributed
from .engine.inference import Segmenter, segment_videos
from .engine.proposal_source import ProposalSource
from .model.checkpoint import load_weights
from .model.dmmnet import DMMNet


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m dmm.test", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="eval", help="a yaml file, or a package config name (eval, eval_testdev)")
    p.add_argument("--checkpoint", default=None, help="checkpoint folder or file (default TEST.CHECKPOINT)")
    p.add_argument("--split", default=None, help="split to segment (default DATA.EVAL_SPLIT)")
    p.add_argument("--out", default=None, help="result folder (default <OUTPUT_DIR>/eval/<split>/merged)")
    p.add_argument("--videos", type=int, default=0, help="only the first N videos (0: all)")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return p.parse_args(argv)


def default_output(cfg, split: str) -> Path:
    return Path(cfg.TEST.OUTPUT_DIR or Path(cfg.OUTPUT_DIR) / "eval" / split) / "merged"


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    cfg = load_config(args.config, args.opts)
    split = args.split or cfg.DATA.EVAL_SPLIT
    checkpoint = args.checkpoint or cfg.TEST.CHECKPOINT
    if not checkpoint:
        print("error: no checkpoint: pass --checkpoint DIR or set TEST.CHECKPOINT", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else default_output(cfg, split)
    info = init_distributed(cfg.DEVICE)
    try:
        model = DMMNet.from_config(cfg)
        load_weights(model, checkpoint)
        model.to(info.device).eval()
        reader = build_reader(cfg.DATA, split)
        videos = reader.videos[: args.videos] if args.videos else reader.videos
        mine = videos[info.rank :: info.world_size]
        segment_videos(Segmenter(model, cfg, info.device), reader, mine, ProposalSource(cfg.PROPOSALS.EVAL_DIR),
                       out, batch_videos=cfg.TEST.BATCH_VIDEOS, show_progress=info.is_main)
        barrier(info)
        if info.is_main:
            print(f"results: {out}")
        return 0
    finally:
        cleanup(info)


if __name__ == "__main__":
    sys.exit(main())
