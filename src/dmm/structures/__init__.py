"""Small typed containers passed between the stages (a leaf: imports nothing of ours).

- :class:`Proposals`: one frame's mask proposals, from the store to the model.
- :class:`VideoInfo` / :class:`ObjectInfo`: a video's frames and objects.
- :class:`TrackState`: what a tracker carries from one frame to the next.
"""

from .proposals import MaskMode, Proposals
from .track import TrackState
from .video import ObjectInfo, VideoInfo

__all__ = ["MaskMode", "ObjectInfo", "Proposals", "TrackState", "VideoInfo"]
