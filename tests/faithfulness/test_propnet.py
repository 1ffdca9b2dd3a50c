"""The authors' proposal net against maskrcnn-benchmark's own numbers (``golden/propnet.pt``).

The fixture holds what maskrcnn-benchmark computed, stage by stage, for the rule weights of its
README ("The weight rule") on three cases: the binary model at test size 320/544 (2 frames), the
81-class model at 320/544 and the binary model at 800/1333. Here the rule weights are written
as maskrcnn-benchmark checkpoints, read through ``dmm.proposals.model.load_propnet`` and run
through ``dmm.proposals.extract.extract_split`` (the extraction entry point, which also writes
the per-video store and the split-wide ``predictions.pth``), recording every stage.

Tolerances are the README's for one thread: this CPU's convolutions round differently from the
fixture's in the last bits (C2 is bit-identical, C3 on differs by ~1e-6), so from the RPN on
proposals and detections are compared as sets (each box matched to the nearest), with boxes
within 1e-2 px (RPN) and 1e-3 px (detections), scores within 1e-5 and masks within 1e-4. The
isolated checks (``test_*_from_stored_inputs``) feed each stage the fixture's own inputs and
must agree bit for bit, except sigmoid / softmax probabilities (within 1e-6: their vectorised
implementations round differently across CPUs). ``bin_800`` runs end to end only with
``-m slow`` (about 25 s of model time); its isolated checks run by default.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dmm.proposals.extract import extract_split
from dmm.proposals.legacy import load_legacy_predictions, load_restricted
from dmm.proposals.legacy_net.anchors import ANCHOR_SIZES, ANCHOR_STRIDES, cell_anchors, grid_anchors
from dmm.proposals.legacy_net.roi_heads import RoIHeadsSettings, box_levels, postprocess_detections
from dmm.proposals.legacy_net.rpn import RPNSettings, flatten_level, level_proposals, merge_levels
from dmm.proposals.legacy_net.transform import input_tensor, pad_batch, resize_frame, resized_size
from dmm.proposals.legacy_net.weights import benchmark_state_dict
from dmm.proposals.model import load_propnet
from dmm.proposals.store import read_video_labels, read_video_proposals

from .golden import load

#: the README's cell anchors (legacy rule 6), P2..P6, ratios 0.5, 1, 2
README_CELL_ANCHORS = [
    [[-22, -10, 25, 13], [-14, -14, 17, 17], [-10, -22, 13, 25]],
    [[-40, -20, 47, 27], [-28, -28, 35, 35], [-20, -44, 27, 51]],
    [[-84, -40, 99, 55], [-56, -56, 71, 71], [-36, -80, 51, 95]],
    [[-164, -72, 195, 103], [-112, -112, 143, 143], [-76, -168, 107, 199]],
    [[-332, -152, 395, 215], [-224, -224, 287, 287], [-148, -328, 211, 391]],
]
#: the README's gain table ("The weight rule"); every ``*.conv3.weight`` has 0.5
GAINS = {"backbone.body.stem.conv1.weight": 1 / 32, "rpn.head.bbox_pred.weight": 0.25,
         "roi_heads.box.predictor.cls_score.weight": 3.0, "roi_heads.box.predictor.bbox_pred.weight": 2.0,
         "roi_heads.mask.predictor.conv5_mask.weight": 2 * math.sqrt(2),
         **{f"roi_heads.mask.feature_extractor.mask_fcn{i}.weight": math.sqrt(2) for i in range(1, 5)}}
SHIFTS = {"roi_heads.mask.predictor.mask_fcn_logits.bias": 2.5}
DETECTION = dict(score_thresh=0.0, detections_per_img=50)  # the fixture's (2019 scripts') overrides


def rule_tensor(i: int, key: str, shape: tuple[int, ...], chunk: int = 1 << 16) -> torch.Tensor:
    """The README's weight rule for the key at sorted position ``i`` (computed in cache-sized
    chunks: the same integer and float64 operations, a few times faster)."""
    prime = 2**31 - 1
    n = math.prod(shape)
    a = (1103515245 + 2654435761 * i) % prime
    b = (12345 + 1013904223 * (i + 1)) % prime
    if key.endswith(".running_var"):
        scale, offset = 0.5, 1.0
    elif key.endswith(".running_mean"):
        scale, offset = 0.1, 0.0
    elif len(shape) == 1:
        scale, offset = (0.2, 1.0) if key.endswith(".weight") else (0.1, SHIFTS.get(key, 0.0))
    else:
        gain = GAINS.get(key, 0.5 if key.endswith(".conv3.weight") else 1.0)
        scale, offset = math.sqrt(3.0) * gain / math.sqrt(n // shape[0]), None
    out = torch.empty(n, dtype=torch.float32)
    for start in range(0, n, chunk):
        k = torch.arange(start, min(n, start + chunk), dtype=torch.int64)
        h = (k * k).remainder_(prime).mul_(a).add_(k * b).add_(i).remainder_(prime)
        x = h.double().add_(0.5).mul_(2.0).div_(prime).sub_(1.0)  # 2 (h + 0.5) / P - 1
        # 1-D kinds: offset + scale x; weights: x * scale (the README's order of operations)
        out[start:start + len(k)] = (x.mul_(scale) if offset is None else x.mul_(scale).add_(offset)).float()
    return out.reshape(shape)


def rule_state(golden: dict, num_classes: int, base: dict | None = None) -> dict[str, torch.Tensor]:
    """The rule's maskrcnn-benchmark state dict (cell anchors included) for 2 or 81 classes."""
    shapes = {k: tuple(s) for k, s in golden["state_dict_keys"]}
    if num_classes == 81:
        shapes.update({k: tuple(s) for k, s in golden["state_dict_keys_81"].items()})
    skipped = set(golden["rule_keys_skipped"])
    out = {}
    for i, key in enumerate(sorted(shapes)):
        if key in skipped:
            out[key] = torch.tensor(README_CELL_ANCHORS[int(key.rsplit(".", 1)[1])], dtype=torch.float32)
        elif base is not None and key not in golden["state_dict_keys_81"]:
            out[key] = base[key]
        else:
            out[key] = rule_tensor(i, key, shapes[key])
    return out


