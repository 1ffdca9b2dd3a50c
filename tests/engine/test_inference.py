import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from dmm.data import build_reader
from dmm.engine.baselines import hungarian_step, mask_iou, run_baseline
from dmm.engine.inference import Segmenter, compose_labels, segment_videos
from dmm.engine.proposal_source import ProposalSource
from dmm.model.dmmnet import DMMNet

from .conftest import small_config


def relabel_video(root, video, mapping):
    """Give ``video`` of a copied valid split other object ids (annotations, ground truth, meta)."""
    for folder in ("Annotations", "GroundTruth"):
        for png in (root / "valid" / folder / video).glob("*.png"):
            with Image.open(png) as im:
                pal, arr = im.getpalette(), np.array(im)
            out = arr.copy()
            for old, new in mapping.items():
                out[arr == old] = new
            im = Image.fromarray(out, mode="P")
            im.putpalette(pal)
            im.save(png)
    meta_path = root / "valid" / "meta.json"
    meta = json.loads(meta_path.read_text())
    objs = meta["videos"][video]["objects"]
    meta["videos"][video]["objects"] = {str(mapping.get(int(k), int(k))): v for k, v in objs.items()}
    meta_path.write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def valid_copy(synthetic_root, synthetic_proposals, tmp_path_factory):
    root = tmp_path_factory.mktemp("valid_copy") / "root"
    shutil.copytree(synthetic_root, root)
    video = sorted((root / "valid" / "JPEGImages").iterdir())[0].name
    old = sorted(int(k) for k in json.loads((root / "valid" / "meta.json").read_text())["videos"][video]["objects"])
    new = [3, 7, 9, 11, 13, 17, 19][: len(old)]
    relabel_video(root, video, dict(zip(old, new)))
    return root, video, set(new)


def late_objects(reader):
    return {v: [o.id for o in reader.info(v).objects.values() if o.first_index > 0] for v in reader.videos}


def test_inference_writes_every_frame_with_original_ids_and_size(valid_copy, synthetic_proposals, tmp_path):
    root, relabelled, new_ids = valid_copy
    cfg = small_config(root, synthetic_proposals, tmp_path / "run", "TEST.BATCH_VIDEOS", "3")
    reader = build_reader(cfg.DATA, "valid")
    assert any(late_objects(reader).values()), "the tiny valid set should have a late-appearing object"
    torch.manual_seed(0)
    model = DMMNet.from_config(cfg).eval()
    out = tmp_path / "merged"
    ran = segment_videos(Segmenter(model, cfg, torch.device("cpu")), reader, reader.videos,
                         ProposalSource(cfg.PROPOSALS.EVAL_DIR), out, batch_videos=3, show_progress=False)
    assert sorted(ran) == reader.videos
    assert sorted(p.name for p in out.iterdir()) == reader.videos
    for video in reader.videos:
        info = reader.info(video)
        pngs = sorted(p.stem for p in (out / video).iterdir())
        assert pngs == info.frames
        h, w = reader.frame_size(video)
        for frame in info.frames:
            with Image.open(out / video / f"{frame}.png") as im:
                assert im.mode == "P" and im.size == (w, h)
                labels = np.array(im)
            index = info.frames.index(frame)
            allowed = {0} | {o.id for o in info.objects.values() if o.first_index <= index}
            assert set(np.unique(labels).tolist()) <= allowed, (video, frame)
            # at its first frame an object is written exactly as annotated
            for o in info.objects.values():
                if o.first_index == index:
                    ann = reader.annotation(video, frame)
                    assert np.array_equal(labels == o.id, ann == o.id), (video, frame, o.id)
    assert set(reader.info(relabelled).objects) == new_ids
    # a rerun skips finished videos
    assert segment_videos(Segmenter(model, cfg, torch.device("cpu")), reader, reader.videos,
                          ProposalSource(cfg.PROPOSALS.EVAL_DIR), out, show_progress=False) == []


def test_batched_inference_equals_one_video_at_a_time(synthetic_root, synthetic_proposals, tmp_path):
    cfg = small_config(synthetic_root, synthetic_proposals, tmp_path / "run")
    reader = build_reader(cfg.DATA, "valid")
    torch.manual_seed(1)
    model = DMMNet.from_config(cfg).eval()
    seg = Segmenter(model, cfg, torch.device("cpu"))
    fn = ProposalSource(cfg.PROPOSALS.EVAL_DIR)
    segment_videos(seg, reader, reader.videos, fn, tmp_path / "one", batch_videos=1, show_progress=False)
    segment_videos(seg, reader, reader.videos, fn, tmp_path / "many", batch_videos=4, show_progress=False)
    for png in (tmp_path / "one").rglob("*.png"):
        a = np.array(Image.open(png))
        b = np.array(Image.open(tmp_path / "many" / png.relative_to(tmp_path / "one")))
        assert (a != b).mean() < 1e-3, png


def test_compose_labels_argmax_with_background():
    probs = torch.zeros(3, 4, 4)
    probs[0, :2] = 0.9
    probs[1, 2:] = 0.3  # below background (1 - 0.3 = 0.7)
    probs[2, :, :1] = 0.95
    labels = compose_labels(probs, torch.tensor([True, True, False]), [4, 6, 9], (4, 4))
    assert labels.dtype == np.uint8
    assert (labels[:2] == 4).all() and (labels[2:] == 0).all()


def test_hungarian_step_follows_best_overlap():
    prev = torch.zeros(2, 6, 6)
    prev[0, :3, :3] = 1
    prev[1, 3:, 3:] = 1
    props = torch.zeros(3, 6, 6)
    props[0, 3:, 2:] = 1  # overlaps object 1
    props[1, :3, 1:4] = 1  # overlaps object 0
    props[2, 0, 5] = 1  # overlaps nothing
    out = hungarian_step(prev, props)
    assert torch.equal(out[0], props[1]) and torch.equal(out[1], props[0])
    assert mask_iou(prev > 0.5, props > 0.5).shape == (2, 3)
    assert torch.equal(hungarian_step(prev, props[:0]), prev)


@pytest.mark.parametrize("name", ["copy_first", "iou_hungarian"])
def test_baselines_write_every_frame(name, synthetic_root, synthetic_proposals, tmp_path):
    cfg = small_config(synthetic_root, synthetic_proposals, tmp_path / "run")
    reader = build_reader(cfg.DATA, "valid")
    run_baseline(name, reader, reader.videos, ProposalSource(cfg.PROPOSALS.EVAL_DIR), tmp_path / name, cfg,
                 show_progress=False)
    for video in reader.videos:
        info = reader.info(video)
        assert sorted(p.stem for p in (tmp_path / name / video).iterdir()) == info.frames
        first = info.frames[0]
        labels = np.array(Image.open(tmp_path / name / video / f"{first}.png"))
        ann = reader.annotation(video, first)
        assert np.array_equal(labels, ann)
