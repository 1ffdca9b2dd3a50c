import itertools

import pytest
import torch

from dmm.config import get_cfg_defaults
from dmm.model.matching import (build_matcher, greedy_start, hungarian_matching, keep_assignment,
                                matched_masks, relaxed_matching, sinkhorn_matching)

from .reference_matching import reference_greedy_start, reference_matching


def random_batch(seed: int, count: int, max_n: int = 10, max_m: int = 60, dtype=torch.float32):
    """Problems of mixed sizes, padded into one batch: (costs, valid, sizes)."""
    g = torch.Generator().manual_seed(seed)
    sizes = [(int(torch.randint(1, max_n + 1, (1,), generator=g)), int(torch.randint(1, max_m + 1, (1,), generator=g)))
             for _ in range(count)]
    n_max, m_max = max(s[0] for s in sizes), max(s[1] for s in sizes)
    cost = torch.rand(count, n_max, m_max, generator=g, dtype=dtype) * 2 - 1.5  # like -similarity
    valid = torch.zeros(count, n_max, m_max, dtype=torch.bool)
    for i, (n, m) in enumerate(sizes):
        valid[i, :n, :m] = True
    cost = torch.where(valid, cost, torch.full_like(cost, 7.0))  # padding must not matter
    return cost, valid, sizes


def compare_with_reference(cost, valid, sizes, max_iter, proj_iter, lr=0.1):
    out = relaxed_matching(cost, valid, max_iter, proj_iter, lr)
    exits = discrepancies = 0
    for i, (n, m) in enumerate(sizes):
        ref, exited = reference_matching(cost[i, :n, :m], max_iter, proj_iter, lr)
        got = out[i, :n, :m]
        assert torch.all(out[i][~valid[i]] == 0)
        if not exited:
            torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)
            continue
        exits += 1
        if not torch.allclose(got, ref, atol=1e-5, rtol=0):
            discrepancies += 1
            assert torch.equal(got.argmax(dim=1), ref.argmax(dim=1))
            assert (got - ref).abs().max() < 1e-2
    return exits, discrepancies


def test_greedy_start_matches_reference():
    cost, valid, sizes = random_batch(0, 40)
    start = greedy_start(cost, valid)
    for i, (n, m) in enumerate(sizes):
        assert torch.equal(start[i, :n, :m], reference_greedy_start(cost[i, :n, :m]))


@pytest.mark.parametrize("max_iter,proj_iter,seed", [(10, 5, 1), (40, 5, 2)])
def test_batched_layer_equals_reference(max_iter, proj_iter, seed):
    cost, valid, sizes = random_batch(seed, 64)
    exits, discrepancies = compare_with_reference(cost, valid, sizes, max_iter, proj_iter)
    assert discrepancies <= exits


def test_early_exits_are_kept_per_problem():
    # Zero costs: the first outer step's cost equals the start's, so the reference stops at once;
    # a padded neighbour that keeps iterating must not change that problem's answer.
    cost = torch.zeros(2, 2, 4)
    cost[1] = torch.tensor([[-0.9, -0.1, -0.3, -0.2], [-0.8, -0.7, -0.1, -0.4]])
    valid = torch.ones(2, 2, 4, dtype=torch.bool)
    valid[0, :, 3] = False
    out = relaxed_matching(cost, valid, 10, 5, 0.1)
    ref0, exited = reference_matching(cost[0, :, :3], 10, 5, 0.1)
    assert exited
    torch.testing.assert_close(out[0, :, :3], ref0, atol=1e-6, rtol=0)
    ref1, _ = reference_matching(cost[1], 10, 5, 0.1)
    torch.testing.assert_close(out[1], ref1, atol=1e-5, rtol=0)


def test_gradcheck_small_double_problems():
    cost, valid, _ = random_batch(3, 3, max_n=3, max_m=5, dtype=torch.float64)
    cost = cost.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda c: relaxed_matching(c, valid, 4, 3, 0.1), (cost,), eps=1e-6, atol=1e-5)


def test_gradient_reaches_cost():
    cost, valid, _ = random_batch(4, 4, max_n=4, max_m=8)
    cost.requires_grad_(True)
    out = relaxed_matching(cost, valid, 10, 5, 0.1)
    (out * torch.randn_like(out)).sum().backward()
    assert cost.grad[valid].abs().sum() > 0 and torch.all(cost.grad[~valid] == 0)


