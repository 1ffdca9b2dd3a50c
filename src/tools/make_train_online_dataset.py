"""Build the online-training set from the first-frame annotations of a YouTube-VOS split.

For every video of the source split (default ``datasets/youtubeVOS/valid``) this takes each
annotated frame (the frames where objects first appear; several objects may appear at
different frames) and writes a new split folder (default
``datasets/youtubeVOS/train_testdev_ot``) in YouTube-VOS train layout::

    <out>/JPEGImages/<video>/<frame>.jpg
    <out>/Annotations/<video>/<frame>.png      palette PNG, the source's object ids
    <out>/meta.json                           {"videos": {vid: {"objects": {id: {category, frames}}}}}
    <out>/online_record.json                  source frame and transform of every written frame

A generated video holds, for each annotated source frame in order, the original followed by
``--copies`` augmented copies (a random affine: rotation, translation, scale, shear, and a
random horizontal flip, applied alike to the image and its annotation), named ``00000``,
``00001``, ... so that they sort. The clip sampler of online training, which draws random
frames of a video, then sees varied views of the same objects.

The output is built in a temporary folder beside ``--out`` and renamed onto it at the end;
an existing ``--out`` is refused unless ``--overwrite``. The result depends only on
``--seed`` and the source (each video draws from its own generator).

Usage::

    python src/tools/make_train_online_dataset.py \
        [--source datasets/youtubeVOS/valid] [--out datasets/youtubeVOS/train_testdev_ot] \
        [--copies 20] [--seed 0] [--overwrite]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from dmm.data.errors import DatasetError
from dmm.data.palette import save_palette_png
from dmm.data.splits import FOLDER_SPLITS
from dmm.data.youtubevos import YouTubeVOS
from dmm.io import write_json

JPEG_QUALITY = 95


class OnlineDatasetError(RuntimeError):
    """A missing or unreadable input, or a refused output; the message names the path."""


@dataclass(frozen=True)
class AugmentParams:
    """Ranges of the random affine: rotation in degrees (+-), translation as a fraction of the
    frame size (+-), shear in radians (+-), zoom drawn uniformly from ``scale``, and the
    probability of a horizontal flip."""

    rotation: float = 10.0
    translate: float = 0.1
    shear: float = 0.1
    scale: tuple[float, float] = (0.7, 1.4)
    flip_prob: float = 0.5


@dataclass(frozen=True)
class Transform:
    """One drawn augmentation (the identity for the original frame)."""

    rotation: float = 0.0
    tx: float = 0.0
    ty: float = 0.0
    shear: float = 0.0
    scale: float = 1.0
    flip: bool = False


def draw_transform(rng: np.random.Generator, params: AugmentParams) -> Transform:
    """Draw one transform from ``params`` with ``rng``."""
    return Transform(
        rotation=float(rng.uniform(-params.rotation, params.rotation)),
        tx=float(rng.uniform(-params.translate, params.translate)),
        ty=float(rng.uniform(-params.translate, params.translate)),
        shear=float(rng.uniform(-params.shear, params.shear)),
        scale=float(rng.uniform(params.scale[0], params.scale[1])),
        flip=bool(rng.random() < params.flip_prob),
    )


def affine_matrix(t: Transform, size: tuple[int, int]) -> np.ndarray:
    """The 2x3 matrix mapping source pixels to output pixels for a frame of ``size = (h, w)``.

    Flip, then scale, shear and rotate about the frame centre, then translate.
    """
    h, w = size
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    to_origin = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], dtype=np.float64)
    flip = np.diag([-1.0 if t.flip else 1.0, 1.0, 1.0])
    scale = np.diag([t.scale, t.scale, 1.0])
    shear = np.array([[1, math.tan(t.shear), 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    a = math.radians(t.rotation)
    rotate = np.array(
        [[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]], dtype=np.float64
    )
    back = np.array([[1, 0, cx + t.tx * w], [0, 1, cy + t.ty * h], [0, 0, 1]], dtype=np.float64)
    return (back @ rotate @ shear @ scale @ flip @ to_origin)[:2]


def apply_transform(
    image: np.ndarray, annotation: np.ndarray, t: Transform
) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``image (h, w, 3)`` bilinearly and ``annotation (h, w)`` with nearest neighbour,
    alike; uncovered pixels become black / background."""
    h, w = annotation.shape
    m = affine_matrix(t, (h, w))
    warped_image = cv2.warpAffine(
        image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    warped_ann = cv2.warpAffine(
        annotation, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    return warped_image, warped_ann


def video_rng(seed: int, video: str) -> np.random.Generator:
    """A generator for one video, independent of which other videos the split holds."""
    return np.random.default_rng([seed, zlib.crc32(video.encode("utf-8"))])


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
    try:
        return YouTubeVOS(str(source.parent), split)
    except Exception as e:
        raise OnlineDatasetError(f"{source}: cannot open the split ({e})") from e


def _read_frame(reader, source: Path, video: str, frame: str) -> tuple[np.ndarray, np.ndarray]:
    """Image and annotation of one annotated frame; errors name the file."""
    image_file = source / "JPEGImages" / video / f"{frame}.jpg"
    ann_file = source / "Annotations" / video / f"{frame}.png"
    try:
        image = reader.image(video, frame)
    except DatasetError as e:  # its message names the file
        raise OnlineDatasetError(str(e)) from e
    except Exception as e:
        raise OnlineDatasetError(f"{image_file}: cannot read image ({e})") from e
    try:
        annotation = reader.annotation(video, frame)
    except DatasetError as e:
        raise OnlineDatasetError(str(e)) from e
    except Exception as e:
        raise OnlineDatasetError(f"{ann_file}: cannot read annotation ({e})") from e
    if annotation is None:
        raise OnlineDatasetError(
            f"{ann_file}: annotation not found (the meta says objects first appear at "
            f"{video}/{frame})"
        )
    if annotation.shape != image.shape[:2]:
        raise OnlineDatasetError(
            f"{ann_file}: annotation size {annotation.shape} differs from the image's "
            f"{image.shape[:2]} ({image_file})"
        )
    return image, annotation


def build_video(
    reader, source: Path, out: Path, video: str, copies: int, params: AugmentParams, seed: int
) -> tuple[dict, list[dict]]:
    """Write one generated video under ``out``; return its meta entry and its record rows."""
    try:
        info = reader.info(video)
    except DatasetError as e:
        raise OnlineDatasetError(str(e)) from e
    annotated = sorted(info.first_appearances())
    if not annotated:
        raise OnlineDatasetError(f"{source / 'meta.json'}: video {video} has no annotated object")
    rng = video_rng(seed, video)
    image_dir = out / "JPEGImages" / video
    ann_dir = out / "Annotations" / video
    image_dir.mkdir(parents=True)
    ann_dir.mkdir(parents=True)
    present: dict[int, list[str]] = {oid: [] for oid in info.objects}
    record: list[dict] = []
    index = 0
    for src_frame in annotated:
        image, annotation = _read_frame(reader, source, video, src_frame)
        transforms = [Transform()] + [draw_transform(rng, params) for _ in range(copies)]
        for k, t in enumerate(transforms):
            if k == 0:
                img, ann = image, annotation
            else:
                img, ann = apply_transform(image, annotation, t)
            name = f"{index:05d}"
            Image.fromarray(img).save(image_dir / f"{name}.jpg", quality=JPEG_QUALITY)
            save_palette_png(ann_dir / f"{name}.png", ann)
            for oid in np.unique(ann).tolist():
                if oid in present:
                    present[oid].append(name)
            record.append({"frame": name, "source": src_frame, "transform": asdict(t)})
            index += 1
    objects = {
        str(oid): {"category": obj.category, "frames": present[oid]}
        for oid, obj in info.objects.items()
    }
    return {"objects": objects}, record


def _replace_dir(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move the finished ``tmp`` onto ``out`` (swapping out an old ``out`` when allowed)."""
    if not out.exists():
        os.replace(tmp, out)
        return
    if not overwrite:
        raise OnlineDatasetError(f"{out}: already exists (pass --overwrite to replace it)")
    old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old."))
    old.rmdir()
    os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def make_online_dataset(
    source: str | os.PathLike,
    out: str | os.PathLike,
    copies: int = 20,
    seed: int = 0,
    params: AugmentParams = AugmentParams(),
    overwrite: bool = False,
    videos: Sequence[str] | None = None,
    progress: bool = True,
) -> Path:
    """Build the online-training split from ``source`` into ``out``; return ``out``."""
    source, out = Path(source), Path(out)
    if copies < 0:
        raise ValueError(f"copies must be >= 0, got {copies}")
    if out.exists() and not overwrite:
        raise OnlineDatasetError(f"{out}: already exists (pass --overwrite to replace it)")
    if out.resolve() == source.resolve():
        raise OnlineDatasetError(f"{out}: output folder is the source split itself")
    reader = open_reader(source)
    names = list(reader.videos if videos is None else videos)
    unknown = sorted(set(names) - set(reader.videos))
    if unknown:
        raise OnlineDatasetError(f"{source}: videos not in the split: {', '.join(unknown[:10])}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        meta: dict = {"videos": {}}
        record: dict = {
            "source": str(source),
            "copies": copies,
            "seed": seed,
            "augment": asdict(params),
            "videos": {},
        }
        for video in tqdm(names, desc="online set", unit="video", disable=not progress):
            meta["videos"][video], record["videos"][video] = build_video(
                reader, source, tmp, video, copies, params, seed
            )
        write_json(tmp / "meta.json", meta)
        write_json(tmp / "online_record.json", record)
        _replace_dir(tmp, out, overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default="datasets/youtubeVOS/valid", help="source split folder")
    p.add_argument("--out", default="datasets/youtubeVOS/train_testdev_ot", help="output split folder")
    p.add_argument("--copies", type=int, default=20, help="augmented copies per annotated frame")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rotation", type=float, default=10.0, help="max rotation, degrees")
    p.add_argument("--translate", type=float, default=0.1, help="max shift, fraction of size")
    p.add_argument("--shear", type=float, default=0.1, help="max shear, radians")
    p.add_argument("--scale", type=float, nargs=2, default=(0.7, 1.4), metavar=("MIN", "MAX"))
    p.add_argument("--flip-prob", type=float, default=0.5)
    p.add_argument("--videos", nargs="*", default=None, help="only these videos")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    params = AugmentParams(args.rotation, args.translate, args.shear, tuple(args.scale), args.flip_prob)
    try:
        out = make_online_dataset(
            args.source, args.out, args.copies, args.seed, params, args.overwrite, args.videos
        )
    except OnlineDatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
