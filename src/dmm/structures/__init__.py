"""Small typed containers passed between the stages (a leaf: of ours it imports only the
config's choice table).

- :class:`Proposals`: one frame's mask proposals, from the store to the model.
- :class:`VideoInfo` / :class:`ObjectInfo`: a video's frames and objects.
- :class:`SlotRule` / :class:`ObjectPlan`: ``MODEL.OBJECTS``, which object lives in which slot.
- :class:`TrackState`: what a tracker (and a training clip) carries from one frame to the next.
"""

from .proposals import MaskMode, Proposals
from .slots import ObjectPlan, SlotRule
from .track import TrackState
from .video import ObjectInfo, VideoInfo

__all__ = ["MaskMode", "ObjectInfo", "ObjectPlan", "Proposals", "SlotRule", "TrackState", "VideoInfo"]