def weight_mismatches(state: dict[str, torch.Tensor], check: dict) -> list[str]:
    """Keys whose [sum, sum of squares, first value] differ from the fixture's (1e-12 relative)."""
    bad = []
    for key, (total, squares, first) in check.items():
        v = state[key].double()
        if (abs(v.sum().item() - total) > 1e-12 * max(1.0, abs(total))
                or abs((v * v).sum().item() - squares) > 1e-12 * max(1.0, squares)
                or v.flatten()[0].item() != first):
            bad.append(key)
    return bad


@pytest.fixture(scope="module")
def golden():
    return load("propnet")


@pytest.fixture(scope="module")
def checkpoints(golden, tmp_path_factory):
    """The rule weights as maskrcnn-benchmark checkpoints: the binary model as a distributed run
    writes it (``module.`` keys, the ``{"model": ...}`` layout), the 81-class one without ``module.``."""
    folder = tmp_path_factory.mktemp("propnet_weights")
    binary = rule_state(golden, 2)
    torch.save({"model": {f"module.{k}": v for k, v in binary.items()}, "iteration": 0}, folder / "bin.pth")
    coco = rule_state(golden, 81, base=binary)
    torch.save({"model": coco}, folder / "coco.pth")
    return {"bin": folder / "bin.pth", "coco": folder / "coco.pth"}


@pytest.fixture(scope="module")
def models(checkpoints):
    """The two checkpoints read by the public loader (architecture and classes from the files)."""
    return {name: load_propnet(path) for name, path in checkpoints.items()}


class Frames:
    """A reader of the fixture's frames: one video ``v0`` (what ``extract_split`` reads)."""

    def __init__(self, frames: list[np.ndarray]):
        self.videos = ["v0"]
        self._frames = {f"{i:05d}": f for i, f in enumerate(frames)}

    def frames(self, video: str) -> list[str]:
        return sorted(self._frames)

    def image(self, video: str, frame: str) -> np.ndarray:
        return self._frames[frame]


