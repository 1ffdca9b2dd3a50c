import pytest
import torch

from dmm.boxes import mask_boxes
from dmm.config import get_cfg_defaults
from dmm.model import weighted_total
from dmm.model.roi_features import roi_features
from dmm.structures import Proposals, SlotRule, TrackState

H, W = 64, 96


def scene(b=2, o=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(b, 3, H, W, generator=g)
    masks = torch.zeros(b, o, H, W)
    masks[:, 0, 8:30, 10:40] = 1
    masks[:, 1, 30:60, 50:90] = 1
    valid = torch.ones(b, o, dtype=torch.bool)
    valid[0, 2] = False
    masks[1, 2, 0:20, 60:90] = 1
    return images, masks, valid


def proposals_from(masks: torch.Tensor, extra: int, seed: int = 0) -> Proposals:
    """Proposals: noisy copies of some masks plus random boxes."""
    g = torch.Generator().manual_seed(seed)
    noise = [torch.rand(H, W, generator=g) * 0.3 for _ in range(extra)]
    pm = torch.cat([masks.clamp(0, 1) * 0.9, torch.stack(noise)]) if extra else masks.clamp(0, 1) * 0.9
    return Proposals(mask_boxes(pm, 0.4), torch.rand(len(pm), generator=g), pm, (H, W), "full")


def state_of(masks: torch.Tensor, valid: torch.Tensor, templates: torch.Tensor, memory=None) -> TrackState:
    """The objects given by ``masks`` as previous, reference and IoU masks."""
    return TrackState(valid, masks, masks, templates, memory, iou=masks)


def run_step(model, proposals=None, memory=None):
    images, masks, valid = scene()
    feats = model.encode(images)
    templates = model.template_features(feats, masks)
    if proposals is None:
        proposals = [proposals_from(masks[0, :2], 4), proposals_from(masks[1], 0)]
    return model.step(feats, proposals, state_of(masks, valid, templates, memory))[0], valid


def test_encode_shapes(small_model):
    feats = small_model.encode(torch.randn(2, 3, H, W))
    assert [tuple(s.shape) for s in feats.skips] == [(2, 128, 2, 3), (2, 128, 4, 6), (2, 64, 8, 12), (2, 32, 16, 24)]
    assert [tuple(p.shape) for p in feats.props] == [(2, 128, 16, 24), (2, 128, 8, 12), (2, 128, 4, 6), (2, 128, 2, 3)]


def test_roi_features_batched_equals_per_frame(small_model):
    feats = small_model.encode(torch.randn(2, 3, H, W))
    boxes = [torch.tensor([[0.0, 0, 40, 30], [10, 5, 90, 60]]), torch.tensor([[20.0, 20, 50, 63]])]
    batched = roi_features(feats.props, boxes)
    assert batched.shape == (3, 512)
    torch.testing.assert_close(batched[2:], roi_features(feats[1].props, boxes[1:]))


def test_template_boxes_tight_or_whole_image():
    masks = torch.zeros(2, H, W)
    masks[0, 5:10, 20:31] = 1
    assert mask_boxes(masks, empty="image").tolist() == [[20.0, 5.0, 30.0, 9.0], [0.0, 0.0, W - 1.0, H - 1.0]]
    assert mask_boxes(masks, empty="legacy").tolist()[1] == [0.0, 0.0, H, W]  # the 2019 masker's box
    assert mask_boxes(masks, half_open=True).tolist() == [[20.0, 5.0, 31.0, 10.0], [0.0, 0.0, 0.0, 0.0]]


def test_step_training_outputs_and_losses(small_model):
    small_model.train()
    out, valid = run_step(small_model)
    assert out.matched.shape == out.refined.shape == (2, 3, H, W)
    assert out.assignment.shape[:2] == (2, 3)
    assert out.refined.min() >= 0 and out.refined.max() <= 1
    assert torch.all(out.matched[~valid] == 0) and torch.all(out.refined[~valid] == 0)
    _, masks, _ = scene()
    losses = out.losses(masks, valid.float())
    assert set(losses) == {"match", "matched_iou", "refined_iou"}
    total = weighted_total(losses, get_cfg_defaults().LOSS)
    small_model.zero_grad()
    total.backward()
    assert small_model.encoder.prop2[0].weight.grad.abs().sum() > 0  # matching gradients reach the features
    assert small_model.decoder.clstm_list[0].Gates.weight.grad.abs().sum() > 0
    # the matching problem of frame 1 has 3 valid objects and 3 proposals: padded to 4 columns
    assert out.assignment.shape[2] == 6 and torch.all(out.assignment[1, :, 4:] == 0)


def test_step_eval_keeps_row_maxima_and_carries_state(small_model):
    small_model.eval()
    with torch.no_grad():
        out, valid = run_step(small_model)
        # frame 1's proposals are the objects' own masks: test mode picks them
        assert torch.equal(out.assignment[1].argmax(1), torch.arange(3))
        _, masks, _ = scene()
        expected = out.assignment[1].diagonal()[:, None, None] * 0.9 * masks[1]  # not clamped
        torch.testing.assert_close(out.matched[1], expected)
        out2, _ = run_step(small_model, memory=out.memory)
    assert not torch.allclose(out2.refined, out.refined)


def test_step_with_no_proposals(small_model):
    small_model.eval()
    empty = [Proposals.empty((H, W)), Proposals.empty((H, W))]
    with torch.no_grad():
        out, _ = run_step(small_model, proposals=empty)
    assert torch.all(out.matched == 0) and out.assignment.shape == (2, 3, 4)


def test_step_rejects_roi_mode_proposals(small_model):
    roi = Proposals(torch.zeros(1, 4), torch.zeros(1), torch.zeros(1, 28, 28), (H, W), "roi")
    with pytest.raises(ValueError, match="full-mode"):
        run_step(small_model, proposals=[roi, roi])


def test_matching_methods_run_in_the_model(small_model):
    cfg = get_cfg_defaults()
    for method in ("hungarian", "sinkhorn"):
        cfg.MATCHING.METHOD = method
        small_model.matcher = type(small_model.matcher)(method=method)
        small_model.eval()
        with torch.no_grad():
            out, _ = run_step(small_model)
        assert torch.equal(out.assignment[1].argmax(1), torch.arange(3))
    small_model.matcher = type(small_model.matcher)()


def test_first_k_rows_zero_invalid_templates_and_drop_their_outputs(small_model):
    """2019 dmm_model.py: the problem's rows are the first k slots (k valid templates), invalid ones zeroed."""
    small_model.eval()
    images, masks, _ = scene()
    images, masks = images[:1], masks[:1]
    valid = torch.tensor([[False, True, True]])  # slot 0 absent: not a prefix
    assert SlotRule("legacy").rows(valid).tolist() == [[True, True, False]]
    assert SlotRule("all").rows(valid).tolist() == valid.tolist()
    assert small_model.slots == SlotRule("legacy")
    with torch.no_grad():
        feats = small_model.encode(images)
        templates = small_model.template_features(feats, masks)
        out, _ = small_model.step(feats, [proposals_from(masks[0], 2)], state_of(masks, valid, templates))
    assert out.rows.tolist() == [[True, True, False]] and out.run.tolist() == [[True, True, False]]
    assert torch.all(out.cosine[0, 0] == 0)  # the zeroed template of slot 0
    assert torch.all(out.matched[0, 0] == 0) and torch.all(out.matched[0, 2] == 0)  # slot 2 dropped
    assert out.matched[0, 1].sum() > 0 and torch.all(out.refined[0, 2] == 0)


def test_weighted_total_uses_config():
    cfg = get_cfg_defaults().LOSS
    cfg.MATCHED_IOU_WEIGHT = 18.0
    losses = {"match": torch.tensor(1.0), "matched_iou": torch.tensor(0.5), "refined_iou": torch.tensor(0.25)}
    assert weighted_total(losses, cfg).item() == pytest.approx(1 + 9 + 0.25)
