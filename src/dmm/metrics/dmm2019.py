"""The 2019 scoring protocol (``protocol="dmm2019"``): J and F as the paper's YouTube-VOS table
was scored.

The 2019 ``scripts/metric/full_eval.sh`` ran the authors' copy of the 2017 DAVIS toolbox
(``tools/davis_eval.py`` -> ``dmm/dataloader/evaluation.py`` -> ``dmm/measures``) on the label
maps its evaluator wrote at the network input size (``merged/``). Line numbers below are of
ZENGXH/DMM_Net @ a6308688 (``tests/faithfulness/golden/metric2019.pt`` holds that code's own numbers):

- Videos: the keys of the split json in file order (``youtubeVOS.py:77-78, 312-315``).
  Ground truth: every PNG of ``<gt>/<video>/``; predictions: every PNG of ``<res>/<video>/``,
  each sorted by name (``base_youtube.py:96-109``); file names are never compared.
- Objects: n = the number of distinct values other than 0 and 255 in the video's first
  ground-truth PNG; the ids scored are 1 .. n (``base_youtube.py:27-38, 197-204``). A video
  whose first PNG holds no object scores nothing.
- Pairs: ``zip(gt[1:-1], pred[1:-1])`` (``evaluation.py:47``): by position, the shorter list
  sets the count. The prediction list starts at the evaluator's start frame, the first frame
  the split json lists for the video's first object (``evaluator.py:243-248``).
- J at the ground truth's size, the prediction upsampled by PIL NEAREST (``jaccard.py:28-37``);
  F at the prediction's size, the ground truth downsampled by PIL NEAREST, with the tolerance
  ``ceil(0.008 * diagonal)`` of the ground truth's size before the resize
  (``f_boundary.py:30-76``); boundary maps by ``seg2bmap`` (:func:`~dmm.metrics.measures.boundary_map`).
- Per object: mean = nanmean, recall = mean(x > 0.5), decay with uint8 bin bounds, nanmean of
  the first bin minus the plain mean of the last, std (``statistics.py``); dataset: the mean of
  every object's value, objects of all videos pooled (``evaluation.py:104-107``); printed as
  ``"%.3f" % np.round(x, 3)`` without a J&F column (``tools/davis_eval.py:47-52``).

Results folders of two kinds are scored: 2019 ``merged/`` folders (maps at the input size, from
the start frame on) and this project's (``python -m dmm.test``: one frame-size map per frame,
made with ``TEST.LABELS_AT input`` by resizing an input-size map with
``cv2.INTER_NEAREST_EXACT``). A frame-size map is brought back to the input size exactly (the
inverse index map of that resize, checked by resizing again), which needs the input size: from
``--input-size`` or from the folder's record ``<results>.source.json``. Prediction files named
before the start frame (this project writes background there) are left out. Nothing is written
into the results folder.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple, Sequence

import cv2
import numpy as np
from PIL import Image

from dmm.errors import size_text
from dmm.metrics.inputs import (VOID_ID, MetricsInputError, list_frames, list_videos, listing, missing_videos_error,
                                read_labels, record_of, run_jobs)
from dmm.metrics.measures import BOUND_TH, boundary_map, dilation_radius, disk
from dmm.metrics.results import STAT_KEYS, ObjectScores, VideoScores, summarize

logger = logging.getLogger(__name__)

PROTOCOL = "dmm2019"
JF_NOTE = "JF_mean = (J_mean + F_mean) / 2 is not printed by the 2019 code"
_RECORD_FIX = "rerun python -m dmm.test with TEST.LABELS_AT input (the default)"


# --------------------------------------------------------------------------- split and inputs


class SplitVideo(NamedTuple):
    """A video of the split json: its name and the evaluator's start frame."""

    name: str
    start_frame: str