def sha(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().contiguous().float().numpy().tobytes()).hexdigest()


def assert_summary(name: str, t: torch.Tensor, s: dict, atol: float) -> None:
    """A tensor against a fixture summary: shape, sum and sum of squares, the 64 samples."""
    t = t.detach().float().reshape(s["shape"])
    assert list(t.shape) == list(s["shape"]), name
    n = t.numel()
    scale = math.sqrt(n * s["sumsq"])
    assert abs(t.double().sum().item() - s["sum"]) <= 1e-6 * scale + 1e-6, name
    assert abs((t.double() ** 2).sum().item() - s["sumsq"]) <= 1e-5 * s["sumsq"] + 1e-6, name
    diff = (t.reshape(-1)[s["sample_index"]] - s["sample"]).abs().max().item()
    assert diff <= atol, (name, diff)


def match(ours: torch.Tensor, theirs: torch.Tensor, tol: float, name: str) -> torch.Tensor:
    """For each of ``theirs`` (m, 4) boxes, the index of the nearest of ``ours`` (a permutation,
    every pair within ``tol`` px)."""
    assert ours.shape == theirs.shape, (name, ours.shape, theirs.shape)
    if len(theirs) == 0:
        return torch.zeros(0, dtype=torch.int64)
    dist = (theirs[:, None, :] - ours[None, :, :]).abs().amax(-1)
    best, index = dist.min(1)
    assert best.max().item() <= tol, (name, best.max().item())
    assert len(set(index.tolist())) == len(index), f"{name}: two boxes matched to one"
    return index


def same_case(golden: dict, case: str, i: int, part: str) -> dict:
    """A stage of ``case``'s frame ``i``, following ``same_as`` (coco_320 shares bin_320's)."""
    stage = golden["cases"][case]["frames"][i][part]
    return golden["cases"][stage["same_as"]]["frames"][i][part] if "same_as" in stage else stage


# ---------------------------------------------------------------------------------------------
# weights and isolated stages (no network)

def test_the_rule_weights_load_through_the_public_loader(golden, models):
    for name, check, arch_classes in (("bin", golden["weight_check"], 2),
                                      ("coco", {**golden["weight_check"], **golden["weight_check_81"]}, 81)):
        model = models[name]
        assert model.arch == "legacy_x101_32x8d_fpn" and model.num_classes == arch_classes
        state = benchmark_state_dict(model)
        assert sorted(state) == sorted(k for k, _ in golden["state_dict_keys"])  # 567 keys
        assert weight_mismatches(state, check) == []
        for i, cell in enumerate(README_CELL_ANCHORS):
            assert torch.equal(state[f"rpn.anchor_generator.cell_anchors.{i}"], torch.tensor(cell, dtype=torch.float32))


@pytest.mark.parametrize("case", ["bin_320", "coco_320", "bin_800"])
def test_input_and_anchors_from_stored_inputs(golden, case):
    c = golden["cases"][case]
    for i, g in zip(c["frame_ids"], c["frames"]):
        inp = g["input"]
        frame = golden["frames"][i].numpy()
        assert list(frame.shape[:2]) == inp["raw_size_hw"]
        size = resized_size(frame.shape[0], frame.shape[1], c["min_size_test"], c["max_size_test"])
        assert list(size) == inp["resized_size_hw"] == inp["image_sizes"][0]
        resized = resize_frame(frame, size)
        assert hashlib.sha256(resized.tobytes()).hexdigest() == inp["resized_u8_sha256"]
        if "resized_u8" in inp:
            assert np.array_equal(resized, inp["resized_u8"].numpy())
        x = input_tensor(resized)
        assert sha(x) == inp["tensor"]["sha256"]
        batch = pad_batch([x])
        assert list(batch.shape) == inp["padded_shape"] and inp["padding_is_zero"]
        assert batch[0, :, size[0]:].abs().sum() == 0 and batch[0, :, :, size[1]:].abs().sum() == 0
        anchors = same_case(golden, case, i, "anchors")
        for level, (stride, anchor_size) in enumerate(zip(ANCHOR_STRIDES, ANCHOR_SIZES)):
            cell = cell_anchors(stride, anchor_size)
            assert torch.equal(cell, anchors["cell_anchors"][level])
            grid = tuple(anchors["grid_sizes"][level])
            height, width = batch.shape[2] // min(stride, 32), batch.shape[3] // min(stride, 32)
            if stride == 64:  # P6 = max_pool2d(P5, 1, stride 2)
                height, width = (height - 1) // 2 + 1, (width - 1) // 2 + 1
            assert grid == (height, width)
            full = grid_anchors(cell, stride, grid)
            assert len(full) == anchors["count"][level] and sha(full) == anchors["sha256"][level]
            assert torch.equal(full[:6], anchors["first"][level]) and torch.equal(full[-6:], anchors["last"][level])
            assert anchors["image_size_wh"][level] == [size[1], size[0]]
            # the visibility field (STRADDLE_THRESH 0; training only): anchors inside the image
            inside = (full[:, 0] >= 0) & (full[:, 1] >= 0) & (full[:, 2] < size[1]) & (full[:, 3] < size[0])
            assert int(inside.sum()) == anchors["visible"][level]


