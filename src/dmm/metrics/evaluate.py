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
import multiprocessing
import os
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable, Iterable, NamedTuple, Sequence

import cv2
import numpy as np
from PIL import Image

from dmm.errors import InputError
from dmm.metrics.measures import boundary_kernel, frame_scores, label_histogram
from dmm.metrics.results import ObjectScores, VideoScores, summarize

logger = logging.getLogger(__name__)

VOID_ID = 255
EXTRA_ID_MODES = ("error", "score")
PROTOCOLS = ("davis", "youtubevos", "dmm2019")
#: what each protocol's numbers are comparable with (printed beside its table)
PROTOCOL_DESCRIPTIONS = {
    "davis": "the DAVIS 2017 rule of davis2017-evaluation: comparable with other methods",
    "youtubevos": "the standard rule, each object from its first appearance at the frame size: "
                  "comparable with other methods",
    "dmm2019": "the 2019 code's scoring: comparable with the paper's table",
}
#: resolution folders of DAVIS 2017 under ``Annotations``.
DAVIS_RESOLUTIONS = ("480p", "Full-Resolution")
_MAX_LISTED = 20


class MetricsInputError(InputError):
    """Bad or missing input masks; the message names the video, frame or file."""


class VideoJob(NamedTuple):
    gt_dir: Path
    res_dir: Path
    video: str
    frames: tuple[str, ...]
    extra_ids: str
    protocol: str = "youtubevos"


def resolve_protocol(gt_dir: str | os.PathLike, protocol: str = "auto") -> str:
    """One of PROTOCOLS: ``protocol`` itself, or for ``"auto"`` the one of the ground truth's
    layout (``"davis"`` for ``.../Annotations/480p`` or ``.../Annotations/Full-Resolution``,
    else ``"youtubevos"``; ``"dmm2019"`` is only taken when asked for)."""
    if protocol in PROTOCOLS:
        return protocol
    if protocol != "auto":
        raise MetricsInputError(f"unknown protocol {protocol!r} (one of auto, {', '.join(PROTOCOLS)})")
    gt_dir = Path(gt_dir).absolute()
    davis = gt_dir.name in DAVIS_RESOLUTIONS and gt_dir.parent.name == "Annotations"
    return "davis" if davis else "youtubevos"


def _listing(items: Sequence[str]) -> str:
    """Comma-separated items, cut after _MAX_LISTED with a count of the rest."""
    shown = ", ".join(items[:_MAX_LISTED])
    rest = len(items) - _MAX_LISTED
    return f"{shown}, ... and {rest} more" if rest > 0 else shown


def read_labels(path: Path) -> np.ndarray:
    """Object-id image of a palette or 8-bit grey PNG -> uint8 (h, w)."""
    try:
        with Image.open(path) as img:
            if img.mode not in ("P", "L"):
                raise MetricsInputError(
                    f"{path}: expected a palette or 8-bit grey PNG of object ids, got mode {img.mode}"
                )
            labels = np.array(img, dtype=np.uint8)
    except FileNotFoundError:
        raise MetricsInputError(f"missing mask file {path}") from None
    except OSError as err:
        raise MetricsInputError(f"cannot read mask file {path}: {err}") from err
    return labels


def list_frames(video_dir: Path) -> list[str]:
    """Sorted frame names (file stems) of the PNGs in one video folder."""
    return sorted(p.stem for p in video_dir.iterdir() if p.suffix == ".png" and p.is_file())


def list_videos(root: Path) -> list[str]:
    """Sorted names of the sub-folders of ``root``."""
    if not root.is_dir():
        raise MetricsInputError(f"folder {root} does not exist")
    return sorted(p.name for p in root.iterdir() if p.is_dir())


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
            f"ground truth {gt_dir} has no folder for {len(missing)} requested videos: {_listing(missing)}"
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
        raise MetricsInputError(
            f"results {res_dir} miss {len(absent)} of {len(videos)} videos: {_listing(absent)} "
            "(allow_missing=True / --allow-missing scores only the videos present)"
        )
    if absent:
        logger.warning("skipping %d videos missing from %s: %s", len(absent), res_dir, _listing(absent))
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
            f"the first and last of each video): {_listing(missing_frames)}"
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
            f"(objects {sorted(gt_ids)}); extra_ids='score' / --extra-ids score scores them as false objects"
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
            raise MetricsInputError(f"{gt_path}: size {gt.shape} differs from the video's first frame {shape}")
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
                f"{pred_path}: prediction size {pred.shape} (h, w) differs from the ground truth {gt.shape}"
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


def _init_worker() -> None:
    """One OpenCV thread per worker process: the workers already fill the CPUs."""
    cv2.setNumThreads(1)


