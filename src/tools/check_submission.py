"""Check a YouTube-VOS results folder against its split and zip it for CodaLab.

Every video of the split's meta.json and every frame of ``IMAGES_DIR/<video>/`` (the split's
JPEGImages) needs a prediction ``RESULTS_DIR/<video>/<frame>.png``: a single-channel uint8
(palette "P" or grayscale "L") PNG of the frame's size. Missing videos, missing frames (per
video, truncated) and bad PNGs are reported and the exit status is 1. When everything is in
place and ``--zip`` is given, the zip is written atomically with the entries
``Annotations/<video>/<frame>.png`` and nothing else. Problems exit with status 2 and one
``error:`` line (followed by the list of what is missing or malformed).

Usage::

    python src/tools/check_submission.py RESULTS_DIR --meta META.json --images IMAGES_DIR \
        [--zip OUT.zip]
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from PIL import Image
from tqdm import tqdm

from dmm.cli import command_parser, run
from dmm.errors import InputError, size_text
from dmm.io import atomic_path

#: How many names a report lists before "... and N more".
MAX_LISTED = 10


class SubmissionError(InputError):
    """The results are incomplete or malformed; the message says what and where."""


@dataclass
class Report:
    """What a check found."""

    videos: int = 0
    frames: int = 0
    missing_videos: list[str] = field(default_factory=list)
    missing_frames: dict[str, list[str]] = field(default_factory=dict)
    bad_files: list[str] = field(default_factory=list)
    extra_videos: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing_videos or self.missing_frames or self.bad_files)


def _listing(names: Sequence[str], limit: int = MAX_LISTED) -> str:
    """``a, b, c ... and N more``."""
    shown = ", ".join(names[:limit])
    return shown + (f" ... and {len(names) - limit} more" if len(names) > limit else "")


def read_meta_videos(meta: Path) -> list[str]:
    """The sorted video ids of a YouTube-VOS meta.json."""
    try:
        data = json.loads(meta.read_text())
    except FileNotFoundError:
        raise SubmissionError(f"{meta}: meta file not found") from None
    except (OSError, ValueError) as e:
        raise SubmissionError(f"{meta}: cannot read meta file ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("videos"), dict):
        raise SubmissionError(f'{meta}: not a YouTube-VOS meta file (no "videos" mapping)')
    return sorted(data["videos"])


def required_frames(images: Path, video: str) -> list[str]:
    """Frame names (without extension) of ``images/<video>/*.jpg``, sorted."""
    folder = images / video
    if not folder.is_dir():
        raise SubmissionError(f"{folder}: image folder of video {video} not found")
    frames = sorted(p.stem for p in folder.glob("*.jpg"))
    if not frames:
        raise SubmissionError(f"{folder}: no .jpg frames for video {video}")
    return frames


def check_png(png: Path, jpg: Path) -> str | None:
    """None when ``png`` is a single-channel uint8 PNG of ``jpg``'s size, else the problem."""
    try:
        with Image.open(png) as im:
            fmt, mode, size = im.format, im.mode, im.size
            im.load()
    except Exception as e:  # PIL raises several types for bad files
        return f"{png}: unreadable ({e})"
    if fmt != "PNG":
        return f"{png}: not a PNG (format {fmt})"
    if mode not in ("P", "L"):
        return f"{png}: mode {mode!r}, expected a palette ('P') or uint8 grayscale ('L') PNG"
    try:
        with Image.open(jpg) as im:
            expected = im.size
    except Exception as e:
        return f"{jpg}: unreadable frame ({e})"
    if size != expected:
        return f"{png}: size {size_text(size[::-1])}, the frame {jpg} is {size_text(expected[::-1])}"
    return None


def check_results(
    results: str | Path, meta: str | Path, images: str | Path, progress: bool = True
) -> Report:
    """Compare ``results`` against the split given by ``meta`` and ``images``."""
    results, meta, images = Path(results), Path(meta), Path(images)
    if not results.is_dir():
        raise SubmissionError(f"{results}: results folder not found")
    if not images.is_dir():
        raise SubmissionError(f"{images}: images folder (the split's JPEGImages) not found")
    videos = read_meta_videos(meta)
    report = Report(videos=len(videos))
    present = {p.name for p in results.iterdir() if p.is_dir()}
    report.extra_videos = sorted(present - set(videos))
    for video in tqdm(videos, desc="checking", unit="video", disable=not progress):
        frames = required_frames(images, video)
        report.frames += len(frames)
        if video not in present:
            report.missing_videos.append(video)
            continue
        missing = []
        for frame in frames:
            png = results / video / f"{frame}.png"
            if not png.is_file():
                missing.append(frame)
                continue
            problem = check_png(png, images / video / f"{frame}.jpg")
            if problem:
                report.bad_files.append(problem)
        if missing:
            report.missing_frames[video] = missing
    return report


def describe(report: Report, results: Path) -> str:
    """A human-readable account of what is wrong (empty when nothing is)."""
    lines = []
    if report.missing_videos:
        lines.append(
            f"{len(report.missing_videos)} of {report.videos} videos have no folder in {results}: "
            + _listing(report.missing_videos)
        )
    if report.missing_frames:
        total = sum(len(v) for v in report.missing_frames.values())
        lines.append(f"{total} frames missing in {len(report.missing_frames)} videos:")
        items = sorted(report.missing_frames.items())
        for video, frames in items[:MAX_LISTED]:
            lines.append(f"  {video}: {len(frames)} missing: {_listing(frames)}")
        if len(items) > MAX_LISTED:
            lines.append(f"  ... and {len(items) - MAX_LISTED} more videos")
    if report.bad_files:
        lines.append(f"{len(report.bad_files)} bad prediction files:")
        lines.extend(f"  {b}" for b in report.bad_files[:MAX_LISTED])
        if len(report.bad_files) > MAX_LISTED:
            lines.append(f"  ... and {len(report.bad_files) - MAX_LISTED} more")
    return "\n".join(lines)


def write_zip(results: str | Path, images: str | Path, videos: Sequence[str], out: str | Path) -> int:
    """Zip ``results/<video>/<frame>.png`` for every required frame as
    ``Annotations/<video>/<frame>.png``, atomically; return the number of entries."""
    results, images = Path(results), Path(images)
    count = 0
    with atomic_path(out) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for video in tqdm(videos, desc="zipping", unit="video"):
                for frame in required_frames(images, video):
                    zf.write(results / video / f"{frame}.png", f"Annotations/{video}/{frame}.png")
                    count += 1
    return count


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = command_parser("python src/tools/check_submission.py", __doc__, summary_only=True)
    p.add_argument("results", help="folder of <video>/<frame>.png predictions")
    p.add_argument("--meta", required=True, help="the split's meta.json")
    p.add_argument("--images", required=True, help="the split's JPEGImages folder")
    p.add_argument("--zip", default=None, help="write the submission zip here when complete (default: no zip)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = Path(args.results)
    report = check_results(results, args.meta, args.images)
    if report.extra_videos:
        print(
            f"note: {len(report.extra_videos)} result folders are not in the split and are left "
            f"out: {_listing(report.extra_videos)}",
            file=sys.stderr,
        )
    if not report.ok:
        raise SubmissionError(f"incomplete or malformed results in {results}\n"
                              f"{describe(report, results)}")
    print(f"ok: {report.videos} videos, {report.frames} frames in {results}")
    if args.zip:
        videos = read_meta_videos(Path(args.meta))
        n = write_zip(results, args.images, videos, args.zip)
        print(f"wrote {args.zip} ({n} entries)")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
