"""Build the online-training set from the first-frame annotations of a YouTube-VOS split.

The 2019 recipe (``tools/make_train_online_dataset.py`` there): for every video of the source
split (default ``datasets/youtubeVOS/valid``), ``--frames`` (10) new frames ``00000``, ``00001``,
... are written, frame k a copy of the k-th annotated frame of the video taken in turn (the
frames where objects first appear, in frame order; the 2019 code took them in a set's order).
The 2019 code re-saved each image through PIL (``Image.open(src).save(dst)``: decoded and encoded
again as a JPEG of quality 75, PIL's default), and so does this tool; ``--copy-jpeg`` copies the
source files' bytes instead (no second compression: a departure from 2019). The new meta lists
every object of the video, present in the copies of the frames its source meta lists. Nothing
is augmented here: online training (``src/dmm/config/yaml/online.yaml``) draws every frame of a clip at
random from these and applies the random flip and affine of :mod:`dmm.data.transforms`, the
project's one augmentation. It writes::

    <out>/JPEGImages/<video>/<frame>.jpg
    <out>/Annotations/<video>/<frame>.png      palette PNG, the source's object ids
    <out>/meta.json                           {"videos": {vid: {"objects": {id: {category, frames}}}}}
    <out>/online_record.json                  the source frame of every written frame

The output is built in a temporary folder beside ``--out`` and renamed onto it at the end;
an existing ``--out`` is refused unless ``--overwrite``.

Usage::

    python src/tools/make_train_online_dataset.py \
        [--source datasets/youtubeVOS/valid] [--out datasets/youtubeVOS/train_testdev_ot] \
        [--frames 10] [--copy-jpeg] [--overwrite]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from dmm.cli import command_parser, run
from dmm.data.palette import save_palette_png
from dmm.data.splits import FOLDER_SPLITS
from dmm.data.youtubevos import YouTubeVOS
from dmm.errors import InputError, size_text
from dmm.io import atomic_dir, write_json

class OnlineDatasetError(InputError):
    """A missing or unreadable input, or a refused output; the message names the path."""


def open_reader(source: Path):
    """The data layer's YouTube-VOS reader over the split folder ``source`` (a folder the
    reader knows by name: ``valid``, ``train``, ``train_testdev_ot``)."""

    if not source.is_dir():
        raise OnlineDatasetError(f"{source}: source split folder not found")
    if not (source / "meta.json").is_file():
        raise OnlineDatasetError(f"{source / 'meta.json'}: meta file of the source split not found")
    # The reader knows splits by name: a folder read with its own meta.json.
    split = {"train": "train_all"}.get(source.name, source.name)
    if split not in FOLDER_SPLITS:
        raise OnlineDatasetError(
            f"{source}: the source folder must be one of the dataset's split folders "
            f"({', '.join(sorted(set(FOLDER_SPLITS.values())))}) under the dataset root"
        )
    return YouTubeVOS(str(source.parent), split)


def _read_frame(reader, source: Path, video: str, frame: str) -> tuple[np.ndarray, np.ndarray]:
    """Image and annotation of one annotated frame; errors (``DatasetError`` from the reader,
    ``OnlineDatasetError`` here) name the file."""
    image_file = source / "JPEGImages" / video / f"{frame}.jpg"
    ann_file = source / "Annotations" / video / f"{frame}.png"
    image = reader.image(video, frame)
    annotation = reader.annotation(video, frame)
    if annotation is None:
        raise OnlineDatasetError(
            f"{ann_file}: annotation not found (the meta says objects first appear at "
            f"{video}/{frame})"
        )
    if annotation.shape != image.shape[:2]:
        raise OnlineDatasetError(
            f"{ann_file}: annotation size {size_text(annotation.shape)} differs from the image's "
            f"{size_text(image.shape)} ({image_file})"
        )
    return image, annotation


def write_image(source_file: Path, target: Path, copy: bool) -> None:
    """The online set's image: ``source_file`` encoded again by PIL's JPEG writer with its defaults
    (quality 75), as 2019 saved it, or with ``copy`` its bytes as they are."""
    if copy:
        target.write_bytes(source_file.read_bytes())
        return
    try:
        with Image.open(source_file) as image:
            image.save(target, format="JPEG")
    except OSError as e:
        raise OnlineDatasetError(f"{source_file}: cannot re-save the image as JPEG ({e})") from None


def build_video(reader, source: Path, out: Path, video: str, frames: int,
                copy_jpeg: bool = False) -> tuple[dict, list[dict]]:
    """Write one generated video under ``out``; return its meta entry and its record rows."""
    info = reader.info(video)
    annotated = sorted(info.first_appearances())
    if not annotated:
        raise OnlineDatasetError(f"{source / 'meta.json'}: video {video} has no annotated object")
    image_dir = out / "JPEGImages" / video
    ann_dir = out / "Annotations" / video
    image_dir.mkdir(parents=True)
    ann_dir.mkdir(parents=True)
    listed = {oid: set(obj.frames) for oid, obj in info.objects.items()}
    present: dict[int, list[str]] = {oid: [] for oid in info.objects}
    record: list[dict] = []
    loaded = {f: _read_frame(reader, source, video, f) for f in annotated}
    for k in range(frames):
        src_frame = annotated[k % len(annotated)]
        name = f"{k:05d}"
        write_image(source / "JPEGImages" / video / f"{src_frame}.jpg", image_dir / f"{name}.jpg", copy_jpeg)
        save_palette_png(ann_dir / f"{name}.png", loaded[src_frame][1])
        for oid in info.objects:
            if src_frame in listed[oid] or not listed[oid] and oid in loaded[src_frame][1]:
                present[oid].append(name)
        record.append({"frame": name, "source": src_frame})
    objects = {str(oid): {"category": obj.category, "frames": present[oid]} for oid, obj in info.objects.items()}
    return {"objects": objects}, record


def make_online_dataset(source: str | os.PathLike, out: str | os.PathLike, frames: int = 10,
                        overwrite: bool = False, videos: Sequence[str] | None = None,
                        progress: bool = True, copy_jpeg: bool = False) -> Path:
    """Build the online-training split from ``source`` into ``out``; return ``out``."""
    source, out = Path(source), Path(out)
    if frames < 1:
        raise OnlineDatasetError(f"--frames must be >= 1, got {frames}")
    if out.exists() and not overwrite:
        raise OnlineDatasetError(f"{out}: already exists (pass --overwrite to replace it)")
    if out.resolve() == source.resolve():
        raise OnlineDatasetError(f"{out}: output folder is the source split itself")
    reader = open_reader(source)
    names = list(reader.videos if videos is None else videos)
    unknown = sorted(set(names) - set(reader.videos))
    if unknown:
        raise OnlineDatasetError(f"{source}: videos not in the split: {', '.join(unknown[:10])}")
    with atomic_dir(out, overwrite=overwrite) as tmp:
        meta: dict = {"videos": {}}
        record: dict = {"source": str(source), "frames": frames,
                        "images": "source bytes" if copy_jpeg else "PIL JPEG, quality 75 (2019)", "videos": {}}
        for video in tqdm(names, desc="online set", unit="video", disable=not progress):
            meta["videos"][video], record["videos"][video] = build_video(reader, source, tmp, video, frames,
                                                                         copy_jpeg)
        write_json(tmp / "meta.json", meta)
        write_json(tmp / "online_record.json", record)
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = command_parser("python src/tools/make_train_online_dataset.py", __doc__, summary_only=True)
    p.add_argument("--source", default="datasets/youtubeVOS/valid", help="source split folder")
    p.add_argument("--out", default="datasets/youtubeVOS/train_testdev_ot", help="output split folder")
    p.add_argument("--frames", type=int, default=10, help="frames written per video (2019: 10)")
    p.add_argument("--videos", nargs="*", default=None, metavar="NAME",
                   help="only these videos (default: every video of --source)")
    p.add_argument("--copy-jpeg", action="store_true",
                   help="copy the source JPEGs' bytes (2019 re-saved them through PIL at quality 75)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = make_online_dataset(args.source, args.out, args.frames, args.overwrite, args.videos,
                              copy_jpeg=args.copy_jpeg)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
