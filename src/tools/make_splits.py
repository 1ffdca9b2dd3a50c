"""Write the trainval-protocol split files of YouTube-VOS 2018 and their frame indices.

From ``<root>/train/meta.json``: sort the video ids; the first 3000 are train3k, the next 200
val200 (the "trainval" split), the remaining 271 test271. Writes into ``--split-dir``
(DATA.SPLIT_DIR)::

    train3k_meta.json  val200_meta.json  test271_meta.json     (same schema as meta.json)
    <stem>_vidfid2index.json   {video: {frame: index}} for each --index-splits split

Usage: python src/tools/make_splits.py --root datasets/youtubeVOS [--split-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dmm.data import DatasetError, YouTubeVOS, frame_index
from dmm.data.splits import SPLIT_META_STEMS, split_video_ids
from dmm.io import write_json

REAL_COUNTS = {"train3k": 3000, "val200": 200, "test271": 271}


def index_file_name(split: str) -> str:
    """``<stem>_vidfid2index.json`` (stem: train3k / val200 / test271, else the split name)."""
    return f"{SPLIT_META_STEMS.get(split, split)}_vidfid2index.json"


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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("datasets/youtubeVOS"),
                        help="YouTube-VOS 2018 root holding train/meta.json")
    parser.add_argument("--split-dir", type=Path, default=Path("data/splits/youtubevos"),
                        help="output folder (DATA.SPLIT_DIR)")
    parser.add_argument("--counts", type=int, nargs=2, default=(3000, 200),
                        metavar=("TRAIN", "VAL"), help="videos in train3k and val200")
    parser.add_argument("--index-splits", nargs="*", default=["train", "trainval", "test271"],
                        help="splits to write a vidfid2index for (any split name)")
    args = parser.parse_args(argv)
    try:
        sizes = make_splits(args.root, args.split_dir, tuple(args.counts), tuple(args.index_splits))
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {sizes} to {args.split_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
