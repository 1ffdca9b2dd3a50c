import inspect

import numpy as np
import torch

from dmm.data import YouTubeVOS
from dmm.data.frames import VideoStream

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class CountingReader:
    """Wraps a reader and counts frames read but not yet released by the consumer."""

    def __init__(self, reader):
        self.reader, self.reads = reader, []

    def __getattr__(self, name):
        return getattr(self.reader, name)

    def image(self, video, frame):
        self.reads.append(frame)
        return self.reader.image(video, frame)


def test_stream_yields_one_frame_at_a_time(late_ytvos):
    reader = CountingReader(YouTubeVOS(late_ytvos, "valid"))
    stream = VideoStream(reader, "vlate", (16, 20), MEAN, STD)
    assert len(stream) == 4
    it = iter(stream)
    assert inspect.isgenerator(it)
    assert reader.reads == []  # nothing is read up front
    first = next(it)
    assert reader.reads == ["00000"]  # exactly one frame read per step
    assert first.index == 0 and first.name == "00000" and first.size == (24, 32)
    assert first.image.shape == (3, 16, 20) and first.image.dtype == torch.float32
    assert first.annotation.shape == (24, 32) and set(np.unique(first.annotation)) == {0, 3}
    rest = list(it)
    assert [f.name for f in rest] == ["00005", "00010", "00015"]
    assert rest[0].annotation is None and set(np.unique(rest[1].annotation)) == {0, 7}
    # the stream keeps no frames: its state is the same before and after iterating
    assert set(vars(stream)) == {"reader", "video", "info", "input_size", "mean", "std", "resize"}


def test_stream_normalisation(synthetic_root):
    reader = YouTubeVOS(synthetic_root, "valid")
    video = reader.videos[0]
    h, w = reader.frame_size(video)
    frame = next(iter(VideoStream(reader, video, (h, w), MEAN, STD)))
    raw = torch.from_numpy(reader.image(video, frame.name)).permute(2, 0, 1).float() / 255
    expected = (raw - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    torch.testing.assert_close(frame.image, expected)
