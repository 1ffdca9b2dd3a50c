import shutil

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from dmm.config import load_config
from dmm.data import build_reader
from dmm.checkpointing import save_checkpoint
from dmm.model.dmmnet import DMMNet
from dmm.cli import run
from dmm.segment import main
from dmm.segment import read_first_mask, read_frames

SMALL = ["MODEL.BACKBONE", "resnet18", "MODEL.PRETRAINED", "none", "DATA.INPUT_H", "64", "DATA.INPUT_W", "112",
         "DEVICE", "cpu"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    cfg = load_config("synthetic", SMALL)
    torch.manual_seed(0)
    model = DMMNet.from_config(cfg)
    path = tmp_path_factory.mktemp("ckpt") / "epo00_iter00000"
    save_checkpoint(path, model, {}, cfg, 0, 0)
    return path


def test_segment_a_folder_of_frames(synthetic_root, synthetic_proposals, checkpoint, tmp_path):
    reader = build_reader(load_config("synthetic", ["DATA.ROOT", str(synthetic_root)]).DATA, "valid")
    # the user's mask: the objects of the video's first frame (later ones are simply not asked for)
    video = next(v for v in reader.videos if reader.annotation(v, reader.info(v).frames[0]).any())
    frames = reader.info(video).frames
    first = reader.annotation(video, frames[0])
    mask = tmp_path / "first.png"
    Image.fromarray(first).save(mask)  # a grayscale PNG of ids, as a user might write it
    rc = run(main, ["--input", str(synthetic_root / "valid" / "JPEGImages" / video), "--mask", str(mask),
                       "--checkpoint", str(checkpoint), "--proposals", str(synthetic_proposals / "valid"),
                       "--out", str(tmp_path / "out"), "--name", video, "--config", "synthetic", *SMALL])
    assert rc == 0
    written = sorted(p.stem for p in (tmp_path / "out" / "masks").iterdir())
    assert written == frames
    labels = np.array(Image.open(tmp_path / "out" / "masks" / f"{frames[0]}.png"))
    assert np.array_equal(labels, first)
    later = np.array(Image.open(tmp_path / "out" / "masks" / f"{frames[-1]}.png"))
    assert later.shape == first.shape and set(np.unique(later)) <= set(np.unique(first))
    gif = tmp_path / "out" / "overlay.gif"
    assert gif.is_file() and Image.open(gif).n_frames == len(frames)


def test_segment_reports_bad_input(synthetic_root, checkpoint, tmp_path, capsys):
    video_dir = next((synthetic_root / "valid" / "JPEGImages").iterdir())
    empty = tmp_path / "empty.png"
    Image.fromarray(np.zeros((72, 128), np.uint8)).save(empty)
    args = ["--input", str(video_dir), "--checkpoint", str(checkpoint), "--proposals", str(tmp_path),
            "--out", str(tmp_path / "out"), "--config", "synthetic", *SMALL]
    assert run(main, [*args[:2], "--mask", str(empty), *args[2:]]) == 2
    assert "no object" in capsys.readouterr().err
    wrong = tmp_path / "wrong.png"
    Image.fromarray(np.ones((10, 10), np.uint8)).save(wrong)
    assert run(main, [*args[:2], "--mask", str(wrong), *args[2:]]) == 2
    assert "wrong.png" in capsys.readouterr().err
    ok = tmp_path / "ok.png"
    Image.fromarray(np.pad(np.ones((10, 10), np.uint8), ((0, 62), (0, 118)))).save(ok)
    assert run(main, [*args[:2], "--mask", str(ok), *args[2:]]) == 2  # no <name>.pth in --proposals
    assert "video.pth" in capsys.readouterr().err


def test_read_frames_from_a_video_file(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    for i in range(4):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    frames = list(read_frames(path))
    assert [name for name, _ in frames] == ["00000", "00001", "00002", "00003"]
    assert all(image.shape == (48, 64, 3) for _, image in frames)
    with pytest.raises(FileNotFoundError, match="no such frame folder"):
        list(read_frames(tmp_path / "missing.mp4"))


def test_segment_computes_proposals_with_a_proposal_net(synthetic_root, checkpoint, tmp_path):
    from dmm.proposals.model import build_maskrcnn

    torch.manual_seed(0)
    propnet = tmp_path / "propnet.pth"
    torch.save(build_maskrcnn("resnet18_fpn", num_classes=2, min_size=64, max_size=128).state_dict(), propnet)
    frames_dir = tmp_path / "frames"
    video_dir = next((synthetic_root / "valid" / "JPEGImages").iterdir())
    frames_dir.mkdir()
    for jpg in sorted(video_dir.iterdir())[:3]:
        shutil.copy(jpg, frames_dir / jpg.name)
    first = np.zeros((72, 128), np.uint8)
    first[20:40, 30:60] = 255  # a 0/255 mask: one object
    Image.fromarray(first).save(tmp_path / "mask.png")
    rc = run(main, ["--input", str(frames_dir), "--mask", str(tmp_path / "mask.png"), "--checkpoint", str(checkpoint),
                       "--propnet", str(propnet), "--propnet-arch", "resnet18_fpn", "--propnet-size", "64", "128",
                       "--out", str(tmp_path / "out"), "--config", "synthetic", *SMALL])
    assert rc == 0
    assert not (tmp_path / "out" / "work").exists()  # frames go straight to the tracker: nothing staged
    masks = sorted(p.name for p in (tmp_path / "out" / "masks").iterdir())
    assert masks == [f"{p.stem}.png" for p in sorted(frames_dir.iterdir())]
    labels = np.array(Image.open(tmp_path / "out" / "masks" / masks[0]))
    assert set(np.unique(labels)) == {0, 1}


def test_segment_a_video_file_with_proposals_matched_by_position(synthetic_root, synthetic_proposals, checkpoint,
                                                                 tmp_path):
    reader = build_reader(load_config("synthetic", ["DATA.ROOT", str(synthetic_root)]).DATA, "valid")
    video = next(v for v in reader.videos if reader.annotation(v, reader.info(v).frames[0]).any())
    frames = reader.info(video).frames
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (128, 72))
    for f in frames:
        writer.write(cv2.cvtColor(reader.image(video, f), cv2.COLOR_RGB2BGR))
    writer.release()
    Image.fromarray(reader.annotation(video, frames[0])).save(tmp_path / "first.png")
    rc = run(main, ["--input", str(path), "--mask", str(tmp_path / "first.png"), "--checkpoint", str(checkpoint),
                    "--proposals", str(synthetic_proposals / "valid"), "--out", str(tmp_path / "out"),
                    "--name", video, *SMALL])  # no --config: the one saved beside the checkpoint
    assert rc == 0
    assert sorted(p.stem for p in (tmp_path / "out" / "masks").iterdir()) == [f"{i:05d}" for i in range(len(frames))]


def test_an_anti_aliased_grey_mask_is_one_object(tmp_path, capsys):
    grey = np.zeros((40, 60), np.uint8)
    grey[10:30, 20:40] = 255
    grey[9, 20:40] = 90  # anti-aliased edges, as drawing tools save them
    grey[30, 20:40] = 170
    Image.fromarray(grey).save(tmp_path / "grey.png")
    mask, note = read_first_mask(tmp_path / "grey.png", (40, 60))
    assert set(np.unique(mask)) == {0, 1} and mask[30, 25] == 1 and mask[9, 25] == 0
    assert "one object" in note
    ids = np.zeros((40, 60), np.uint8)
    ids[:5, :5], ids[-5:, -5:] = 1, 3
    Image.fromarray(ids).save(tmp_path / "ids.png")
    mask, note = read_first_mask(tmp_path / "ids.png", (40, 60))
    assert set(np.unique(mask)) == {0, 1, 3} and note is None
