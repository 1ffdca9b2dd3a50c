"""Split a split-wide proposals file into per-video files, keeping the TOPK best per frame.

Usage (the original README's command)::

    python src/tools/reduce_pth_size_by_videos.py PREDICTIONS.pth SPLIT TOPK

TOPK is a number (the TOPK best-scored proposals of each frame, by decreasing score: the 2019
tool, for training files) or ``all`` (every proposal in the file's order, written to
``videos_all``: what the 2019 evaluator read from the raw file; MODEL_ZOO.md).

PREDICTIONS.pth is maskrcnn-benchmark's ``predictions.pth`` (a pickled list of BoxList, read
without maskrcnn-benchmark by a restricted unpickler) or this project's split-wide file. SPLIT
(train, trainval, test271, valid, train_testdev_ot, train_all) is resolved with ``dmm.data``
under ``--root`` to get the frame index (videos sorted, frames sorted) that maps list positions
to (video, frame). Writes ``<folder of PREDICTIONS.pth>/videos_top<TOPK>/<video>.pth`` and
``vidfid2index.json`` there. A small or custom dataset (not the 3471 videos of YouTube-VOS
2018 train) has no train3k / val200 / test271 files: use SPLIT train_all, which reads
``<root>/train/meta.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from dmm.cli import command_parser, run
from dmm.config import get_cfg_defaults
from dmm.data import YouTubeVOS, frame_index
from dmm.errors import MissingInputError
from dmm.proposals.reduce import load_split_predictions, output_dir, parse_topk, reduce_by_videos


def main(argv: list[str] | None = None) -> int:
    cfg = get_cfg_defaults()
    parser = command_parser("python src/tools/reduce_pth_size_by_videos.py", __doc__, summary_only=True)
    parser.add_argument("predictions", help="split-wide predictions file")
    parser.add_argument("split", help="split name of the predictions")
    parser.add_argument("topk", help="proposals kept per frame: a number (the best-scored) or 'all' (as stored)")
    parser.add_argument("--root", default=cfg.DATA.ROOT, help="YouTube-VOS root")
    parser.add_argument("--split-dir", default=cfg.DATA.SPLIT_DIR, help="split meta folder")
    parser.add_argument("--out", default=None,
                        help="output folder (default: <dir of predictions>/videos_top<topk>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--half", action="store_true", help="store masks as float16")
    args = parser.parse_args(argv)

    topk = parse_topk(args.topk)
    if not Path(args.predictions).is_file():
        raise MissingInputError(f"predictions file {args.predictions} does not exist")
    out = args.out or output_dir(args.predictions, topk)
    index = frame_index(YouTubeVOS(args.root, args.split, split_dir=args.split_dir))
    frames = load_split_predictions(args.predictions)
    written = reduce_by_videos(frames, index, out, topk, overwrite=args.overwrite,
                               mask_dtype=torch.float16 if args.half else None,
                               source=str(args.predictions))
    kept = "all proposals" if topk is None else f"top {topk}"
    print(f"wrote {len(index)} videos ({len(frames)} frames, {kept}) to {written}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
