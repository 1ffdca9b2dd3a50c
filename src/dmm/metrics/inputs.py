"""What both scoring protocols read and share: the results and ground-truth folders, label
PNGs, the choice of protocol, and the run of one scoring job per video over processes.

A leaf of ``dmm.metrics``: the protocol modules (``evaluate``: DAVIS and YouTube-VOS;
``dmm2019``: the 2019 code's) import it and never each other; ``dmm.metrics.scoring`` chooses
between them.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import cv2
import numpy as np
from PIL import Image

from dmm.errors import InputError

#: DAVIS's "void" label in ground truth (scored as background)
VOID_ID = 255
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


def listing(items: Sequence[str]) -> str:
    """Comma-separated items, cut after _MAX_LISTED with a count of the rest."""
    shown = ", ".join(items[:_MAX_LISTED])
    rest = len(items) - _MAX_LISTED
    return f"{shown}, ... and {rest} more" if rest > 0 else shown


def missing_videos_error(res_dir: Path, absent: Sequence[str], total: int) -> MetricsInputError:
    """The error for results that lack ``absent`` of the ``total`` videos to score."""
    return MetricsInputError(f"results {res_dir} miss {len(absent)} of {total} videos: {listing(absent)} "
                             "(--allow-missing scores only the videos present)")


def record_of(res_dir: str | os.PathLike) -> Path:
    """The record beside a results folder, ``<results>.source.json``
    (as ``dmm.engine.results.record_path`` names it)."""
    res_dir = Path(os.path.abspath(res_dir))
    return res_dir.parent / f"{res_dir.name}.source.json"


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


J = TypeVar("J")


def _init_worker() -> None:
    """One OpenCV thread per worker process: the workers already fill the CPUs."""
    cv2.setNumThreads(1)


def default_processes() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_jobs(jobs: Sequence[J], processes: int | None, score: Callable[[J], object]) -> list:
    """``score(job)`` of every job (each with ``.video`` and ``.frames``), in the jobs' order.

    ``processes``: processes that score, this one included (default: the CPUs available; 1
    scores in this process only). ``score`` is a module-level function (workers import it).
    """
    if processes is not None and processes < 1:
        raise MetricsInputError(f"processes must be >= 1, got {processes}")
    workers = min(processes or default_processes(), len(jobs))
    if workers <= 1:
        return [score(job) for job in jobs]
    done = _score_in_parallel(list(jobs), workers, score)
    return [done[job.video] for job in jobs]


def _score_in_parallel(jobs: list, processes: int, score: Callable) -> dict:
    """Score ``jobs`` with ``processes - 1`` worker processes plus this one, by video.

    Workers take the longest videos first, this process the shortest, so it works while
    the workers start up and all finish close together. Workers are spawned: forking a
    parent whose OpenCV or BLAS thread pools are running can deadlock.
    """
    pending = deque(sorted(jobs, key=lambda job: -len(job.frames)))
    results: dict = {}
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