def load_split_2019(path: str | os.PathLike) -> list[SplitVideo]:
    """The videos of a YouTube-VOS style split json in file order, each with the 2019
    evaluator's start frame: the first frame listed by the video's objects in key order
    (``modules/evaluator.py: prepare_frame_names``)."""
    path = Path(path)
    if not path.is_file():
        raise MetricsInputError(f"split meta {path} does not exist")
    try:
        videos = json.loads(path.read_text())["videos"]
        out = []
        for name, entry in videos.items():
            listed = [f for obj in entry["objects"].values() for f in (obj.get("frames") or [])]
            if not listed:
                raise MetricsInputError(f"{path}: video {name} lists no frame for any object "
                                        "(the 2019 protocol starts a video at its first listed frame)")
            out.append(SplitVideo(str(name), str(listed[0])))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        if isinstance(err, MetricsInputError):
            raise
        raise MetricsInputError(f"{path}: not a readable meta.json with videos/objects/frames ({err!r})") from None
    if not out:
        raise MetricsInputError(f"{path}: the split lists no video")
    return out


def resolve_input_size(res_dir: Path, input_size: Sequence[int] | None = None) -> tuple[int, int] | None:
    """(H, W) of the network input the maps of ``res_dir`` were made at: ``input_size`` when
    given, else the record's ``input_size``, else None (unknown). A record saying
    ``labels_at: frame`` is an error: those maps cannot be brought back to the input size."""
    record = record_of(res_dir)
    info: dict = {}
    if record.is_file():
        try:
            info = json.loads(record.read_text())
            if not isinstance(info, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as err:
            raise MetricsInputError(f"{record}: unreadable results record ({err})") from None
    if info.get("labels_at", "input") != "input":
        raise MetricsInputError(
            f"{record}: the label maps of {res_dir} were made at the frame size (labels_at "
            f"{info['labels_at']!r}), so the input-size maps the dmm2019 protocol scores cannot be "
            f"recovered from them; {_RECORD_FIX}")
    size = input_size if input_size is not None else info.get("input_size")
    if size is None:
        return None
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise MetricsInputError(f"input size {size!r} is not two integers H W"
                                f"{'' if input_size is not None else f' (from {record})'}") from None
    if h < 1 or w < 1:
        raise MetricsInputError(f"input size {size_text((h, w))} is not positive")
    return h, w


# --------------------------------------------------------------------------- resizes


def pil_nearest(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 labels (h, w) -> (H, W) by PIL ``Image.resize((W, H), Image.NEAREST)``, the resize
    of the 2019 ``jaccard.py`` and ``f_boundary.py`` (it commutes with ``== id``)."""
    if labels.shape == tuple(size):
        return labels
    img = Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint8))
    return np.asarray(img.resize((int(size[1]), int(size[0])), Image.NEAREST))


def nearest_exact_index(src: int, dst: int) -> np.ndarray:
    """(dst,) int64: the source index ``cv2.resize(..., interpolation=cv2.INTER_NEAREST_EXACT)``
    takes for each output index along an axis resized from ``src`` to ``dst`` (read off by
    resizing an index ramp, so it is the one OpenCV uses)."""
    ramp = np.arange(src, dtype=np.float32)[None, :]  # exact below 2^24
    return cv2.resize(ramp, (dst, 1), interpolation=cv2.INTER_NEAREST_EXACT)[0].astype(np.int64)


def _first_hits(index: np.ndarray, src: int) -> np.ndarray | None:
    """(src,) int64: for each source index, the first output index that took it; None when
    some source index is taken by no output index (the axis was shrunk)."""
    values, first = np.unique(index, return_index=True)
    if values.size != src or not np.array_equal(values, np.arange(src)):
        return None
    return first.astype(np.int64)


def recover_input_labels(labels: np.ndarray, input_size: tuple[int, int]) -> np.ndarray | None:
    """The input-size map (H, W) uint8 whose ``cv2.INTER_NEAREST_EXACT`` resize is ``labels``
    (h, w) uint8, or None when there is none (``labels`` is not such a resize, or the frame is
    smaller than the input on an axis, where a resize drops input pixels)."""
    (h, w), (H, W) = labels.shape, input_size
    rows = _first_hits(nearest_exact_index(H, h), H)
    cols = _first_hits(nearest_exact_index(W, w), W)
    if rows is None or cols is None:
        return None
    small = np.ascontiguousarray(labels[np.ix_(rows, cols)])
    again = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
    return small if np.array_equal(again, labels) else None


# --------------------------------------------------------------------------- measures


def count_objects(first_gt: np.ndarray) -> int:
    """The 2019 object count of a video: distinct values of its first ground-truth labels
    (h, w) other than 0 and 255 (``base_youtube.py: _get_num_objects``)."""
    values = np.unique(first_gt)
    return int(np.count_nonzero((values != 0) & (values != VOID_ID)))


def frame_counts(gt: np.ndarray, pred: np.ndarray, n_objects: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Pixel counts of objects 1 .. n in one pair of label maps.

    gt: uint8 (H, W) ground truth at the frame size; pred: uint8 (h, w) at the input size.
    Returns counts_J int64 (n, 2) [intersection, union] at (H, W) (pred upsampled),
    counts_F int64 (n, 4) [n_G, n_P, m_G, m_P] at (h, w) (gt downsampled; boundary pixels of
    the ground truth and the prediction, and those inside the other's boundary dilated by the
    disk of radius r), and r = ceil(0.008 * diagonal of (H, W)).
    """
    radius = dilation_radius(gt.shape, BOUND_TH)
    big = pil_nearest(pred, gt.shape)
    joint = np.bincount(gt.ravel().astype(np.int64) * 256 + big.ravel(), minlength=256 * 256).reshape(256, 256)
    ids = np.arange(1, n_objects + 1)
    inter = joint[ids, ids]
    union = joint[ids, :].sum(axis=1) + joint[:, ids].sum(axis=0) - inter
    counts_j = np.stack([inter, union], axis=1).astype(np.int64)
    small = pil_nearest(gt, pred.shape)
    kernel = disk(radius)
    counts_f = np.zeros((n_objects, 4), dtype=np.int64)
    for k in range(n_objects):
        g_b = boundary_map(small == k + 1)
        p_b = boundary_map(pred == k + 1)
        n_g, n_p = int(np.count_nonzero(g_b)), int(np.count_nonzero(p_b))
        m_g = m_p = 0
        if n_g and n_p:
            g_dil = cv2.dilate(g_b.view(np.uint8), kernel).view(bool)
            p_dil = cv2.dilate(p_b.view(np.uint8), kernel).view(bool)
            m_g, m_p = int(np.count_nonzero(g_b & p_dil)), int(np.count_nonzero(p_b & g_dil))
        counts_f[k] = (n_g, n_p, m_g, m_p)
    return counts_j, counts_f, radius


def jaccard_from_counts(counts_j: np.ndarray) -> np.ndarray:
    """J (n,) float64 from [intersection, union] (n, 2): 1 when both masks are empty."""
    inter, union = counts_j[:, 0], counts_j[:, 1]
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1).astype(np.float64))


