"""DAVIS-protocol quality measures: J (mask IoU) and F (boundary F-measure), their
per-object mean / recall / decay, and summaries per video, overall and for YouTube-VOS
seen/unseen categories.

Numbers agree with davis2017-evaluation (semi-supervised task) on its inputs, with two
deliberate differences: the decay bin bounds are int64 where the official code casts them
to uint8, which wraps for long sequences (more than 255 scored frames; identical below), and an
object that first appears after the first frame is scored from the frame after its first
appearance on (the official code only knows objects of the first frame). See
``dmm.metrics.evaluate`` for what is scored and ``dmm.metrics.statistics`` for the bins.
"""

from dmm.metrics.evaluate import MetricsInputError, evaluate_folders, score_folders, score_video
from dmm.metrics.measures import boundary_map, f_measure, frame_scores, jaccard
from dmm.metrics.results import ObjectScores, VideoScores, summarize, youtube_summary
from dmm.metrics.statistics import Statistics, decay_bin_bounds, sequence_statistics

__all__ = [
    "MetricsInputError",
    "ObjectScores",
    "Statistics",
    "VideoScores",
    "boundary_map",
    "decay_bin_bounds",
    "evaluate_folders",
    "f_measure",
    "frame_scores",
    "jaccard",
    "score_folders",
    "score_video",
    "sequence_statistics",
    "summarize",
    "youtube_summary",
]