def _default_processes() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def score_folders(
    gt_dir: str | os.PathLike,
    res_dir: str | os.PathLike,
    videos: Iterable[str] | None = None,
    processes: int | None = None,
    allow_missing: bool = False,
    extra_ids: str = "error",
    protocol: str = "auto",
    *,
    split_meta: str | os.PathLike | None = None,
    input_size: Sequence[int] | None = None,
) -> list[VideoScores]:
    """Per-frame scores of every object of every video, sorted by video name (``"dmm2019"``:
    in the split meta's order).

    ``videos``: names to score (default: every folder of ``gt_dir``; ``"dmm2019"``: every video
    of ``split_meta``). ``processes``: processes that score, this one included (default: the
    CPUs available; 1 scores in this process only). ``protocol``: "davis", "youtubevos",
    "dmm2019" or "auto" (see the module docstring). ``split_meta`` (the split json: video order
    and start frames) and ``input_size`` ((H, W) of the network input; default: the results'
    record) are for "dmm2019" only, which needs ``split_meta`` and returns
    ``dmm2019.VideoScores2019`` (``extra_ids`` has no effect there: ids beyond the counted
    objects are ignored, as the 2019 code did).
    """
    if extra_ids not in EXTRA_ID_MODES:
        raise MetricsInputError(f"extra_ids must be one of {EXTRA_ID_MODES}, got {extra_ids!r}")
    if processes is not None and processes < 1:
        raise MetricsInputError(f"processes must be >= 1, got {processes}")
    gt_dir, res_dir = Path(gt_dir), Path(res_dir)
    protocol = resolve_protocol(gt_dir, protocol)
    if protocol == "dmm2019":
        from dmm.metrics import dmm2019  # it builds on this module

        if split_meta is None:
            raise MetricsInputError("the dmm2019 protocol needs the split meta (--split-meta meta.json): its "
                                    "video order and each video's start frame define the files it pairs")
        jobs = dmm2019.plan_jobs_2019(gt_dir, res_dir, dmm2019.load_split_2019(split_meta), videos, allow_missing,
                                      dmm2019.resolve_input_size(res_dir, input_size))
        score: Callable = dmm2019.score_video_2019
    else:
        if input_size is not None:
            raise MetricsInputError(f"input_size / --input-size is for the dmm2019 protocol only, not {protocol}")
        jobs = plan_jobs(gt_dir, res_dir, _select_videos(gt_dir, videos), allow_missing, extra_ids, protocol)
        score = score_video
    workers = min(processes or _default_processes(), len(jobs))
    if workers == 1:
        return [score(job) for job in jobs]
    done = _score_in_parallel(jobs, workers, score)
    return [done[job.video] for job in jobs]


def _score_in_parallel(jobs: list, processes: int, score: Callable = score_video) -> dict[str, VideoScores]:
    """Score ``jobs`` (each with ``.video`` and ``.frames``) by ``score`` (a module-level
    function) with ``processes - 1`` worker processes plus this one.

    Workers take the longest videos first, this process the shortest, so it works while
    the workers start up and all finish close together. Workers are spawned: forking a
    parent whose OpenCV or BLAS thread pools are running can deadlock.
    """
    pending = deque(sorted(jobs, key=lambda job: -len(job.frames)))
    results: dict[str, VideoScores] = {}
    running: set[Future] = set()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes - 1, mp_context=context, initializer=_init_worker) as pool:
        try:
            while pending or running:
                for future in [f for f in running if f.done()]:
                    running.discard(future)
                    result = future.result()
                    results[result.video] = result
                while pending and len(running) < 2 * (processes - 1):  # a spare job per worker
                    running.add(pool.submit(score, pending.popleft()))
                if pending:
                    result = score(pending.pop())
                    results[result.video] = result
                elif running:
                    wait(running, return_when=FIRST_COMPLETED)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return results


def evaluate_folders(
    gt_dir: str | os.PathLike,
    res_dir: str | os.PathLike,
    videos: Iterable[str] | None = None,
    processes: int | None = None,
    allow_missing: bool = False,
    extra_ids: str = "error",
    protocol: str = "auto",
    *,
    split_meta: str | os.PathLike | None = None,
    input_size: Sequence[int] | None = None,
) -> dict:
    """DAVIS summary ``{"global": {...}, "videos": {video: {...}}}`` with the keys
    J_mean, J_recall, J_decay, F_mean, F_recall, F_decay, JF_mean (see ``score_folders``);
    for ``"dmm2019"`` the fuller ``dmm2019.summarize_2019``."""
    scores = score_folders(gt_dir, res_dir, videos, processes, allow_missing, extra_ids, protocol,
                           split_meta=split_meta, input_size=input_size)
    if resolve_protocol(gt_dir, protocol) == "dmm2019":
        from dmm.metrics.dmm2019 import summarize_2019

        return summarize_2019(scores)
    return summarize(scores)