def f_from_counts(counts_f: np.ndarray) -> np.ndarray:
    """F (n,) float64 from [n_G, n_P, m_G, m_P] (n, 4) in the 2019 arithmetic
    (2019 ``f_boundary.py:58-76``: a = m_G / n_G, b = m_P / n_P, F = 2ab / (a + b))."""
    out = np.empty(len(counts_f), dtype=np.float64)
    for k, (n_g, n_p, m_g, m_p) in enumerate(counts_f.tolist()):
        if n_g == 0 and n_p > 0:
            a, b = 1.0, 0.0
        elif n_g > 0 and n_p == 0:
            a, b = 0.0, 1.0
        elif n_g == 0 and n_p == 0:
            a, b = 1.0, 1.0
        else:
            a, b = m_g / float(n_g), m_p / float(n_p)
        out[k] = 0.0 if a + b == 0 else 2 * a * b / (a + b)
    return out


def decay_bounds_2019(n: int) -> list[int]:
    """The five decay bin bounds of ``n`` >= 1 values as the 2019 ``statistics.py`` makes them:
    ``round(linspace(1, n, 5) + 1e-10) - 1`` cast to uint8 (wrapping beyond 255)."""
    bounds = np.round(np.linspace(1, n, 5) + 1e-10) - 1
    return [int(b) for b in bounds.astype(np.int64).astype(np.uint8)]


