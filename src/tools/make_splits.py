"""Write the trainval-protocol split files of YouTube-VOS 2018 and their frame indices.

From ``<root>/train/meta.json``: sort the video ids; the first 3000 are train3k, the next 200
val200 (the "trainval" split), the remaining 271 test271. Writes into ``--split-dir``
(DATA.SPLIT_DIR)::

    train3k_meta.json  val200_meta.json  test271_meta.json     (same schema as meta.json)
    <stem>_vidfid2index.json   {video: {frame: index}} for each --index-splits split

Usage: python src/tools/make_splits.py --root datasets/youtubeVOS [--split-dir DIR]

A small or custom dataset needs ``--counts TRAIN VAL`` (the rest is the held-out split), or no
split files at all: the split ``train_all`` reads every video of ``<root>/train/meta.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dmm.cli import command_parser, run
from dmm.data import DatasetError, YouTubeVOS, frame_index
from dmm.data.splits import SPLIT_META_STEMS, split_video_ids
from dmm.io import write_json

REAL_COUNTS = {"train3k": 3000, "val200": 200, "test271": 271}


def index_file_name(split: str) -> str:
    """``<stem>_vidfid2index.json`` (stem: train3k / val200 / test271, else the split name)."""
    return f"{SPLIT_META_STEMS.get(split, split)}_vidfid2index.json"


def small_counts(n_videos: int) -> tuple[int, int]:
    """``(train, val)`` counts that leave each of the three splits at least one of ``n_videos`` >= 3
    videos: a tenth (at least one) each for val and held-out, the rest for training."""
    tenth = max(1, n_videos // 10)
    return n_videos - 2 * tenth, tenth


def check_counts(n_videos: int, counts: tuple[int, int], meta_path: Path) -> None:
    """Raise a DatasetError that says what to do when ``counts`` leave a split empty."""
    train = min(max(counts[0], 0), n_videos)
    val = min(max(counts[1], 0), n_videos - train)
    sizes = {"train3k": train, "val200": val, "test271": n_videos - train - val}
    empty = [stem for stem, size in sizes.items() if size == 0]
    if not empty:
        return
    advice = "use split train_all for training and valid for evaluation"
    if n_videos >= 3:
        train, val = small_counts(n_videos)
        advice = f"pass --counts TRAIN VAL for a small dataset (e.g. --counts {train} {val}), or {advice}"
    raise DatasetError(
        f"{meta_path} has {n_videos} videos (YouTube-VOS 2018 train has 3471): the split rule with "
        f"--counts {counts[0]} {counts[1]} leaves {', '.join(empty)} empty; {advice} (no split files "
        f"needed: train_all reads {meta_path})")


def make_splits(root: Path, split_dir: Path, counts: tuple[int, int] = (3000, 200),
                index_splits: tuple[str, ...] = ("train", "trainval", "test271")) -> dict[str, int]:
    """Write the split meta files and frame indices; return ``{stem: number of videos}``.

    Everything is computed before anything is written, and each file is written atomically.
    """
    meta_path = root / "train" / "meta.json"
    if not meta_path.is_file():
        raise DatasetError(f"{meta_path}: YouTube-VOS 2018 train meta.json not found; put the "
                           f"dataset under {root}")
    try:
        videos = json.loads(meta_path.read_text())["videos"]
    except (ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"{meta_path}: not a YouTube-VOS meta.json ({e!r})") from None
    check_counts(len(videos), counts, meta_path)
    splits = split_video_ids(list(videos), counts)
    sizes = {stem: len(ids) for stem, ids in splits.items()}
    if sizes != REAL_COUNTS:
        print(f"note: {len(videos)} videos in {meta_path} (YouTube-VOS 2018 has 3471); the rule "
              f"gives {sizes}", file=sys.stderr)
    metas = {stem: {"videos": {v: videos[v] for v in ids}} for stem, ids in splits.items()}
    for stem, meta in metas.items():
        write_json(split_dir / f"{stem}_meta.json", meta)
    indices = {split: frame_index(YouTubeVOS(root, split, split_dir=split_dir))
               for split in index_splits}
    for split, index in indices.items():
        write_json(split_dir / index_file_name(split), index, indent=None)
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("python src/tools/make_splits.py", __doc__, summary_only=True)
    parser.add_argument("--root", type=Path, default=Path("datasets/youtubeVOS"),
                        help="YouTube-VOS 2018 root holding train/meta.json")
    parser.add_argument("--split-dir", type=Path, default=Path("data/splits/youtubevos"),
                        help="output folder (DATA.SPLIT_DIR)")
    parser.add_argument("--counts", type=int, nargs=2, default=(3000, 200),
                        metavar=("TRAIN", "VAL"), help="videos in train3k and val200")
    parser.add_argument("--index-splits", nargs="*", default=["train", "trainval", "test271"],
                        help="splits to write a vidfid2index for (any split name)")
    args = parser.parse_args(argv)
    sizes = make_splits(args.root, args.split_dir, tuple(args.counts), tuple(args.index_splits))
    print(f"wrote {sizes} to {args.split_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
