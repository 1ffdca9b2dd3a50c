"""``python -m dmm.metrics``: score predicted masks against ground truth (DAVIS J and F).

Prints the README's table (with J&F; its ``Method`` is what produced the results: the
checkpoint or baseline their record ``<results>.source.json`` names, else the folder's name, or
``--name``), and optionally writes a JSON summary, per-video and per-object CSV files and a bar
chart of J&F per video. With ``--split-meta`` only the videos of that meta.json are scored; with
``--seen-categories`` as well, the YouTube-VOS seen/unseen summary (J, F per group and G) is
printed and added to the JSON under "youtubevos".

``--protocol`` picks which objects are scored on which frames. The default, auto, takes the
DAVIS rule for a DAVIS layout (``.../Annotations/480p``) and the YouTube-VOS rule otherwise
(``dmm.metrics.evaluate``); ``--protocol dmm2019`` scores as the 2019 code did for the paper's
table (``dmm.metrics.dmm2019``; it needs ``--split-meta``, and for this project's frame-size
maps the input size, from the results' record or ``--input-size``); its JSON holds every pair's
J and F.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from dmm.cli import command_parser, run
from dmm.io import write_json
from dmm.metrics import dmm2019
from dmm.metrics.evaluate import EXTRA_ID_MODES
from dmm.metrics.inputs import PROTOCOL_DESCRIPTIONS, PROTOCOLS, MetricsInputError, resolve_protocol
from dmm.metrics.report import (
    format_table,
    format_table_2019,
    format_youtube_table,
    load_seen_categories,
    load_split_meta,
    method_name,
    plot_video_scores,
    write_csvs,
)
from dmm.metrics.results import summarize, unscored_objects, youtube_summary
from dmm.metrics.scoring import score_folders


def build_parser():
    parser = command_parser("python -m dmm.metrics", __doc__)
    parser.add_argument("--gt-dir", required=True, type=Path, help="ground truth: <video>/<frame>.png")
    parser.add_argument("--results-dir", required=True, type=Path, help="predictions: <video>/<frame>.png")
    parser.add_argument("--name", default=None,
                        help="the table's Method (default: the checkpoint or baseline named by "
                             "<results>.source.json, else the results folder's name)")
    parser.add_argument("--split-meta", type=Path,
                        help="meta.json: score only its videos; gives categories (and, for dmm2019, the video "
                             "order and start frames) (default: every video of --gt-dir)")
    parser.add_argument("--seen-categories", type=Path,
                        help="categories seen in training: a train meta.json, a JSON list or a text file "
                             "(default: no seen/unseen summary)")
    parser.add_argument("--json", type=Path, help="write the JSON summary here (default: not written)")
    parser.add_argument("--csv-dir", type=Path, help="write per_video.csv and per_object.csv here (default: not written)")
    parser.add_argument("--plot", type=Path, help="write a PNG bar chart of J&F per video here (default: not written)")
    parser.add_argument("--processes", type=int, default=None,
                        help="processes that score videos, this one included (default: all CPUs)")
    parser.add_argument("--allow-missing", action="store_true", help="score only the videos present in results")
    parser.add_argument("--extra-ids", choices=EXTRA_ID_MODES, default="error",
                        help="predicted ids absent from the ground truth: stop (error) or score as false objects")
    parser.add_argument("--protocol", choices=("auto", *PROTOCOLS), default="auto",
                        help="which objects are scored on which frames: davis (ids 1..max of the first "
                             "frame, every frame), youtubevos (each object from its first appearance) or "
                             "dmm2019 (the 2019 code's scoring, as in the paper's table; needs --split-meta); "
                             "auto: davis for a DAVIS layout (.../Annotations/480p), else youtubevos")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"),
                        help="dmm2019: the network input size the maps were made at (default: from the "
                             "results' record <results>.source.json)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[dmm.metrics] %(message)s")
    categories = load_split_meta(args.split_meta) if args.split_meta else None
    seen = load_seen_categories(args.seen_categories) if args.seen_categories else None
    protocol = resolve_protocol(args.gt_dir, args.protocol)
    if protocol == "dmm2019" and args.split_meta is None:
        raise MetricsInputError("--protocol dmm2019 needs --split-meta (the split's meta.json: its video order "
                                "and each video's start frame define the files the 2019 code paired)")
    if protocol != "dmm2019" and args.input_size is not None:
        raise MetricsInputError(f"--input-size is for --protocol dmm2019 only (protocol here: {protocol})")
    videos = score_folders(
        args.gt_dir,
        args.results_dir,
        videos=sorted(categories) if categories is not None and protocol != "dmm2019" else None,
        processes=args.processes,
        allow_missing=args.allow_missing,
        extra_ids=args.extra_ids,
        protocol=protocol,
        split_meta=args.split_meta if protocol == "dmm2019" else None,
        input_size=args.input_size,
    )
    method = method_name(args.results_dir, args.name)
    if protocol == "dmm2019":
        summary = dmm2019.summarize_2019(videos)
        empty = dmm2019.unscored_videos(videos)
        if empty:
            print(f"note: {len(empty)} videos score no object (their first ground-truth frame holds none; "
                  f"the 2019 code counts the objects there): {', '.join(empty)}")
        table = format_table_2019(summary, method)
    else:
        summary = summarize(videos)
        table = format_table(summary["global"], method)
    unscored = unscored_objects(videos)
    if unscored:
        names = ", ".join(f"{o.video}#{o.object_id}" for o in unscored)
        print(f"note: {len(unscored)} objects first appear too late to be scored: {names}")
    n_objects = sum(len(v.objects) for v in videos) - len(unscored)
    print(f"{len(summary['videos'])} videos, {n_objects} objects scored "
          f"(protocol {protocol}: {PROTOCOL_DESCRIPTIONS[protocol]})")
    print(table)
    if categories is not None and seen is None:
        print("G: - (no seen/unseen summary: pass --seen-categories, e.g. the training split's meta.json)")
    if categories is not None and seen is not None:
        youtube = youtube_summary(videos, categories, seen)
        if youtube is None:
            print(f"G: - ({args.split_meta} lacks categories for some objects; no seen/unseen summary)")
        else:
            summary["youtubevos"] = youtube
            print(format_youtube_table(youtube))
    if args.json:
        write_json(args.json, summary)
    if args.csv_dir:
        write_csvs(args.csv_dir, videos, summary)
    if args.plot:
        plot_video_scores(args.plot, summary)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
