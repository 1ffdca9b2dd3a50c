"""The loss functions against the 2019 trainer's per-frame terms (``tests/faithfulness/golden/train.pt``,
variant ``gt``).

Each term is computed from the fixture's own quantities (cosines, kept assignments, proposals,
ground truth), so these tests check the loss rules alone; the whole training clip is
``test_train.py``'s.
"""

import pytest
import torch

from dmm.model.losses import match_loss, match_target, soft_iou_costs, soft_iou_loss
from dmm.model.matching import matched_masks

from .golden import INPUT_SIZE, load

H, W = INPUT_SIZE
FRAMES = [0, 1, 2]


@pytest.fixture(scope="module")
def tr():
    return load("train")


def slot_masks(labels: torch.Tensor) -> torch.Tensor:
    """(H, W) ids -> (5, H, W) float: object k in slot k - 1."""
    return torch.stack([(labels == k + 1).float() for k in range(5)])


def proposal_masks(tr, b: int, t: int) -> torch.Tensor:
    """(P, H, W) the frame's proposals: at frame 0 the ground-truth slots the NMS kept."""
    if t == 0:
        keep = tr["gt"]["frames"][0]["frame0_proposals"][b]["keep"]
        return slot_masks(tr["labels"][b, 0])[keep]
    return tr["proposals"][b][t]["masks"]


def objects(tr, b: int) -> int:
    return tr["meta"]["objects"][b]


@pytest.mark.parametrize("t", FRAMES)
def test_match_target_and_mse(tr, t):
    frame = tr["gt"]["frames"][t]
    per_video = []
    for b in range(2):
        n = objects(tr, b)
        props = proposal_masks(tr, b, t)
        targets = slot_masks(tr["labels"][b, t])[:n]
        pairs = torch.ones(1, n, len(props), dtype=torch.bool)
        goal = match_target(targets[None], props[None], pairs)[0]
        assert torch.equal(goal, frame["match_target"][b])
        loss = match_loss(frame["cosine"][b][None], targets[None], props[None], pairs)
        per_video.append(loss.item())
    assert per_video == pytest.approx(frame["match_per_video"], rel=1e-5)
    # the batch mean, with both videos padded into one problem batch
    m = max(len(proposal_masks(tr, b, t)) for b in range(2))
    cosine = torch.zeros(2, 3, m)
    targets = torch.zeros(2, 3, H, W)
    props = torch.zeros(2, m, H, W)
    pairs = torch.zeros(2, 3, m, dtype=torch.bool)
    for b in range(2):
        n, p = objects(tr, b), len(proposal_masks(tr, b, t))
        cosine[b, :n, :p] = frame["cosine"][b]
        targets[b, :n] = slot_masks(tr["labels"][b, t])[:n]
        props[b, :p] = proposal_masks(tr, b, t)
        pairs[b, :n, :p] = True
    assert match_loss(cosine, targets, props, pairs).item() == pytest.approx(frame["match"], rel=1e-5)


@pytest.mark.parametrize("t", FRAMES)
def test_matched_mask_soft_iou(tr, t):
    frame = tr["gt"]["frames"][t]
    matched = torch.zeros(2, 5, H, W)
    for b in range(2):
        kept = frame["kept"][b]
        props = proposal_masks(tr, b, t)
        columns = torch.zeros(kept.shape[1], H, W)
        columns[: len(props)] = props
        matched[b, : objects(tr, b)] = matched_masks(kept[None], columns[None])[0]
        sums = matched[b, : objects(tr, b)].flatten(1).sum(1)
        torch.testing.assert_close(sums, frame["matched_sum"][b], rtol=1e-5, atol=1e-3)
    targets = torch.stack([slot_masks(tr["labels"][b, t]) for b in range(2)])
    costs = soft_iou_costs(matched, targets)
    torch.testing.assert_close(costs, frame["matched_iou_per_object"], rtol=1e-5, atol=1e-6)
    loss = soft_iou_loss(matched, targets, tr["sw"])
    assert loss.item() == pytest.approx(frame["matched_iou"], rel=1e-5)


def test_an_absent_object_costs_exactly_one_and_weights_select_slots(tr):
    clip, frame, slot = tr["meta"]["absent"][0]
    assert tr["gt"]["frames"][frame]["matched_iou_per_object"][clip, slot].item() == 1.0
    pred = torch.zeros(1, 2, 4, 4)
    target = torch.zeros(1, 2, 4, 4)
    target[0, 0, :2] = 1
    pred[0, 0, :2] = 1
    assert soft_iou_costs(pred, target).tolist() == [[pytest.approx(0.0, abs=1e-6), 1.0]]
    assert soft_iou_loss(pred, target, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-6)
    assert soft_iou_loss(pred, target, torch.zeros(1, 2)).item() == pytest.approx(0.5)


def test_frame0_matched_loss_is_negative_because_masks_are_unclamped(tr):
    assert tr["gt"]["frames"][0]["matched_iou"] < 0
