"""Small typed containers describing a video and its objects."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ObjectInfo:
    """One annotated object of a video.

    Attributes:
        id: the object's original id (the pixel value in the annotations; need not be contiguous).
        first_frame: name of the first annotated frame where the object is present: the frame
            whose mask is the object's reference (it may come after the video's first frame).
        first_index: position of ``first_frame`` in ``VideoInfo.frames``.
        category: category name from the dataset's meta, or None.
        frames: names of the frames the dataset's meta lists for the object (empty when the
            dataset has no meta, as DAVIS).
    """

    id: int
    first_frame: str
    first_index: int
    category: str | None = None
    frames: tuple[str, ...] = ()


@dataclass(frozen=True)
class VideoInfo:
    """A video: its frame names (the JPEGImages listing, sorted) and its objects (sorted by id).

    ``start``: where the 2019 evaluator started this video, when its split has a rule of its own
    (YouTube-VOS ``trainval``: the first frame its meta lists for the object it lists first), or
    None (the earliest frame holding an object).
    """

    name: str
    frames: list[str]
    objects: dict[int, ObjectInfo] = field(default_factory=dict)
    start: str | None = None

    @property
    def object_ids(self) -> list[int]:
        return list(self.objects)

    def first_appearances(self) -> dict[str, list[int]]:
        """``{frame: [ids of objects whose reference mask is given at that frame]}``."""
        out: dict[str, list[int]] = {}
        for obj in self.objects.values():
            out.setdefault(obj.first_frame, []).append(obj.id)
        return out