def statistics_2019(values: Sequence[float]) -> dict[str, float]:
    """mean, recall, decay and std of one object's per-pair values (n,), n >= 1, as the 2019
    ``statistics.py``: nanmean; mean of x > 0.5; nanmean of the first decay bin minus the mean of
    the last (bins ``x[b_i : b_(i+1) + 1]``); np.std."""
    x = np.asarray(values, dtype=np.float64)
    b = decay_bounds_2019(len(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return {
            "mean": float(np.nanmean(x)),
            "recall": float(np.nanmean(x > 0.5)),
            "decay": float(np.nanmean(x[b[0]:b[1] + 1]) - np.mean(x[b[3]:b[4] + 1])),
            "std": float(np.std(x)),
        }


# --------------------------------------------------------------------------- score containers


@dataclass(frozen=True)
class ObjectScores2019(ObjectScores):
    """One object of the 2019 protocol. ``frames``: the ground-truth frame of each pair,
    ``pred_frames``: the prediction file paired with it; ``first_frame``: the video's first
    ground-truth frame (where the objects are counted). ``counts_j`` int64 (n, 2),
    ``counts_f`` int64 (n, 4) (:func:`frame_counts`)."""

    pred_frames: tuple[str, ...] = ()
    counts_j: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    counts_f: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int64))

    def statistics(self) -> dict[str, float] | None:
        """The six STAT_KEYS values by the 2019 rule, or None when no pair is scored."""
        if len(self.frames) == 0:
            return None
        j, f = statistics_2019(self.j), statistics_2019(self.f)
        return {f"{m}_{k}": stats[k] for m, stats in (("J", j), ("F", f)) for k in ("mean", "recall", "decay")}

    def std(self) -> dict[str, float]:
        """J_std and F_std (np.std; the 2019 code computes them, its table does not use them)."""
        return {"J_std": statistics_2019(self.j)["std"], "F_std": statistics_2019(self.f)["std"]}


@dataclass(frozen=True)
class VideoScores2019(VideoScores):
    """A video of the 2019 protocol: ``n_objects`` (0: nothing scored), the file pairs
    (ground truth, prediction) and the F tolerance ``bound_pix`` of its first frame."""

    n_objects: int = 0
    pairs: tuple[tuple[str, str], ...] = ()
    bound_pix: int = 0


class Job2019(NamedTuple):
    gt_dir: Path
    res_dir: Path
    video: str
    frames: tuple[str, ...]  # ground-truth files, sorted
    pred_frames: tuple[str, ...]  # prediction files from the start frame on, sorted
    input_size: tuple[int, int] | None
    record: Path


# --------------------------------------------------------------------------- scoring


def _input_labels(path: Path, labels: np.ndarray, frame_size: tuple[int, int],
                  input_size: tuple[int, int] | None, record: Path) -> np.ndarray:
    """The input-size map (h, w) uint8 of one prediction file's labels (see the module
    docstring). ``input_size`` None (unknown): a map that is not at the frame size is taken as
    it is (a 2019 ``merged/`` map), a frame-size map is an error. Raises MetricsInputError
    naming the file when the map is neither at the input size nor an exact nearest upsampling
    of an input-size map at the frame size."""
    shape = labels.shape
    if shape == input_size or (input_size is None and shape != frame_size):
        return labels
    if input_size is None:
        raise MetricsInputError(
            f"{path}: a frame-size map ({size_text(shape)}), but the dmm2019 protocol scores the "
            f"input-size maps the 2019 evaluator wrote and the input size is unknown: pass it with "
            f"--input-size H W, or keep the record {record} that python -m dmm.test writes beside the folder")
    h, w = input_size
    if shape != frame_size:
        raise MetricsInputError(
            f"{path}: size {size_text(shape)} is neither the input size {size_text(input_size)} nor the frame "
            f"size {size_text(frame_size)} of its ground truth; check --input-size, or {_RECORD_FIX}")
    if shape[0] < h or shape[1] < w:
        raise MetricsInputError(
            f"{path}: the frame ({size_text(shape)}) is smaller than the input size {size_text(input_size)} on "
            f"an axis, "
            f"so its input-size map cannot be recovered from the frame-size map")
    small = recover_input_labels(labels, input_size)
    if small is None:
        raise MetricsInputError(
            f"{path}: not a nearest (cv2.INTER_NEAREST_EXACT) upsampling of an input-size {size_text(input_size)} map, so "
            f"the dmm2019 protocol cannot score it; check --input-size, or {_RECORD_FIX}")
    return small


