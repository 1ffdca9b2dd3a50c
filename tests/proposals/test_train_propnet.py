import pytest
import torch

from dmm.data import YouTubeVOS
from dmm.proposals import extract, train_propnet
from dmm.proposals.model import load_maskrcnn
from dmm.proposals.store import ProposalStore

SMALL = dict(min_size=64, max_size=128)
# fewer region proposals and sampled rois than the defaults: the same code, less CPU time
FAST = dict(SMALL, rpn_pre_nms_top_n_train=300, rpn_post_nms_top_n_train=100,
            rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=100, box_batch_size_per_image=64)


def _batch_loss(model, dataset, idx):
    torch.manual_seed(123)  # the roi samplers draw from the global generator
    model.train()
    batch = [dataset[i] for i in idx]
    with torch.no_grad():
        return sum(model([b[0] for b in batch], [b[1] for b in batch]).values()).item()


def test_training_reduces_loss_resumes_and_feeds_extractor(synthetic_root, tmp_path):
    reader = YouTubeVOS(synthetic_root, "train_all")
    data = train_propnet.VideoInstanceFrames(reader)
    assert len(data) == 12
    image, target = data[0]
    assert target["labels"].eq(1).all() and target["masks"].shape[1:] == image.shape[1:]
    assert (target["boxes"][:, 2:] > target["boxes"][:, :2]).all()

    torch.manual_seed(0)
    model = train_propnet.binary_maskrcnn(None, "resnet18_fpn", **FAST)
    idx = [0, 5, 10]
    before = _batch_loss(model, data, idx)
    out = tmp_path / "propnet"
    kw = dict(batch_size=3, lr=0.01, checkpoint_period=3, warmup=2, progress=False)
    losses = train_propnet.train(model, data, out, "resnet18_fpn", 3, **kw)
    assert len(losses) == 3 and (out / "epo00_iter00003" / "trainer.pt").is_file()
    # a fresh run resumes at iteration 4
    torch.manual_seed(0)
    model2 = train_propnet.binary_maskrcnn(None, "resnet18_fpn", **FAST)
    more = train_propnet.train(model2, data, out, "resnet18_fpn", 8, **{**kw, "keep": 1})
    assert len(more) == 5
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["epo00_iter00008"]  # retention
    after = _batch_loss(model2, data, idx)
    assert after < 0.95 * before, (before, after)

    # the checkpoint loads into the extractor (arch and classes come from the file)
    net = load_maskrcnn(out / "model_final.pth", "resnext101_32x8d_fpn", **SMALL)
    assert net.roi_heads.box_predictor.cls_score.out_features == 2
    video = reader.videos[0]
    assert extract.main(["--root", str(synthetic_root), "--split", "train_all", "--out",
                         str(tmp_path / "props"), "--weights", str(out / "model_final.pth"),
                         "--min-size", "64", "--max-size", "128", "--device", "cpu",
                         "--videos", video]) == 0
    assert sorted(ProposalStore(tmp_path / "props").video(video)) == reader.frames(video)


def test_online_uses_first_frames_only(synthetic_root):
    reader = YouTubeVOS(synthetic_root, "valid")
    data = train_propnet.VideoInstanceFrames(reader, first_frames_only=True)
    expected = {(v, f) for v in reader.videos for f in reader.info(v).first_appearances()}
    assert set(data.items) == expected
    for i in range(len(data)):
        assert len(data[i][1]["boxes"]) > 0


def test_coco_instances_are_foreground_targets(tmp_path):
    import json

    import numpy as np
    from PIL import Image

    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / "images" / "a.jpg")
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / "images" / "b.jpg")
    square = [[10, 10, 30, 10, 30, 30, 10, 30]]
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 40, "width": 60},
                   {"id": 2, "file_name": "b.jpg", "height": 40, "width": 60}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "segmentation": square, "area": 400,
             "bbox": [10, 10, 20, 20], "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 1, "segmentation": square, "area": 400,
             "bbox": [10, 10, 20, 20], "iscrowd": 1},  # crowd only: image skipped
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
    }
    (tmp_path / "instances.json").write_text(json.dumps(coco))
    data = train_propnet.CocoInstanceImages(tmp_path / "instances.json", tmp_path / "images")
    assert len(data) == 1
    image, target = data[0]
    assert image.shape == (3, 40, 60) and target["labels"].tolist() == [1]
    assert target["boxes"].tolist() == [[10, 10, 30, 30]]  # pixels 10..29, half-open
    assert target["masks"].shape == (1, 40, 60) and target["masks"].sum() > 300



