"""maskrcnn-benchmark's proposal nets (``dmm.proposals.legacy_net``): loading, bad files, layout.

The numbers are checked against maskrcnn-benchmark itself in ``tests/faithfulness/
test_propnet.py``; here: Detectron pickles renamed as maskrcnn-benchmark's c2 loader does (on a
file written in that layout by this test's own name table), checkpoints with and without
``module.``, the architecture read from the file, and every bad input as one named error.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from dmm.cli import run
from dmm.errors import InputError, UnsafePickleError
from dmm.proposals import extract
from dmm.proposals.legacy_net import LegacyMaskRCNN, LegacySettings
from dmm.proposals.legacy_net.box_ops import decode_boxes, legacy_nms
from dmm.proposals.legacy_net.rpn import RPNSettings
from dmm.proposals.legacy_net.weights import benchmark_state_dict
from dmm.proposals.model import build_maskrcnn, load_propnet

SMALL = dict(min_size=64, max_size=128)
#: fewer RPN proposals than the config's 1000: the same code, less CPU time
FEW = LegacySettings(rpn=RPNSettings(pre_nms_top_n=200, post_nms_top_n=200, fpn_post_nms_top_n=100))


def detectron_blobs(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """A maskrcnn-benchmark state dict in Detectron's blob names (the FPN Mask R-CNN layout of
    ``model_final.pkl``: affine batch norms ``_s`` / ``_b`` without running statistics)."""
    blocks = {}
    for key in state:
        parts = key.split(".")
        if parts[:2] == ["backbone", "body"] and parts[2].startswith("layer"):
            blocks[int(parts[2][5:])] = max(blocks.get(int(parts[2][5:]), 0), int(parts[3]))
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        kind = parts[-1]
        wb = {"weight": "w", "bias": "b"}.get(kind)
        sb = {"weight": "s", "bias": "b"}.get(kind)
        if kind in ("running_mean", "running_var") or "anchor_generator" in key:
            continue
        if key.startswith("backbone.body.stem.conv1."):
            name = "conv1_w"
        elif key.startswith("backbone.body.stem.bn1."):
            name = f"res_conv1_bn_{sb}"
        elif key.startswith("backbone.body.layer"):
            stage, block, module = int(parts[2][5:]) + 1, parts[3], parts[4]
            if module == "downsample":
                name = f"res{stage}_{block}_branch1_" + (wb if parts[5] == "0" else f"bn_{sb}")
            else:
                branch = "abc"[int(module[-1]) - 1]
                name = f"res{stage}_{block}_branch2{branch}_" + (wb if module.startswith("conv") else f"bn_{sb}")
        elif key.startswith("backbone.fpn.fpn_inner"):
            i = int(parts[2][-1])
            name = f"fpn_inner_res{i + 1}_{blocks[i]}_sum{'_lateral' if i < 4 else ''}_{wb}"
        elif key.startswith("backbone.fpn.fpn_layer"):
            i = int(parts[2][-1])
            name = f"fpn_res{i + 1}_{blocks[i]}_sum_{wb}"
        elif key.startswith("rpn.head."):
            name = {"conv": "conv_rpn_fpn2", "cls_logits": "rpn_cls_logits_fpn2",
                    "bbox_pred": "rpn_bbox_pred_fpn2"}[parts[2]] + f"_{wb}"
        elif parts[-2].startswith("mask_fcn") and parts[-2] != "mask_fcn_logits":
            name = f"_[mask]_fcn{parts[-2][-1]}_{wb}"
        else:  # fc6, fc7, cls_score, bbox_pred, conv5_mask, mask_fcn_logits
            name = f"{parts[-2]}_{wb}"
        out[name] = value.numpy().copy()
    return out


@pytest.fixture(scope="module")
def r50_source():
    """A random 81-class R-50-FPN with non-trivial affine batch norms (what Detectron stores)."""
    torch.manual_seed(0)
    model = LegacyMaskRCNN("legacy_r50_fpn", 81, FEW).eval()
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith(".weight"):
                buf.uniform_(0.5, 1.5)
            elif name.endswith(".bias"):
                buf.uniform_(-0.2, 0.2)
    return model


@pytest.fixture(scope="module")
def frame():
    return np.random.default_rng(0).integers(0, 256, (48, 80, 3), dtype=np.uint8)


def test_detectron_pickle_is_renamed_as_maskrcnn_benchmark_does(r50_source, frame, tmp_path):
    state = benchmark_state_dict(r50_source)
    blobs = detectron_blobs(state)
    assert len(blobs) == len([k for k in state if not k.endswith(("running_mean", "running_var"))]) - 5
    blobs["res2_0_branch2a_w_momentum"] = np.zeros(1, np.float32)  # training state: dropped
    path = tmp_path / "model_final.pkl"
    with open(path, "wb") as f:
        pickle.dump({"blobs": blobs, "cfg": "MODEL:\n  TYPE: generalized_rcnn\n"}, f, protocol=2)
    model = load_propnet(path)
    assert model.arch == "legacy_r50_fpn" and model.num_classes == 81
    loaded = benchmark_state_dict(model)
    assert sorted(loaded) == sorted(state)
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key  # running statistics: 0 and 1 on both sides
    model.settings = FEW
    model.configure(**SMALL)
    r50_source.configure(**SMALL)
    (a,), (b,) = r50_source([frame]), model([frame])
    assert torch.equal(a.boxes, b.boxes) and torch.equal(a.masks, b.masks) and torch.equal(a.labels, b.labels)


def test_checkpoints_with_and_without_module_prefix_and_the_stride_of_r50(r50_source, tmp_path):
    state = benchmark_state_dict(r50_source)
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "iteration": 7}, tmp_path / "a.pth")
    torch.save(state, tmp_path / "b.pth")
    for name in ("a.pth", "b.pth"):
        model = load_propnet(tmp_path / name, "legacy_r50_fpn")
        assert model.num_classes == 81 and torch.equal(benchmark_state_dict(model)["backbone.body.stem.conv1.weight"],
                                                       state["backbone.body.stem.conv1.weight"])
    body = r50_source.backbone.body  # the MSRA ResNet: stride in the first 1x1 conv of a stage
    assert body.layer2[0].conv1.stride == (2, 2) and body.layer2[0].conv2.stride == (1, 1)
    with torch.device("meta"):
        x101 = LegacyMaskRCNN("legacy_x101_32x8d_fpn", 2)
    assert x101.backbone.body.layer2[0].conv2.stride == (2, 2) and x101.backbone.body.layer2[0].conv2.groups == 32


def test_wrong_architecture_or_class_count_names_the_keys(r50_source, synthetic_root, tmp_path, capsys):
    state = benchmark_state_dict(r50_source)
    odd = dict(state)
    del odd["roi_heads.mask.predictor.conv5_mask.weight"]
    odd["roi_heads.keypoint.predictor.kps_score.weight"] = torch.zeros(1)
    torch.save({"model": odd}, tmp_path / "odd.pth")
    with pytest.raises(InputError, match=r"odd\.pth does not fit a legacy_r50_fpn.*missing keys: "
                                         r"roi_heads\.mask\.predictor\.conv5_mask\.weight; unexpected keys: "
                                         r"roi_heads\.keypoint\.predictor\.kps_score\.weight"):
        load_propnet(tmp_path / "odd.pth")
    code = run(extract.main, ["--root", str(synthetic_root), "--split", "valid", "--out", str(tmp_path / "o"),
                              "--weights", str(tmp_path / "odd.pth")])
    (line,) = capsys.readouterr().err.splitlines()
    assert code == 2 and line.startswith("error: ") and "odd.pth" in line and "conv5_mask" in line
    assert not (tmp_path / "o").exists()
    classes = dict(state, **{"roi_heads.box.predictor.cls_score.weight": torch.zeros(2, 1024),
                             "roi_heads.box.predictor.cls_score.bias": torch.zeros(2)})
    torch.save({"model": classes}, tmp_path / "classes.pth")
    with pytest.raises(InputError, match=r"classes\.pth: wrongly shaped weights .* 2 classes: "
                                         r"roi_heads\.box\.predictor\.bbox_pred\.bias \(324,\)"):
        load_propnet(tmp_path / "classes.pth")
    with pytest.raises(InputError, match=r"holds a legacy_r50_fpn model, not the legacy_x101_32x8d_fpn"):
        load_propnet(tmp_path / "classes.pth", "legacy_x101_32x8d_fpn")
    torch.manual_seed(0)
    torch.save(build_maskrcnn("resnet18_fpn", 2, **SMALL).state_dict(), tmp_path / "tv.pth")
    with pytest.raises(InputError, match=r"tv\.pth is not a maskrcnn-benchmark checkpoint"):
        load_propnet(tmp_path / "tv.pth", "legacy_x101_32x8d_fpn")
    anchors = dict(state, **{"rpn.anchor_generator.cell_anchors.0": torch.zeros(3, 4)})
    torch.save(anchors, tmp_path / "anchors.pth")
    with pytest.raises(InputError, match=r"anchors\.pth: rpn\.anchor_generator\.cell_anchors\.0 holds other anchors"):
        load_propnet(tmp_path / "anchors.pth")


class Evil:
    def __init__(self, flag: Path):
        self.flag = flag

    def __reduce__(self):
        return (os.system, (f"touch {self.flag}",))


def test_pickles_with_code_and_truncated_files_are_refused_by_name(synthetic_root, tmp_path, capsys):
    flag = tmp_path / "pwned"
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"blobs": {"conv1_w": Evil(flag)}}, f, protocol=2)
    with pytest.raises(UnsafePickleError, match=r"evil\.pkl: refusing to load global (posix|os)\.system"):
        load_propnet(tmp_path / "evil.pkl")
    torch.save({"model": {"backbone.body.stem.conv1.weight": torch.zeros(64, 3, 7, 7)}}, tmp_path / "t.pth")
    data = (tmp_path / "t.pth").read_bytes()
    (tmp_path / "t.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"t\.pth is truncated"):
        load_propnet(tmp_path / "t.pth")
    with open(tmp_path / "cut.pkl", "wb") as f:
        pickle.dump({"blobs": {"conv1_w": np.zeros((64, 3, 7, 7), np.float32)}}, f, protocol=2)
    data = (tmp_path / "cut.pkl").read_bytes()
    (tmp_path / "cut.pkl").write_bytes(data[:300])
    with pytest.raises(InputError, match=r"cut\.pkl is truncated or not a Detectron pickle"):
        load_propnet(tmp_path / "cut.pkl")
    # through the command: one error line naming the file, nothing written
    for name in ("evil.pkl", "t.pth", "cut.pkl"):
        code = run(extract.main, ["--root", str(synthetic_root), "--split", "valid", "--out", str(tmp_path / "o"),
                                  "--weights", str(tmp_path / name)])
        (line,) = capsys.readouterr().err.splitlines()
        assert code == 2 and line.startswith("error: ") and name in line, line
    assert not flag.exists() and not (tmp_path / "o").exists()


def test_legacy_box_rules_differ_from_torchvision_where_the_readme_says():
    anchors = torch.tensor([[0.0, 0.0, 15.0, 15.0]])  # width 16 with the +1 convention
    assert decode_boxes(torch.zeros(1, 4), anchors).tolist() == [[0.0, 0.0, 15.0, 15.0]]
    assert decode_boxes(torch.tensor([[0.0, 0.0, 10.0, 0.0]]), anchors)[0, 2].item() == pytest.approx(
        8.0 + 0.5 * 1000.0 - 1)  # dw clamped at log(1000 / 16)
    # kept indices come back in ascending index order, not by score; the IoU is strict and +1
    boxes = torch.tensor([[0.0, 0.0, 9.0, 9.0], [50.0, 50.0, 59.0, 59.0], [0.0, 0.0, 9.0, 10.0]])
    assert legacy_nms(boxes, torch.tensor([0.1, 0.9, 0.5]), 0.5).tolist() == [1, 2]
    exactly = torch.tensor([[0.0, 0.0, 9.0, 9.0], [0.0, 0.0, 9.0, 19.0]])  # IoU exactly 0.5: kept
    assert legacy_nms(exactly, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0, 1]
