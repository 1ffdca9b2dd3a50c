"""DAVIS-protocol quality measures: J (mask IoU) and F (boundary F-measure), their
per-object mean / recall / decay, and summaries per video, overall and for YouTube-VOS
seen/unseen categories.

Numbers agree with davis2017-evaluation (semi-supervised task) on its inputs under the DAVIS
rule (``protocol="davis"``, chosen automatically for a DAVIS layout), with one deliberate
difference: the decay bin bounds are int64 where the official code casts them to uint8, which
wraps for long sequences (more than 255 scored frames; identical below). Under the YouTube-VOS
rule an object that first appears after the first frame is scored from the frame after its
first appearance on (the DAVIS rule only knows the ids of the first frame, scored on every
frame). See ``dmm.metrics.evaluate`` for what is scored and ``dmm.metrics.statistics`` for
the bins, and ``dmm.metrics.scoring`` for the choice of protocol. ``protocol="dmm2019"`` is the 2019 code's own scoring, with which the paper's table
was made (``dmm.metrics.dmm2019``).
"""

from dmm.metrics.dmm2019 import ObjectScores2019, VideoScores2019, summarize_2019
from dmm.metrics.evaluate import score_video
from dmm.metrics.inputs import PROTOCOLS, MetricsInputError, resolve_protocol
from dmm.metrics.measures import boundary_map, f_measure, frame_scores, jaccard
from dmm.metrics.results import ObjectScores, VideoScores, summarize, youtube_summary
from dmm.metrics.scoring import evaluate_folders, score_folders
from dmm.metrics.statistics import Statistics, decay_bin_bounds, sequence_statistics

__all__ = [
    "MetricsInputError",
    "ObjectScores",
    "ObjectScores2019",
    "PROTOCOLS",
    "Statistics",
    "VideoScores",
    "VideoScores2019",
    "boundary_map",
    "decay_bin_bounds",
    "evaluate_folders",
    "f_measure",
    "frame_scores",
    "jaccard",
    "resolve_protocol",
    "score_folders",
    "score_video",
    "sequence_statistics",
    "summarize",
    "summarize_2019",
    "youtube_summary",
]