def score_video_2019(job: Job2019) -> VideoScores2019:
    """J and F of objects 1 .. n of one video over the file pairs of the 2019 rule."""
    gt_root, res_root = job.gt_dir / job.video, job.res_dir / job.video
    first = read_labels(gt_root / f"{job.frames[0]}.png")
    n_objects = count_objects(first)
    n_pairs = max(min(len(job.frames), len(job.pred_frames)) - 2, 0)
    pairs = tuple((job.frames[k], job.pred_frames[k]) for k in range(1, n_pairs + 1))
    bound_pix = dilation_radius(first.shape, BOUND_TH)
    if n_objects == 0:
        return VideoScores2019(job.video, (), 0, pairs, bound_pix)
    if n_pairs == 0:
        raise MetricsInputError(
            f"video {job.video}: {len(job.frames)} ground-truth and {len(job.pred_frames)} prediction "
            f"files (from the start frame {job.pred_frames[0] if job.pred_frames else '-'} on) leave no "
            f"pair to score: the 2019 protocol pairs files 1 .. min - 2 by position")
    counts_j = np.zeros((n_objects, n_pairs, 2), dtype=np.int64)
    counts_f = np.zeros((n_objects, n_pairs, 4), dtype=np.int64)
    scores_j = np.zeros((n_objects, n_pairs))
    scores_f = np.zeros((n_objects, n_pairs))
    input_size = job.input_size
    for t, (gt_name, pred_name) in enumerate(pairs):
        gt = read_labels(gt_root / f"{gt_name}.png")
        pred_path = res_root / f"{pred_name}.png"
        labels = read_labels(pred_path)
        if input_size is None and labels.shape != gt.shape:
            input_size = labels.shape  # no record: the video's first input-size map sets it
        pred = _input_labels(pred_path, labels, gt.shape, input_size, job.record)
        cj, cf, _ = frame_counts(gt, pred, n_objects)
        counts_j[:, t], counts_f[:, t] = cj, cf
        scores_j[:, t], scores_f[:, t] = jaccard_from_counts(cj), f_from_counts(cf)
    objects = tuple(
        ObjectScores2019(job.video, k + 1, job.frames[0], tuple(p[0] for p in pairs), scores_j[k], scores_f[k],
                         tuple(p[1] for p in pairs), counts_j[k], counts_f[k])
        for k in range(n_objects)
    )
    return VideoScores2019(job.video, objects, n_objects, pairs, bound_pix)


