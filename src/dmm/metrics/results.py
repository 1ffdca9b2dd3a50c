"""Score containers and their summaries: per object, per video, global, and YouTube-VOS
seen/unseen.

Averages follow davis2017-evaluation: the global value of a statistic is the mean over all
scored objects of all videos, a video's is the mean over its scored objects, and
JF_mean = (J_mean + F_mean) / 2. An object with no scored frame (it first appears in the
last or second-to-last ground-truth frame) has no statistics and is left out of every mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Mapping, Sequence

import numpy as np

from dmm.errors import InputError
from dmm.metrics.statistics import sequence_statistics

STAT_KEYS = ("J_mean", "J_recall", "J_decay", "F_mean", "F_recall", "F_decay")
SUMMARY_KEYS = STAT_KEYS + ("JF_mean",)


@dataclass(frozen=True)
class ObjectScores:
    """Per-frame scores of one object of one video.

    ``first_frame``: ground-truth frame where the object first appears (None for a false
    object: a predicted id the ground truth does not have). ``frames``: the n scored frames.
    ``j``, ``f``: float64 (n,).
    """

    video: str
    object_id: int
    first_frame: str | None
    frames: tuple[str, ...]
    j: np.ndarray
    f: np.ndarray

    @property
    def false_object(self) -> bool:
        return self.first_frame is None

    def statistics(self) -> dict[str, float] | None:
        """The six STAT_KEYS values, or None when no frame is scored."""
        if len(self.frames) == 0:
            return None
        j, f = sequence_statistics(self.j), sequence_statistics(self.f)
        return {
            "J_mean": j.mean, "J_recall": j.recall, "J_decay": j.decay,
            "F_mean": f.mean, "F_recall": f.recall, "F_decay": f.decay,
        }


@dataclass(frozen=True)
class VideoScores:
    video: str
    objects: tuple[ObjectScores, ...]


def _mean_summary(stats: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each STAT_KEYS value over ``stats`` (non-empty) plus JF_mean."""
    out = {key: float(np.mean([s[key] for s in stats])) for key in STAT_KEYS}
    out["JF_mean"] = (out["J_mean"] + out["F_mean"]) / 2
    return out


def summarize(videos: Sequence[VideoScores]) -> dict:
    """``{"global": {SUMMARY_KEYS}, "videos": {video: {SUMMARY_KEYS}}}``.

    Videos without any scored object are left out of "videos"; raises InputError when no
    object at all is scored.
    """
    per_video: dict[str, dict[str, float]] = {}
    all_stats: list[dict[str, float]] = []
    for video in videos:
        stats = [s for s in (obj.statistics() for obj in video.objects) if s is not None]
        if stats:
            per_video[video.video] = _mean_summary(stats)
            all_stats.extend(stats)
    if not all_stats:
        names = ", ".join(v.video for v in videos) or "(none)"
        raise InputError(f"no object has a scored frame in the videos {names} (each video needs "
                         "ground truth on at least 3 frames)")
    return {"global": _mean_summary(all_stats), "videos": per_video}


def unscored_objects(videos: Sequence[VideoScores]) -> list[ObjectScores]:
    """Objects without a scored frame (left out of every mean)."""
    return [obj for v in videos for obj in v.objects if len(obj.frames) == 0]


def youtube_summary(
    videos: Sequence[VideoScores],
    categories: Mapping[str, Mapping[int, str | None]],
    seen: Collection[str],
) -> dict[str, float | int | None] | None:
    """YouTube-VOS overall scores: J and F (object means of J_mean / F_mean) over objects of
    seen and of unseen categories, and G = mean of the four.

    ``categories``: {video: {object id: category}} (e.g. from a split meta.json);
    ``seen``: categories seen in training. Returns None (no summary) when a scored ground-truth
    object has no category. False objects (``extra_ids="score"``) have no category and are
    left out. A group without objects gets None for its J and F, and then G
    is None too. Keys: J_seen, J_unseen, F_seen, F_unseen, G, n_seen, n_unseen.
    """
    seen = set(seen)
    groups: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for video in videos:
        for obj in video.objects:
            stats = obj.statistics()
            if stats is None or obj.false_object:
                continue
            category = categories.get(video.video, {}).get(obj.object_id)
            if category is None:
                return None
            groups[category in seen].append(stats)
    out: dict[str, float | int | None] = {}
    for name, is_seen in (("seen", True), ("unseen", False)):
        group = groups[is_seen]
        out[f"J_{name}"] = float(np.mean([s["J_mean"] for s in group])) if group else None
        out[f"F_{name}"] = float(np.mean([s["F_mean"] for s in group])) if group else None
    four = [out["J_seen"], out["J_unseen"], out["F_seen"], out["F_unseen"]]
    out["G"] = None if any(v is None for v in four) else float(np.mean(four))
    out["n_seen"] = len(groups[True])
    out["n_unseen"] = len(groups[False])
    return out
