"""Agreement with davis2017-evaluation itself, when it is installed (it is not on PyPI, so
this usually skips; the other tests re-derive its formulas)."""

from __future__ import annotations

import numpy as np
import pytest

from dmm.metrics.measures import f_measure, jaccard
from dmm.metrics.statistics import sequence_statistics

davis_metrics = pytest.importorskip("davis2017.metrics")
davis_utils = pytest.importorskip("davis2017.utils")


def test_frame_measures_and_statistics_match_official():
    rng = np.random.default_rng(3)
    gt = np.zeros((6, 48, 80), dtype=bool)
    pred = np.zeros_like(gt)
    for t in range(6):
        gt[t, 10 + t : 30 + t, 20:50] = True
        pred[t, 12 + 2 * t : 33 + t, 18 + t : 52] = True
        pred[t][rng.random((48, 80)) < 0.02] ^= True
    pred[4] = False
    official_j = davis_metrics.db_eval_iou(gt, pred)
    official_f = davis_metrics.db_eval_boundary(gt, pred)
    ours_j = np.array([jaccard(g, p) for g, p in zip(gt, pred)])
    ours_f = np.array([f_measure(g, p) for g, p in zip(gt, pred)])
    np.testing.assert_allclose(ours_j, official_j, atol=1e-6)
    np.testing.assert_allclose(ours_f, official_f, atol=1e-6)
    for x in (ours_j, ours_f):
        np.testing.assert_allclose(sequence_statistics(x), davis_utils.db_statistics(x), atol=1e-6)