def plan_jobs_2019(gt_dir: Path, res_dir: Path, split: Sequence[SplitVideo], videos: Iterable[str] | None,
                   allow_missing: bool, input_size: tuple[int, int] | None) -> list[Job2019]:
    """One job per video of ``split`` (restricted to ``videos`` when given), in split order,
    after checking the folders and that each prediction folder holds its start frame."""
    if not res_dir.is_dir():
        raise MetricsInputError(f"results folder {res_dir} does not exist")
    if videos is not None:
        wanted = set(videos)
        unknown = sorted(wanted - {v.name for v in split})
        if unknown:
            raise MetricsInputError(f"videos not in the split meta: {listing(unknown)}")
        split = [v for v in split if v.name in wanted]
    on_disk = set(list_videos(gt_dir))
    no_gt = [v.name for v in split if v.name not in on_disk]
    if no_gt:
        raise MetricsInputError(f"ground truth {gt_dir} has no folder for {len(no_gt)} videos of the split: "
                                f"{listing(no_gt)}")
    absent = [v.name for v in split if not (res_dir / v.name).is_dir()]
    if absent and not allow_missing:
        raise missing_videos_error(res_dir, absent, len(split))
    if absent:
        logger.warning("skipping %d videos missing from %s: %s", len(absent), res_dir, listing(absent))
    record = record_of(res_dir)
    jobs = []
    for video, start in split:
        if video in absent:
            continue
        frames = list_frames(gt_dir / video)
        if not frames:
            raise MetricsInputError(f"ground-truth video {gt_dir / video} has no PNG frames")
        predicted = list_frames(res_dir / video)
        if start not in predicted:
            raise MetricsInputError(
                f"{res_dir / video / start}.png: missing; the dmm2019 protocol pairs prediction files by "
                f"position from the 2019 evaluator's start frame {start} (the first frame the split meta "
                f"lists for the video's first object)")
        from_start = tuple(f for f in predicted if f >= start)
        expected = [f for f in frames if f >= start]
        if len(from_start) != len(expected):
            logger.warning("video %s: %d prediction files from %s on, %d ground-truth files; pairs go by position",
                           video, len(from_start), start, len(expected))
        jobs.append(Job2019(gt_dir, res_dir, video, tuple(frames), from_start, input_size, record))
    if not jobs:
        raise MetricsInputError(f"results {res_dir} hold none of the {len(split)} videos to score")
    return jobs


def score_2019(gt_dir: str | os.PathLike, res_dir: str | os.PathLike, split_meta: str | os.PathLike,
               videos: Iterable[str] | None = None, processes: int | None = None, allow_missing: bool = False,
               input_size: Sequence[int] | None = None) -> list[VideoScores2019]:
    """Scores of every video of ``split_meta`` (the split json: video order and start frames),
    in its order, or of ``videos`` among them. ``input_size``: (H, W) of the network input
    (default: the results' record). ``processes``: as ``dmm.metrics.inputs.run_jobs``."""
    gt_dir, res_dir = Path(gt_dir), Path(res_dir)
    jobs = plan_jobs_2019(gt_dir, res_dir, load_split_2019(split_meta), videos, allow_missing,
                          resolve_input_size(res_dir, input_size))
    return run_jobs(jobs, processes, score_video_2019)


# --------------------------------------------------------------------------- summaries


def printed_row(table: Mapping[str, float]) -> list[str]:
    """The six numbers as the 2019 ``tools/davis_eval.py`` prints them: ``"%.3f" % np.round(x, 3)``."""
    return ["%.3f" % np.round(table[key], 3) for key in STAT_KEYS]


def summarize_2019(videos: Sequence[VideoScores2019]) -> dict:
    """The JSON summary of the 2019 protocol.

    ``global``: the dataset table (STAT_KEYS, objects pooled) plus JF_mean (see ``note``);
    ``videos``: per video the mean of its objects' statistics; ``printed``: the six numbers as
    the 2019 code prints them; ``objects``: per object its pairs, per-pair J and F with their
    pixel counts, and its statistics (with J_std, F_std); ``scored``: per video (also those
    scoring no object) ``n_objects``, ``bound_pix`` and ``pairs``.
    """
    summary = summarize(videos)
    summary["protocol"] = PROTOCOL
    summary["printed"] = printed_row(summary["global"])
    summary["note"] = JF_NOTE
    summary["objects"] = [
        {"video": obj.video, "object": obj.object_id,
         "pairs": [list(p) for p in zip(obj.frames, obj.pred_frames)],
         "J": obj.j.tolist(), "F": obj.f.tolist(),
         "counts_J": obj.counts_j.tolist(), "counts_F": obj.counts_f.tolist(),
         **(obj.statistics() or {}), **obj.std()}
        for video in videos for obj in video.objects
    ]
    summary["scored"] = {v.video: {"n_objects": v.n_objects, "bound_pix": v.bound_pix,
                                   "pairs": [list(p) for p in v.pairs]} for v in videos}
    return summary


def unscored_videos(videos: Sequence[VideoScores2019]) -> list[str]:
    """Videos whose first ground-truth frame holds no object (the 2019 rule scores nothing there)."""
    return [v.video for v in videos if v.n_objects == 0]