def test_hungarian_is_optimal_and_one_hot():
    cost, valid, sizes = random_batch(5, 20, max_n=5, max_m=12)
    out = hungarian_matching(cost, valid)
    for i, (n, m) in enumerate(sizes):
        sub = out[i, :n, :m]
        assert torch.all(sub.sum(dim=0) <= 1)
        assert torch.all(sub.sum(dim=1) == (1 if m >= n else sub.sum(dim=1)))
        assert out[i].sum() == min(n, m)
    # optimal: equal to the brute-force minimum over all injective row -> column maps
    for i, (n, m) in enumerate(sizes[:8]):
        if m >= n and n <= 4 and m <= 8:
            c = cost[i, :n, :m]
            best = min(sum(c[r, col] for r, col in enumerate(p)) for p in itertools.permutations(range(m), n))
            torch.testing.assert_close((c * out[i, :n, :m]).sum(), best)


def test_sinkhorn_marginals_and_gradients():
    cost, valid, sizes = random_batch(6, 8, max_n=4, max_m=20, dtype=torch.float64)
    valid_wide = valid.clone()
    cost = cost.clone().requires_grad_(True)
    plan = sinkhorn_matching(cost, valid_wide, epsilon=0.05, num_iter=200)
    for i, (n, m) in enumerate(sizes):
        sub = plan[i, :n, :m]
        torch.testing.assert_close(sub.sum(dim=1), torch.ones(n, dtype=sub.dtype), atol=1e-3, rtol=0)
        if m >= n:
            assert torch.all(sub.sum(dim=0) <= 1 + 1e-3)
        else:  # too few columns: rows still sum to 1, columns share the excess
            torch.testing.assert_close(sub.sum(dim=0), torch.full((m,), n / m, dtype=sub.dtype), atol=1e-3, rtol=0)
    assert torch.all(plan[~valid] == 0)
    plan.sum().backward()
    assert torch.isfinite(cost.grad).all()


def test_sinkhorn_with_small_epsilon_finds_hungarian():
    cost, valid, sizes = random_batch(7, 10, max_n=4, max_m=15, dtype=torch.float64)
    plan = sinkhorn_matching(cost, valid, epsilon=0.005, num_iter=500)
    hung = hungarian_matching(cost, valid)
    for i, (n, m) in enumerate(sizes):
        if m > n:
            assert torch.equal(plan[i, :n, :m].argmax(1), hung[i, :n, :m].argmax(1))


@pytest.mark.parametrize("method", ["dykstra", "hungarian", "sinkhorn"])
def test_build_matcher_methods(method):
    cfg = get_cfg_defaults().MATCHING
    cfg.METHOD = method
    matcher = build_matcher(cfg)
    cost, valid, _ = random_batch(8, 5, max_n=3, max_m=9)
    for training in (True, False):
        out = matcher.match(cost, valid, training)
        assert out.shape == cost.shape and torch.all(out[~valid] == 0)


def test_build_matcher_rejects_unknown_method():
    cfg = get_cfg_defaults().MATCHING
    cfg.METHOD = "auction"
    with pytest.raises(ValueError, match="auction"):
        build_matcher(cfg)


def test_train_and_test_iterations_differ():
    cfg = get_cfg_defaults().MATCHING
    matcher = build_matcher(cfg)
    assert matcher.train_iters == (40, 5) and matcher.test_iters == (10, 5)
    cost, valid, sizes = random_batch(9, 6, max_n=4, max_m=30)
    for training, (it, pit) in ((True, (40, 5)), (False, (10, 5))):
        torch.testing.assert_close(matcher.match(cost, valid, training), relaxed_matching(cost, valid, it, pit, 0.1))


def test_keep_rule():
    x = torch.tensor([[[0.005, 0.6, 0.3], [0.2, 0.2, 0.02]]])
    assert torch.equal(keep_assignment(x, training=True, threshold=0.01), torch.tensor([[[0.0, 0.6, 0.3], [0.2, 0.2, 0.02]]]))
    assert torch.equal(keep_assignment(x, training=False), torch.tensor([[[0.0, 0.6, 0.0], [0.2, 0.0, 0.0]]]))


def test_matched_masks_sum_and_clamp():
    kept = torch.tensor([[[1.0, 0.5], [0.0, 0.0]]])
    masks = torch.stack([torch.full((2, 2), 0.8), torch.full((2, 2), 0.6)])[None]
    out = matched_masks(kept, masks)
    assert torch.allclose(out[0, 0], torch.ones(2, 2)) and torch.equal(out[0, 1], torch.zeros(2, 2))
    assert matched_masks(torch.zeros(1, 2, 0), torch.zeros(1, 0, 3, 3)).shape == (1, 2, 3, 3)
