"""Run a trained DMM-Net over a split and write result PNGs.

``python -m dmm.test [--config eval] [--checkpoint DIR] [--split SPLIT] [--out DIR] [--max-videos N] [KEY VALUE ...]``

Writes ``<out>/<video>/<frame>.png`` (default ``<OUTPUT_DIR>/eval/<split>/merged``): palette PNGs at
each video's original size with its own object ids, one per frame of JPEGImages. Without
``--config``, the ``config.yaml`` saved beside a checkpoint of this project is used (else the
package config ``eval``). With torchrun, ranks share the videos. A rerun skips finished videos;
results of another checkpoint or config in ``--out`` are refused (``--overwrite`` replaces them):
``<out>.source.json`` records what produced the folder.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .cli import add_overrides, command_parser, run
from .errors import ConfigError


def parse_args(argv=None) -> argparse.Namespace:
    p = command_parser("python -m dmm.test", __doc__)
    p.add_argument("--config", default=None,
                   help="a yaml file or package config name (default: the checkpoint's config.yaml, else eval)")
    p.add_argument("--checkpoint", default=None, help="checkpoint folder or file (default: TEST.CHECKPOINT)")
    p.add_argument("--split", default=None, help="split to segment (default: DATA.EVAL_SPLIT)")
    p.add_argument("--out", default=None, help="result folder (default: <OUTPUT_DIR>/eval/<split>/merged)")
    p.add_argument("--max-videos", type=int, default=0, metavar="N", help="only the first N videos (0: all)")
    p.add_argument("--videos", type=int, default=None, metavar="N", dest="old_videos",
                   help="deprecated spelling of --max-videos (elsewhere --videos names videos)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace results in --out that another checkpoint or config produced")
    add_overrides(p)
    args = p.parse_args(argv)
    if args.old_videos is not None:
        print(f"note: --videos N is deprecated here, use --max-videos {args.old_videos}", file=sys.stderr)
        args.max_videos = args.old_videos
    if args.max_videos < 0:
        raise ConfigError(f"--max-videos {args.max_videos}: a count of videos must be >= 0 (0: all)")
    return args


def default_output(cfg, split: str) -> Path:
    return Path(cfg.TEST.OUTPUT_DIR or Path(cfg.OUTPUT_DIR) / "eval" / split) / "merged"


def main(argv=None) -> int:
    # torch and the engine are imported here, not with the module: the scripts' checks read the
    # options through parse_args without paying for them.
    from .data import build_reader
    from .engine.build import inference_config, inference_model
    from .engine.distributed import barrier, cleanup, init_distributed
    from .engine.results import checkpoint_producer, provenance, segment_videos
    from .engine.proposal_source import ProposalSource
    from .engine.tracker import DMMTracker

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = inference_config(args.config, None, args.opts).TEST.CHECKPOINT
    if not checkpoint:
        raise ConfigError("no checkpoint: pass --checkpoint DIR or set TEST.CHECKPOINT")
    cfg = inference_config(args.config, checkpoint, args.opts)
    split = args.split or cfg.DATA.EVAL_SPLIT
    out = Path(args.out) if args.out else default_output(cfg, split)
    info = init_distributed(cfg.DEVICE)
    try:
        model = inference_model(cfg, checkpoint, info.device)
        reader = build_reader(cfg.DATA, split)
        videos = reader.videos[: args.max_videos] if args.max_videos else reader.videos
        mine = videos[info.rank :: info.world_size]
        source = provenance(cfg, checkpoint_producer(checkpoint))
        segment_videos(DMMTracker(model), reader, mine, ProposalSource.for_evaluation(cfg.PROPOSALS), out, cfg,
                       device=info.device, batch_videos=cfg.TEST.BATCH_VIDEOS, show_progress=info.is_main,
                       source=source if info.is_main else None, on_mismatch="redo" if args.overwrite else "refuse")
        barrier(info)
        if info.is_main:
            print(f"results: {out}")
        return 0
    finally:
        cleanup(info)


if __name__ == "__main__":
    sys.exit(run(main))
