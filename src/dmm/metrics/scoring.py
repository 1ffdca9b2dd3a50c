"""The one place that chooses the scoring protocol: ``davis`` and ``youtubevos`` go to
:mod:`dmm.metrics.evaluate`, ``dmm2019`` to :mod:`dmm.metrics.dmm2019` (which never import
each other), ``auto`` by the ground truth's layout (:func:`dmm.metrics.inputs.resolve_protocol`).
"""

from __future__ import annotations

import os
from typing import Iterable, Sequence

from dmm.metrics import dmm2019
from dmm.metrics.evaluate import score_standard
from dmm.metrics.inputs import MetricsInputError, resolve_protocol
from dmm.metrics.results import VideoScores, summarize


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
    "dmm2019" or "auto". ``split_meta`` (the split json: video order and start frames) and
    ``input_size`` ((H, W) of the network input; default: the results' record) are for
    "dmm2019" only, which needs ``split_meta`` and returns ``dmm2019.VideoScores2019``
    (``extra_ids`` has no effect there: ids beyond the counted objects are ignored, as the 2019
    code did).
    """
    protocol = resolve_protocol(gt_dir, protocol)
    if protocol == "dmm2019":
        if split_meta is None:
            raise MetricsInputError("the dmm2019 protocol needs the split meta (--split-meta meta.json): its "
                                    "video order and each video's start frame define the files it pairs")
        return dmm2019.score_2019(gt_dir, res_dir, split_meta, videos, processes, allow_missing, input_size)
    if input_size is not None:
        raise MetricsInputError(f"--input-size is for the dmm2019 protocol only, not {protocol}")
    return score_standard(gt_dir, res_dir, videos, processes, allow_missing, extra_ids, protocol)


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
    J_mean, J_recall, J_decay, F_mean, F_recall, F_decay, JF_mean (see :func:`score_folders`);
    for ``"dmm2019"`` the fuller ``dmm2019.summarize_2019``."""
    scores = score_folders(gt_dir, res_dir, videos, processes, allow_missing, extra_ids, protocol,
                           split_meta=split_meta, input_size=input_size)
    if resolve_protocol(gt_dir, protocol) == "dmm2019":
        return dmm2019.summarize_2019(scores)
    return summarize(scores)
