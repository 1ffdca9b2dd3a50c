"""One training batch against the 2019 trainer (``tests/faithfulness/golden/train.pt``): per-frame loss
terms, the total, and the gradients of the backward pass, for ground-truth and own-prediction feedback."""

import pytest
import torch

from dmm.engine.clip_loss import ClipLoss, template_proposals
from dmm.model.losses import LOSS_NAMES
from dmm.structures import Proposals

from .golden import INPUT_SIZE, StopSteps, golden_config, golden_model, load

H, W = INPUT_SIZE
#: the conv biases right before a train-mode BatchNorm have a zero gradient up to rounding
NOISE = ("encoder.sk", "encoder.prop")


@pytest.fixture(scope="module")
def tr():
    return load("train")


def slot_masks(labels: torch.Tensor) -> torch.Tensor:
    """(..., H, W) ids -> (..., 5, H, W) float: object k in slot k - 1."""
    return torch.stack([(labels == k + 1).float() for k in range(5)], dim=-3)


def raw(tr, b, t) -> Proposals:
    if t == 0:
        return Proposals.empty(tuple(tr["meta"]["raw_size"]), "roi")
    rp = tr["raw_proposals"][b][t]
    return Proposals(rp["boxes"], rp["scores"], rp["masks"], tuple(tr["meta"]["raw_size"]), "roi")


def run_clip(model, tr, feed_own):
    """The fixture batch through ClipLoss (train mode), recording every frame's step output."""
    cfg = golden_config("DATA.AUGMENT", "False")
    steps = []

    def recording(method):
        def record(*args, **kwargs):
            out, state = method(*args, **kwargs)
            steps.append(out)
            return out, state
        return record

    model.start, model.step = recording(model.start), recording(model.step)
    try:
        model.train()
        images, masks = tr["images"], slot_masks(tr["labels"])
        proposals = [[raw(tr, b, t) for t in range(3)] for b in range(2)]
        losses = ClipLoss(model, cfg)(images, masks, tr["sw"], proposals, torch.zeros(2, dtype=torch.bool),
                                      torch.eye(3).expand(2, 3, 3, 3), feed_own)
    finally:
        del model.start, model.step
    return losses, steps, masks


VARIANTS = {"gt": [False, False], "feedback": [True, False]}


def fixture_steps(tr, variant):
    """The fixture's outer steps in solving order (frame by frame, clip by clip)."""
    return [s for frame in tr[variant]["frames"] for s in frame["outer_steps"]]


@pytest.fixture(scope="module")
def runs(golden_weights_dir, tr):
    """Per variant and stop mode ("pinned" to the fixture's steps, or "natural"): losses, per-frame
    step outputs, gradients and the steps taken (a fresh model each)."""
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        for variant, feed_own in VARIANTS.items():
            for mode in ("pinned", "natural"):
                stops = StopSteps(fixture_steps(tr, variant) if mode == "pinned" else None).install(mp)
                model = golden_model(golden_weights_dir)
                losses, steps, masks = run_clip(model, tr, feed_own)
                model.zero_grad()
                losses["total"].backward()
                grads = {k: p.grad for k, p in model.named_parameters()}
                out[variant, mode] = (losses, steps, masks, grads, stops.steps)
    return out


def test_frame0_proposals_are_the_templates_after_nms(tr):
    masks = slot_masks(tr["labels"][:, 0])
    for b, props in enumerate(template_proposals(masks, 0.4)):
        want = tr["gt"]["frames"][0]["frame0_proposals"][b]
        assert torch.equal(props.boxes, want["boxes"]) and torch.equal(props.scores, want["scores"])
        assert torch.equal(props.masks, masks[b][want["keep"]])


