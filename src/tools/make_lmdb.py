"""Pack a split's JPEGImages and Annotations into an LMDB frame cache.

Values are the files' raw bytes, keyed by their path relative to the split folder
(``JPEGImages/<video>/<frame>.jpg``); the key ``__index__`` lists every key. Point
``DATA.LMDB`` (or a reader's ``lmdb_path``) at the result. The LMDB is built in a temporary
folder and renamed into place, so a failed run leaves nothing.

Usage: python src/tools/make_lmdb.py --root datasets/youtubeVOS --split train_all --out X.lmdb
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lmdb
from tqdm import tqdm

from dmm.cli import command_parser, run
from dmm.data import DAVIS, YouTubeVOS
from dmm.data.storage import LMDB_INDEX_KEY
from dmm.errors import OutputExistsError
from dmm.io import atomic_dir


def make_lmdb(reader, out: Path, map_size: int = 1 << 40, progress: bool = True) -> int:
    """Write every frame and annotation file of ``reader``'s videos into an LMDB at ``out``.

    ``out`` must not exist. Returns the number of files packed.
    """
    keys: list[str] = []
    with atomic_dir(out) as tmp:
        env = lmdb.open(str(tmp), map_size=map_size, subdir=True)
        try:
            txn = env.begin(write=True)
            for video in tqdm(reader.videos, desc=f"packing {out.name}", disable=not progress):
                for folder in (reader.image_dir, reader.annotation_dir):
                    for name in reader.source.listdir(f"{folder}/{video}"):
                        rel = f"{folder}/{video}/{name}"
                        txn.put(rel.encode(), reader.source.read(rel))
                        keys.append(rel)
                if len(keys) > 5000:
                    txn.commit()
                    txn = env.begin(write=True)
            txn.put(LMDB_INDEX_KEY, json.dumps(keys).encode())
            txn.commit()
        finally:
            env.close()
    return len(keys)


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("python src/tools/make_lmdb.py", __doc__, summary_only=True)
    parser.add_argument("--dataset", choices=["youtubevos", "davis"], default="youtubevos", help="layout of --root")
    parser.add_argument("--root", type=Path, default=Path("datasets/youtubeVOS"), help="dataset root")
    parser.add_argument("--split", default="train_all", help="split to pack")
    parser.add_argument("--split-dir", type=Path, default=Path("data/splits/youtubevos"),
                        help="folder of the split files (DATA.SPLIT_DIR)")
    parser.add_argument("--out", type=Path, required=True, help="LMDB folder to create")
    parser.add_argument("--map-size-gb", type=float, default=1024,
                        help="LMDB map size in GiB (an upper bound; the file grows as needed)")
    args = parser.parse_args(argv)
    if args.out.exists():
        raise OutputExistsError(f"{args.out} already exists")
    if args.dataset == "youtubevos":
        reader = YouTubeVOS(args.root, args.split, split_dir=args.split_dir)
    else:
        reader = DAVIS(args.root, args.split)
    n = make_lmdb(reader, args.out, int(args.map_size_gb * (1 << 30)))
    print(f"packed {n} files into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
