"""``VideoStream``: a video's frames one at a time, for inference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from .transforms import normalize, resize_image, to_tensor


@dataclass
class FrameInput:
    """One frame ready for the network.

    Attributes:
        index: position of the frame in the video's frame list.
        name: frame name (``00005``).
        image: (3, H, W) float, resized to the input size and ImageNet-normalised.
        annotation: (h, w) uint8 object ids at the original size, or None when the frame has
            no annotation file.
        size: (h, w) original frame size.
    """

    index: int
    name: str
    image: torch.Tensor
    annotation: np.ndarray | None
    size: tuple[int, int]


class VideoStream:
    """Iterate a video's frames in order, reading each only when it is asked for.

    Nothing is cached between frames, so memory does not grow with the video's length.
    ``len(stream)`` is the number of frames; ``stream.info`` the video's ``VideoInfo``.
    """

    def __init__(self, reader, video: str, input_size: tuple[int, int],
                 mean: Sequence[float] = (0.485, 0.456, 0.406),
                 std: Sequence[float] = (0.229, 0.224, 0.225), resize: str = "nearest"):
        self.reader = reader
        self.resize = resize
        self.video = video
        self.info = reader.info(video)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.mean, self.std = tuple(mean), tuple(std)

    def __len__(self) -> int:
        return len(self.info.frames)

    def __iter__(self) -> Iterator[FrameInput]:
        for index, name in enumerate(self.info.frames):
            yield self.read(index)

    def read(self, index: int) -> FrameInput:
        """The frame at ``index`` of the video's frame list."""
        name = self.info.frames[index]
        image = self.reader.image(self.video, name)
        return frame_input(index, name, image, self.reader.annotation(self.video, name), self.input_size,
                           self.mean, self.std, self.resize)


def frame_input(index: int, name: str, image: np.ndarray, annotation: np.ndarray | None,
                input_size: tuple[int, int], mean: Sequence[float], std: Sequence[float],
                resize: str = "nearest") -> FrameInput:
    """A decoded frame ``(h, w, 3) uint8`` made ready for the network (resized, normalised)."""
    size = (int(image.shape[0]), int(image.shape[1]))
    tensor = normalize(to_tensor(resize_image(image, input_size, resize)), mean, std)
    return FrameInput(index, name, tensor, annotation, size)