@pytest.mark.parametrize("variant", ["gt", "feedback"])
def test_per_frame_terms_and_total(runs, tr, variant):
    """Each problem stopped where the 2019 code did: every term within 1e-5."""
    losses, steps, masks, _, _ = runs[variant, "pinned"]
    golden = tr[variant]
    for t, out in enumerate(steps):
        frame = golden["frames"][t]
        terms = out.losses(masks[:, t], tr["sw"])
        for name in LOSS_NAMES:
            assert terms[name].item() == pytest.approx(frame[name], rel=1e-5, abs=1e-6), (variant, t, name)
        assert out.refined.requires_grad == frame["refined_requires_grad"]
        for b in range(2):
            n = tr["meta"]["objects"][b]
            torch.testing.assert_close(out.assignment[b, :n, : frame["assignment"][b].shape[1]],
                                       frame["assignment"][b], rtol=0, atol=1e-5)
            torch.testing.assert_close(out.matched[b, :n].flatten(1).sum(1), frame["matched_sum"][b],
                                       rtol=1e-5, atol=1e-3)
    assert losses["total"].item() == pytest.approx(golden["total"], rel=1e-5)


def gradient_groups(grads):
    groups = {"backbone": [], "necks": [], "decoder": []}
    for key, grad in grads.items():
        if grad is None:
            continue
        group = "backbone" if key.startswith("encoder.base.") else "necks" if key.startswith("encoder.") else "decoder"
        groups[group].append(grad.double().flatten())
    return {g: torch.cat(v).norm().item() for g, v in groups.items()}


@pytest.mark.parametrize("variant", ["gt", "feedback"])
def test_gradients(runs, tr, variant):
    """Decoder within 1e-5, necks 1e-4 (behind train-mode batch norms), the backbone within 1%.

    The backward through the 50 train-mode batch norms of ResNet-50 on a batch of 2 is
    ill-conditioned in float32: on this fixture, float64 arithmetic moves the early layers'
    gradient norms by up to 0.4% from the fixture's own float32 values (``encoder.base.bn1.bias``:
    fixture 0.9316, float64 0.9353), so any other float32 backend lands within about that.
    """
    _, _, _, grads, _ = runs[variant, "pinned"]
    golden = tr[variant]
    for name, want in golden["grads"].items():
        got = grads[name.split("[")[0]][:, 128] if name.endswith("[:, 128]") else grads[name]
        if name.startswith("encoder.base."):
            cosine = torch.nn.functional.cosine_similarity(got.flatten().double(), want.flatten().double(), dim=0)
            assert cosine > 0.999 and got.norm().item() == pytest.approx(want.norm().item(), rel=1e-2), name
        else:
            torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4 * want.abs().max().item())
    for key, norm in golden["grad_norms"].items():
        if norm is None or (key.startswith(NOISE) and key.endswith(".bias")):
            continue
        rel = 1e-2 if key.startswith("encoder.base.") else 1e-4 if key.startswith("encoder.") else 1e-5
        assert grads[key].double().norm().item() == pytest.approx(norm, rel=rel, abs=1e-7), key
    groups = gradient_groups(grads)
    assert groups["backbone"] == pytest.approx(golden["group_norms"]["backbone"], rel=2e-3)
    for group in ("necks", "decoder"):
        assert groups[group] == pytest.approx(golden["group_norms"][group], rel=1e-5), group
    assert grads["encoder.base.fc.weight"] is None  # the released keys' unused classifier


@pytest.mark.parametrize("variant", ["gt", "feedback"])
def test_natural_run_differs_only_through_early_stops(runs, tr, variant):
    """Unpinned, a problem may stop at another step (frame 0 clip 1 here); the README bounds the effect."""
    losses, _, _, grads, steps = runs[variant, "natural"]
    golden = tr[variant]
    if steps == fixture_steps(tr, variant):
        assert losses["total"].item() == pytest.approx(golden["total"], rel=1e-5)
        return
    assert losses["total"].item() == pytest.approx(golden["total"], rel=2e-4)
    for group, norm in gradient_groups(grads).items():
        assert norm == pytest.approx(golden["group_norms"][group], rel=5e-3), group