@pytest.mark.parametrize("case", ["bin_320", "coco_320", "bin_800"])
def test_rpn_detections_and_masks_from_stored_inputs(golden, case):
    c = golden["cases"][case]
    heads = RoIHeadsSettings(**DETECTION)
    for i, g in enumerate(c["frames"]):
        rpn = same_case(golden, case, i, "rpn")
        size = tuple(g["input"]["image_sizes"][0])
        levels = []
        for level, (stride, anchor_size) in enumerate(zip(ANCHOR_STRIDES, ANCHOR_SIZES)):
            logits_map = rpn["objectness"][level]
            logits, _ = flatten_level(logits_map[None], torch.zeros(1, 12, *logits_map.shape[1:]))
            deltas = torch.zeros(logits.shape[1], 4)
            deltas[rpn["topk_index"][level]] = rpn["regression"][level]  # stored only at the top-k
            anchors = grid_anchors(cell_anchors(stride, anchor_size), stride, tuple(logits_map.shape[1:]))
            lv = level_proposals(logits[0], deltas, anchors, size, RPNSettings())
            assert torch.equal(lv.topk_index, rpn["topk_index"][level]), (case, i, level)
            assert list(logits_map[None].shape) == [1, 3, *logits_map.shape[1:]]
            assert rpn["regression_shape"][level] == [1, 12, *logits_map.shape[1:]]
            kth, after = rpn["kth_and_next_prob"][level]
            probs = logits[0].sigmoid().sort(descending=True).values
            assert abs(lv.topk_prob[-1].item() - kth) <= 1e-6
            assert (after is None) == (len(probs) == len(lv.topk_prob)) and (after is None or probs[len(lv.topk_prob)] < kth)
            torch.testing.assert_close(lv.topk_prob, rpn["topk_prob"][level], rtol=0, atol=1e-6)
            assert torch.equal(lv.decoded, rpn["decoded"][level])
            assert torch.equal(lv.boxes, rpn["after_nms"][level]["bbox"])
            torch.testing.assert_close(lv.objectness, rpn["after_nms"][level]["objectness"], rtol=0, atol=1e-6)
            levels.append(lv)
        assert sum(len(lv.boxes) for lv in levels) == rpn["merged_count"]
        boxes, objectness = merge_levels(levels, 1000)
        assert torch.equal(boxes, rpn["proposals"])
        torch.testing.assert_close(objectness, rpn["proposals_objectness"], rtol=0, atol=1e-6)
        box = g["box_head"]
        assert torch.equal(box_levels(rpn["proposals"], heads), box["pooler_levels"])
        assert box["prepared_shape"] == [len(rpn["proposals"]) * c["num_classes"], 4]  # a box per class and proposal
        det = postprocess_detections(box["class_logits"], box["box_regression"], rpn["proposals"], size, heads)
        want = g["detections"]
        assert torch.equal(det.boxes, want["bbox"]) and torch.equal(det.labels, want["fields"]["labels"])
        torch.testing.assert_close(det.scores, want["fields"]["scores"], rtol=0, atol=1e-6)
        assert torch.equal(det.per_class_nms, box["per_class_nms"])
        assert torch.equal(box_levels(want["bbox"], heads), g["mask_head"]["pooler_levels"])
        torch.testing.assert_close(g["mask_head"]["logits_selected"].sigmoid(), g["result"]["fields"]["mask"],
                                   rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# end to end through the extraction entry point

def check_end_to_end(golden: dict, case: str, trace: list[dict], store: Path, predictions: Path) -> None:
    c = golden["cases"][case]
    stored = read_video_proposals(store / "v0.pth", "v0")
    labels = read_video_labels(store / "v0.pth", "v0")
    boxlists = load_restricted(predictions)
    assert len(trace) == len(c["frames"]) == len(boxlists) == len(stored)
    for i, (t, g) in enumerate(zip(trace, c["frames"])):
        where = f"{case} frame {i}"
        inp = g["input"]
        assert hashlib.sha256(np.ascontiguousarray(t["resized"]).tobytes()).hexdigest() == inp["resized_u8_sha256"]
        assert sha(t["input"]) == inp["tensor"]["sha256"], where
        assert list(t["batch_shape"]) == inp["padded_shape"] and list(t["image_size"]) == inp["image_sizes"][0]
        backbone = same_case(golden, case, i, "backbone")
        for name, ours, want in zip(["C2", "C3", "C4", "C5"], t["body"], backbone["body"]):
            assert_summary(f"{where} {name}", ours[None], want, 1e-3)
        for name, ours, want in zip(["P2", "P3", "P4", "P5", "P6"], t["fpn"], backbone["fpn"]):
            assert_summary(f"{where} {name}", ours[None], want, 1e-3)
        anchors = same_case(golden, case, i, "anchors")
        assert [sha(a) for a in t["anchors"]] == anchors["sha256"]
        rpn = same_case(golden, case, i, "rpn")
        for level in range(5):
            lv = t["rpn_levels"][level]
            torch.testing.assert_close(t["rpn_logits"][level], rpn["objectness"][level], rtol=0, atol=1e-3)
            assert_summary(f"{where} rpn regression {level}", t["rpn_regression"][level][None],
                           rpn["regression_summary"][level], 1e-3)
            assert set(lv.topk_index.tolist()) == set(rpn["topk_index"][level].tolist()), where
            order = {j: n for n, j in enumerate(lv.topk_index.tolist())}
            mine = torch.tensor([order[j] for j in rpn["topk_index"][level].tolist()], dtype=torch.int64)
            torch.testing.assert_close(lv.topk_prob[mine], rpn["topk_prob"][level], rtol=0, atol=1e-5)
            torch.testing.assert_close(lv.regression[mine], rpn["regression"][level], rtol=0, atol=1e-3)
            torch.testing.assert_close(lv.decoded[mine], rpn["decoded"][level], rtol=0, atol=1e-2)
            kept = match(lv.boxes, rpn["after_nms"][level]["bbox"], 1e-2, f"{where} level {level} after NMS")
            torch.testing.assert_close(lv.objectness[kept], rpn["after_nms"][level]["objectness"], rtol=0, atol=1e-5)
        index = match(t["proposals"], rpn["proposals"], 1e-2, f"{where} proposals")
        torch.testing.assert_close(t["proposals_objectness"][index], rpn["proposals_objectness"], rtol=0, atol=1e-5)
        box = g["box_head"]
        assert torch.equal(t["box_levels"][index], box["pooler_levels"])
        torch.testing.assert_close(t["box_pooled"][index[:8], :8], box["pooled_first8_ch0_7"], rtol=0, atol=1e-3)
        assert_summary(f"{where} box pooled", t["box_pooled"][index], box["pooled_summary"], 1e-3)
        torch.testing.assert_close(t["box_features"][index[:8]], box["features_first8"], rtol=0, atol=1e-3)
        assert_summary(f"{where} box features", t["box_features"][index], box["features_summary"], 1e-3)
        torch.testing.assert_close(t["class_logits"][index], box["class_logits"], rtol=0, atol=1e-3)
        torch.testing.assert_close(t["box_regression"][index], box["box_regression"], rtol=0, atol=1e-3)
        det, want = t["detections"], g["detections"]
        # boxes into each class's NMS are equal; what survives can move where two overlapping
        # boxes' scores are nearly tied (81 classes of small probabilities): a few classes,
        # a few boxes, none among the kept detections here
        assert torch.equal(det.per_class_nms[:, 0], box["per_class_nms"][:, 0]), where
        moved = (det.per_class_nms[:, 1] - box["per_class_nms"][:, 1]).abs()
        assert moved.sum() <= 4 and (moved > 0).sum() <= 2, (where, moved.nonzero().tolist())
        found = match(det.boxes, want["bbox"], 1e-3, f"{where} detections")
        assert torch.equal(det.labels[found], want["fields"]["labels"])
        torch.testing.assert_close(det.scores[found], want["fields"]["scores"], rtol=0, atol=1e-5)
        assert (det.labels[1:] >= det.labels[:-1]).all()  # class order, not by score
        mask = g["mask_head"]
        assert torch.equal(t["mask_levels"][found], mask["pooler_levels"])
        torch.testing.assert_close(t["mask_pooled"][found[:4], :8], mask["pooled_first4_ch0_7"], rtol=0, atol=1e-3)
        assert_summary(f"{where} mask pooled", t["mask_pooled"][found], mask["pooled_summary"], 1e-3)
        assert_summary(f"{where} mask logits", t["mask_logits"][found], mask["logits_summary"], 1e-3)
        selected = t["mask_logits"][torch.arange(len(det.labels)), det.labels][:, None]
        torch.testing.assert_close(selected[found], mask["logits_selected"], rtol=0, atol=1e-3)
        result, want = t["result"], g["result"]
        assert list(result.size) == want["size"] and want["mode"] == "xyxy"
        found = match(result.boxes, want["bbox"], 1e-3, f"{where} result")
        torch.testing.assert_close(result.scores[found], want["fields"]["scores"], rtol=0, atol=1e-5)
        assert torch.equal(result.labels[found], want["fields"]["labels"])
        torch.testing.assert_close(result.masks[found], want["fields"]["mask"], rtol=0, atol=1e-4)
        # the store holds exactly the saved result, in its order; predictions.pth the same BoxList
        p = stored[f"{i:05d}"]
        assert p.mask_mode == "roi" and p.image_size == tuple(inp["resized_size_hw"])
        assert torch.equal(p.boxes, result.boxes) and torch.equal(p.scores, result.scores)
        assert torch.equal(p.masks, result.masks[:, 0]) and torch.equal(labels[f"{i:05d}"], result.labels)
        b = boxlists[i]
        assert b.size == tuple(want["size"]) and b.mode == "xyxy"
        assert list(b.extra_fields) == want["field_order"]
        assert torch.equal(b.bbox, result.boxes) and torch.equal(b.extra_fields["mask"], result.masks)
        assert torch.equal(b.extra_fields["scores"], result.scores)
        assert torch.equal(b.extra_fields["labels"], result.labels)
    assert len(load_legacy_predictions(predictions)) == len(c["frames"])


def run_case(golden: dict, models: dict, case: str, tmp_path: Path) -> None:
    c = golden["cases"][case]
    model = models["coco" if c["num_classes"] == 81 else "bin"].configure(
        min_size=c["min_size_test"], max_size=c["max_size_test"], **DETECTION)
    assert model.num_classes == c["num_classes"]
    reader = Frames([golden["frames"][i].numpy() for i in c["frame_ids"]])
    trace: list[dict] = []
    written = extract_split(model, reader, tmp_path / "store", batch_size=1, progress=False,
                            predictions=tmp_path / "predictions.pth", trace=trace)
    assert written == 1
    check_end_to_end(golden, case, trace, tmp_path / "store", tmp_path / "predictions.pth")


@pytest.mark.parametrize("case", ["bin_320", "coco_320"])
def test_case_end_to_end(golden, models, case, tmp_path):
    run_case(golden, models, case, tmp_path)


@pytest.mark.slow
def test_bin_800_end_to_end(golden, models, tmp_path):
    run_case(golden, models, "bin_800", tmp_path)
