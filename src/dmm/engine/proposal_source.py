"""From the proposal store to what the model matches against.

- :class:`ProposalSource` serves a frame's stored proposals to inference (a ``ProposalFn``), with
  the 2019 stand-in for a frame that has none (``PROPOSALS.EMPTY_FRAME``); the inference loop
  pastes and filters them (tight boxes of masks > 0.4, NMS at 0.4, 50 survivors).
- :class:`TrainingProposals` serves the training loader: a frame's proposals as stored; the
  training step pastes, flips and warps them alike with the frame.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..config.keys import check_choice
from ..errors import InputError
from ..proposals.store import ProposalStore
from ..structures import Proposals

log = logging.getLogger("dmm.proposals")


class ProposalSource:
    """``(video, frame index, frame name) -> Proposals`` from a folder of per-video files.

    Frames are looked up by name, or with ``by_position`` by their position in the video (the
    n-th frame gets the stored frame that sorts n-th): for frames read from a video file, whose
    names are made up, against proposals computed from the same video's frames elsewhere.

    A frame whose stored list is empty gets, with ``empty_frame="split_last"`` (the 2019
    evaluator, ``model_encoder.py``: the last entry of the split-wide ``predictions.pth``), the
    proposals of the split's last frame: the last frame of the last video of the folder
    (videos and frames in the frame-index order of ``dmm.data.frame_index``); with ``"empty"``
    it stays empty (the matching layer then sees only its padding column).
    """

    def __init__(self, store_dir: str | Path, by_position: bool = False, empty_frame: str = "split_last"):
        self.empty_frame = check_choice("PROPOSALS.EMPTY_FRAME", empty_frame)
        self.store = ProposalStore(store_dir)
        self.by_position = by_position
        self._names: dict[str, list[str]] = {}
        self._split_last: Proposals | None = None

    @classmethod
    def for_evaluation(cls, cfg_proposals) -> "ProposalSource":
        """The evaluation split's proposals: ``PROPOSALS.EVAL_DIR`` with ``PROPOSALS.EMPTY_FRAME``."""
        return cls(cfg_proposals.EVAL_DIR, empty_frame=cfg_proposals.EMPTY_FRAME)

    def __call__(self, video: str, index: int, frame: str) -> Proposals:
        found = self._stored(video, index, frame)
        if len(found) or self.empty_frame == "empty":
            return found
        log.warning("video %r frame %r has no proposals: using those of the split's last frame (PROPOSALS.EMPTY_FRAME "
                    "split_last, as the 2019 evaluator did)", video, frame)
        return self.split_last()

    def _stored(self, video: str, index: int, frame: str) -> Proposals:
        if not self.by_position:
            return self.store.get(video, frame)
        if video not in self._names:
            self._names[video] = sorted(self.store.video(video))
        names = self._names[video]
        if index >= len(names):
            raise InputError(f"video {video!r}: frame {index} ({frame!r}) has no proposals: "
                             f"{self.store.path(video)} holds {len(names)} frames")
        return self.store.get(video, names[index])

    def split_last(self) -> Proposals:
        """The stored proposals of the split's last frame (read once)."""
        if self._split_last is None:
            videos = self.store.videos
            if not videos:
                raise InputError(f"proposal folder {self.store.root} holds no <video>.pth file")
            last = videos[-1]
            self._split_last = self.store.get(last, max(self.store.counts(last)))
        return self._split_last


class TrainingProposals:
    """The training loader's proposals: ``(video, frame) -> Proposals`` as stored, and per-video counts.

    The training step pastes, flips and warps them on its device
    (:func:`~dmm.proposals.ops.prepare_training_proposals`), so the loader stays cheap.
    """

    def __init__(self, store_dir: str | Path):
        self.store = ProposalStore(store_dir)

    def __call__(self, video: str, frame: str) -> Proposals:
        return self.store.get(video, frame)

    def counts(self, video: str) -> dict[str, int]:
        """``{frame: number of proposals}`` of a video (frames without any are left out of clips)."""
        return self.store.counts(video)
