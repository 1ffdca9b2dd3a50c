"""Score a folder of predicted masks against a folder of ground-truth masks.

Both folders hold ``<video>/<frame>.png`` palette (or 8-bit grey) PNGs whose pixel value
is the object id (0 background). The semi-supervised protocol decides what is scored:

- The ground-truth frames of a video (sorted by name) are its frames; predictions for other
  frame names are ignored. The first and the last frame are never scored, so only the
  predictions of the frames in between are read (and must exist).
- Which objects, on which frames, depends on the dataset (``protocol``):
  ``"davis"`` (davis2017-evaluation): the objects are the ids 1 .. N, N the largest id of the
  first ground-truth frame, each scored on every frame 1 .. last-1, present or not; ids that
  appear only later are not scored. ``"youtubevos"``: the objects are the ids found in any
  ground-truth frame, and an object first seen in frame k is scored on frames k+1 .. last-1
  (its first frame is dropped like the first frame of the video; nothing is scored before it
  appears). ``"auto"`` takes ``"davis"`` for a DAVIS layout (``.../Annotations/480p`` or
  ``.../Annotations/Full-Resolution``) and ``"youtubevos"`` otherwise. ``"dmm2019"`` is the
  2019 code's own scoring, which the paper's table used (``dmm.metrics.dmm2019``: its own
  objects, file pairing and resolutions; it needs the split meta and ignores the rules below).
- Ground-truth value 255 is DAVIS's "void" label; like the official semi-supervised
  evaluation, it counts as background.
- A predicted id that is not an object of the video is an error naming it
  (``extra_ids="error"``), or, with ``extra_ids="score"``, a false object scored on frames
  1 .. last-1 against an empty ground truth.

Videos are scored in parallel: ``processes`` counts this process, which scores videos too,
plus ``processes - 1`` spawned workers; one task per video.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np

from dmm.errors import size_text
from dmm.metrics.inputs import (VOID_ID, MetricsInputError, list_frames, list_videos, listing, missing_videos_error,
                                read_labels, resolve_protocol, run_jobs)
from dmm.metrics.measures import boundary_kernel, frame_scores, label_histogram
from dmm.metrics.results import ObjectScores, VideoScores

logger = logging.getLogger(__name__)

EXTRA_ID_MODES = ("error", "score")
#: the protocols this module scores (``dmm.metrics.dmm2019`` scores the third)
STANDARD_PROTOCOLS = ("davis", "youtubevos")


class VideoJob(NamedTuple):
    gt_dir: Path
    res_dir: Path
    video: str
    frames: tuple[str, ...]
    extra_ids: str
    protocol: str = "youtubevos"


def _select_videos(gt_dir: Path, videos: Iterable[str] | None) -> list[str]:
    """The videos to score: ``videos`` (each must have a ground-truth folder) or all of gt_dir."""
    available = list_videos(gt_dir)
    if videos is None:
        if not available:
            raise MetricsInputError(f"no video folders in the ground truth {gt_dir}")
        return available
    wanted = sorted(set(videos))
    missing = sorted(set(wanted) - set(available))
    if missing:
        raise MetricsInputError(
            f"ground truth {gt_dir} has no folder for {len(missing)} requested videos: {listing(missing)}"
        )
    if not wanted:
        raise MetricsInputError("the list of videos to score is empty")
    return wanted


def plan_jobs(
    gt_dir: Path, res_dir: Path, videos: list[str], allow_missing: bool, extra_ids: str,
    protocol: str = "youtubevos",
) -> list[VideoJob]:
    """One job per video, after checking that every prediction the scoring reads exists.

    Missing video folders are an error listing them unless ``allow_missing`` (then those
    videos are skipped with a warning); missing frames are always an error listing them.
    """
    if not res_dir.is_dir():
        raise MetricsInputError(f"results folder {res_dir} does not exist")
    absent = [v for v in videos if not (res_dir / v).is_dir()]
    if absent and not allow_missing:
        raise missing_videos_error(res_dir, absent, len(videos))
    if absent:
        logger.warning("skipping %d videos missing from %s: %s", len(absent), res_dir, listing(absent))
    absent_set = set(absent)
    present = [v for v in videos if v not in absent_set]
    if not present:
        raise MetricsInputError(f"results {res_dir} hold none of the {len(videos)} videos to score")
    jobs: list[VideoJob] = []
    missing_frames: list[str] = []
    for video in present:
        frames = list_frames(gt_dir / video)
        if not frames:
            raise MetricsInputError(f"ground-truth video {gt_dir / video} has no PNG frames")
        predicted = set(list_frames(res_dir / video))
        missing_frames += [f"{video}/{f}.png" for f in frames[1:-1] if f not in predicted]
        jobs.append(VideoJob(gt_dir, res_dir, video, tuple(frames), extra_ids, protocol))
    if missing_frames:
        raise MetricsInputError(
            f"results {res_dir} miss {len(missing_frames)} scored frames (all ground-truth frames but "
            f"the first and last of each video): {listing(missing_frames)}"
        )
    return jobs


def _extra_objects(
    job: VideoJob, gt_ids: set[int], pred_areas: np.ndarray, frame_pixels: int
) -> list[ObjectScores]:
    """False objects: predicted ids (pred_areas (n, 256) pixels per id in the n scored frames)
    absent from the ground truth. Raises MetricsInputError unless ``job.extra_ids == "score"``.

    Against an empty ground truth J is 1 where the id is absent and 0 elsewhere; F likewise,
    except that a mask covering the whole frame has no boundary and so F = 1.
    """
    seen = pred_areas[:, 1:].any(axis=0)
    extra = [int(i) + 1 for i in np.flatnonzero(seen) if int(i) + 1 not in gt_ids]
    if not extra:
        return []
    scored = job.frames[1:-1]
    if job.extra_ids != "score":
        where = ", ".join(
            f"{i} (first in {job.video}/{scored[int(np.argmax(pred_areas[:, i] > 0))]}.png)" for i in extra
        )
        source = ("the first ground-truth frame (the DAVIS rule scores the ids 1 .. its largest)"
                  if job.protocol == "davis" else "the ground truth")
        raise MetricsInputError(
            f"video {job.video}: predicted ids {where} are not objects of {source} "
            f"(objects {sorted(gt_ids)}); --extra-ids score scores them as false objects"
        )
    objects = []
    for i in extra:
        area = pred_areas[:, i]
        j = (area == 0).astype(np.float64)
        f = ((area == 0) | (area == frame_pixels)).astype(np.float64)
        objects.append(ObjectScores(job.video, i, None, tuple(scored), j, f))
    return objects


def score_video(job: VideoJob) -> VideoScores:
    """Per-frame J and F of every object of one video (see the module docstring)."""
    frames = job.frames
    n = len(frames)
    first_seen: dict[int, int] = {}
    j_scores: dict[int, list[float]] = {}
    f_scores: dict[int, list[float]] = {}
    pred_areas = np.zeros((max(n - 2, 0), 256), dtype=np.int64)
    shape: tuple[int, int] | None = None
    kernel: np.ndarray | None = None
    for t, frame in enumerate(frames):
        gt_path = job.gt_dir / job.video / f"{frame}.png"
        gt = read_labels(gt_path)
        if shape is None:
            shape = gt.shape
            kernel = boundary_kernel(shape)
        elif gt.shape != shape:
            raise MetricsInputError(f"{gt_path}: size {size_text(gt.shape)} differs from the video's first frame "
                                     f"{size_text(shape)}")
        gt[gt == VOID_ID] = 0
        if job.protocol == "davis":
            if t == 0:
                first_seen = {obj: 0 for obj in range(1, int(gt.max()) + 1)}
            active = sorted(first_seen)
        else:
            active = sorted(first_seen)  # objects seen before this frame
            for obj in np.flatnonzero(label_histogram(gt)[1:]) + 1:
                first_seen.setdefault(int(obj), t)
        if not 0 < t < n - 1:
            continue
        pred_path = job.res_dir / job.video / f"{frame}.png"
        pred = read_labels(pred_path)
        if pred.shape != gt.shape:
            raise MetricsInputError(
                f"{pred_path}: prediction size {size_text(pred.shape)} differs from the ground truth "
                f"{size_text(gt.shape)}"
            )
        pred_areas[t - 1] = label_histogram(pred)
        if active:
            j, f = frame_scores(gt, pred, active, kernel)
            for k, obj in enumerate(active):
                j_scores.setdefault(obj, []).append(float(j[k]))
                f_scores.setdefault(obj, []).append(float(f[k]))
    objects = [
        ObjectScores(
            job.video,
            obj,
            frames[start],
            tuple(frames[start + 1 : n - 1]),
            np.asarray(j_scores.get(obj, []), dtype=np.float64),
            np.asarray(f_scores.get(obj, []), dtype=np.float64),
        )
        for obj, start in sorted(first_seen.items())
    ]
    frame_pixels = shape[0] * shape[1] if shape is not None else 0
    objects += _extra_objects(job, set(first_seen), pred_areas, frame_pixels)
    return VideoScores(job.video, tuple(objects))


def score_standard(
    gt_dir: str | os.PathLike,
    res_dir: str | os.PathLike,
    videos: Iterable[str] | None = None,
    processes: int | None = None,
    allow_missing: bool = False,
    extra_ids: str = "error",
    protocol: str = "auto",
) -> list[VideoScores]:
    """Per-frame scores of every object of every video under the DAVIS or YouTube-VOS rule,
    sorted by video name.

    ``videos``: names to score (default: every folder of ``gt_dir``). ``processes``: processes
    that score, this one included (default: the CPUs available; 1 scores in this process only).
    ``protocol``: "davis", "youtubevos" or "auto" (see the module docstring).
    """
    if extra_ids not in EXTRA_ID_MODES:
        raise MetricsInputError(f"extra_ids must be one of {EXTRA_ID_MODES}, got {extra_ids!r}")
    gt_dir, res_dir = Path(gt_dir), Path(res_dir)
    protocol = resolve_protocol(gt_dir, protocol)
    if protocol not in STANDARD_PROTOCOLS:
        raise MetricsInputError(f"protocol {protocol} is not one of {', '.join(STANDARD_PROTOCOLS)} "
                                "(dmm.metrics.score_folders scores every protocol)")
    jobs = plan_jobs(gt_dir, res_dir, _select_videos(gt_dir, videos), allow_missing, extra_ids, protocol)
    return run_jobs(jobs, processes, score_video)