def test_the_training_view_of_a_maskrcnn_benchmark_net(synthetic_root):
    from dmm.proposals.legacy_net import LegacyMaskRCNN
    from dmm.proposals.legacy_net.training import (benchmark_checkpoint_state, load_benchmark_checkpoint_state,
                                                   training_view)
    from dmm.proposals.legacy_net.weights import benchmark_state_dict

    torch.manual_seed(0)
    net = LegacyMaskRCNN("legacy_r50_fpn", 2)
    view = training_view(net, rpn_pre_nms_top_n_train=300, rpn_post_nms_top_n_train=100,
                         box_batch_size_per_image=64, **SMALL)
    state = benchmark_checkpoint_state(view)
    assert state.keys() == benchmark_state_dict(net).keys()  # maskrcnn-benchmark's names, anchors included
    assert view.backbone.body is net.backbone.body and view.roi_heads.mask_predictor is net.roi_heads.mask_predictor
    data = train_propnet.VideoInstanceFrames(YouTubeVOS(synthetic_root, "train_all"))
    image, target = data[0]
    view.train()
    losses = view([image], [target])
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
    sum(losses.values()).backward()
    assert net.backbone.body.layer1[0].conv1.weight.grad is None  # stem and layer1 frozen (FREEZE_CONV_BODY_AT 2)
    assert net.backbone.body.layer4[0].conv1.weight.grad is not None
    with torch.no_grad():
        net.roi_heads.box_predictor.cls_score.bias.add_(1.0)
    load_benchmark_checkpoint_state(view, state)  # back to the saved weights
    assert torch.equal(net.roi_heads.box_predictor.cls_score.bias, state["roi_heads.box.predictor.cls_score.bias"])


@pytest.mark.slow
def test_fine_tuning_starts_from_a_maskrcnn_benchmark_checkpoint(synthetic_root, tmp_path):
    from dmm.proposals.legacy_net import LegacyMaskRCNN
    from dmm.proposals.legacy_net.weights import benchmark_state_dict
    from dmm.proposals.model import load_propnet

    torch.manual_seed(0)
    coco = LegacyMaskRCNN("legacy_r50_fpn", 81)  # as a COCO checkpoint: new 2-class heads
    start = benchmark_state_dict(coco)
    torch.save({"model": {f"module.{k}": v for k, v in start.items()}}, tmp_path / "coco.pth")
    fast = dict(rpn_pre_nms_top_n_train=300, rpn_post_nms_top_n_train=100, box_batch_size_per_image=64, **SMALL)
    model, arch = train_propnet.binary_propnet(str(tmp_path / "coco.pth"), "auto", **fast)
    assert arch == "legacy_r50_fpn" and model.roi_heads.box_predictor.cls_score.out_features == 2
    frozen = model.backbone.body.layer1[0].conv1.weight
    data = train_propnet.VideoInstanceFrames(YouTubeVOS(synthetic_root, "train_all"))
    out = tmp_path / "propnet"
    losses = train_propnet.train(model, data, out, arch, 2, batch_size=1, checkpoint_period=1, warmup=1,
                                 progress=False)
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    saved = torch.load(out / "model_final.pth", weights_only=True)
    assert saved["arch"] == "legacy_r50_fpn" and "backbone.body.stem.conv1.weight" in saved["model"]
    assert torch.equal(saved["model"]["backbone.body.layer1.0.conv1.weight"], frozen)  # FREEZE_CONV_BODY_AT 2
    for key, trained in (("backbone.body.layer1.0.conv1.weight", False), ("backbone.body.layer4.0.conv1.weight", True)):
        assert torch.equal(saved["model"][key], start[key]) != trained, key
    net = load_propnet(out / "model_final.pth")  # a maskrcnn-benchmark net again, for extraction
    assert isinstance(net, LegacyMaskRCNN) and net.num_classes == 2
    # a rerun resumes from the newest checkpoint (the training view reads maskrcnn-benchmark's names)
    model2, _ = train_propnet.binary_propnet(str(tmp_path / "coco.pth"), "auto", **fast)
    assert len(train_propnet.train(model2, data, out, arch, 3, batch_size=1, checkpoint_period=1, warmup=1,
                                   progress=False)) == 1
