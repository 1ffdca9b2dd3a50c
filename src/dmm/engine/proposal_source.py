"""From the proposal store to what the model matches against.

- :class:`ProposalSource` serves a frame's stored proposals to inference (a ``ProposalFn``);
  the inference loop pastes and filters them (tight boxes of masks > 0.4, NMS at 0.4, top 50).
- :class:`TrainingProposals` serves the training loader: a frame's proposals as stored; the
  training step pastes, flips and warps them alike with the frame.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..proposals.store import ProposalStore
from ..structures import Proposals


class ProposalSource:
    """``(video, frame index, frame name) -> Proposals`` from a folder of per-video files.

    Frames are looked up by name, or with ``by_position`` by their position in the video (the
    n-th frame gets the stored frame that sorts n-th): for frames read from a video file, whose
    names are made up, against proposals computed from the same video's frames elsewhere.
    """

    def __init__(self, store_dir: str | Path, by_position: bool = False):
        self.store = ProposalStore(store_dir)
        self.by_position = by_position
        self._names: dict[str, list[str]] = {}

    def __call__(self, video: str, index: int, frame: str) -> Proposals:
        if not self.by_position:
            return self.store.get(video, frame)
        if video not in self._names:
            self._names[video] = sorted(self.store.video(video))
        names = self._names[video]
        if index >= len(names):
            raise InputError(f"video {video!r}: frame {index} ({frame!r}) has no proposals: "
                             f"{self.store.path(video)} holds {len(names)} frames")
        return self.store.get(video, names[index])


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
