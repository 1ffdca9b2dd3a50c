import itertools

import pytest
import torch

from dmm.config import MATCHING_IMPLEMENTATIONS, get_cfg_defaults, load_config
from dmm.errors import ConfigError
from dmm.model.matching import (build_matcher, greedy_start, hungarian_matching, keep_assignment, matched_masks,
                                relax, relaxed_matching, sinkhorn_matching)

from .reference_matching import reference_matching, reference_start


def random_batch(seed: int, count: int, max_n: int = 5, max_m: int = 50, dtype=torch.float32):
    """Problems of mixed sizes like -similarity costs, padded into one batch: (costs, valid, sizes)."""
    g = torch.Generator().manual_seed(seed)
    sizes = [(int(torch.randint(1, max_n + 1, (1,), generator=g)), int(torch.randint(1, max_m + 1, (1,), generator=g)))
             for _ in range(count)]
    n_max, m_max = max(s[0] for s in sizes), max(s[1] for s in sizes)
    cost = -(0.7 * (torch.rand(count, n_max, m_max, generator=g, dtype=dtype) * 2 - 1)
             + 0.3 * (torch.rand(count, n_max, m_max, generator=g, dtype=dtype) > 0.8).to(dtype))
    valid = torch.zeros(count, n_max, m_max, dtype=torch.bool)
    for i, (n, m) in enumerate(sizes):
        valid[i, :n, :m] = True
    cost = torch.where(valid, cost, torch.full_like(cost, 7.0))  # padding must not matter
    return cost, valid, sizes


def test_start_point_rule_of_the_issue():
    cost = -torch.tensor([[0.9, 0.8, 0.7], [0.5, 0.4, 0.6]])
    start = greedy_start(cost[None], torch.ones(1, 2, 3, dtype=torch.bool))[0]
    assert start.tolist() == [[1, 0, 0], [1, 0, 0]]  # row 1 is no column's cheapest: column 0
    assert torch.equal(start, reference_start(cost))


def test_greedy_start_matches_reference_per_problem():
    cost, valid, sizes = random_batch(0, 60)
    start = greedy_start(cost, valid)
    for i, (n, m) in enumerate(sizes):
        assert torch.equal(start[i, :n, :m], reference_start(cost[i, :n, :m]))
        assert torch.all(start[i][~valid[i]] == 0)


@pytest.mark.parametrize("max_iter,proj_iter,seed", [(10, 5, 1), (40, 5, 2)])
def test_exact_layer_gives_the_2019_bits(max_iter, proj_iter, seed):
    cost, valid, sizes = random_batch(seed, 120, max_n=3, max_m=12)
    out, steps = relax(cost, valid, max_iter, proj_iter, 0.1, "exact")
    early = 0
    for i, (n, m) in enumerate(sizes):
        ref, ref_steps = reference_matching(cost[i, :n, :m], max_iter, proj_iter, 0.1)
        assert torch.equal(out[i, :n, :m], ref) and steps[i].item() == ref_steps
        assert torch.all(out[i][~valid[i]] == 0)
        early += ref_steps < max_iter
    assert early > 0  # the sample exercises the early exit


@pytest.mark.parametrize("max_iter,proj_iter,seed", [(10, 5, 3), (40, 5, 4)])
def test_batched_layer_agrees_where_no_early_exit_fires(max_iter, proj_iter, seed):
    cost, valid, sizes = random_batch(seed, 64)
    out, steps = relax(cost, valid, max_iter, proj_iter, 0.1, "batched")
    other_step = 0
    for i, (n, m) in enumerate(sizes):
        ref, ref_steps = reference_matching(cost[i, :n, :m], max_iter, proj_iter, 0.1)
        assert torch.all(out[i][~valid[i]] == 0)
        if steps[i].item() == ref_steps:
            torch.testing.assert_close(out[i, :n, :m], ref, atol=5e-6, rtol=0)
        else:  # an equality of float norms fired at another step
            other_step += 1
            assert (out[i, :n, :m] - ref).abs().max() < 0.05
    assert other_step <= len(sizes) // 5


def test_batched_layer_bits_do_not_depend_on_the_batch():
    cost, valid, sizes = random_batch(5, 16)
    together = relaxed_matching(cost, valid, 40, 5, 0.1, "batched")
    for i, (n, m) in enumerate(sizes):
        alone = relaxed_matching(cost[i:i + 1, :n, :m], valid[i:i + 1, :n, :m], 40, 5, 0.1, "batched")
        assert torch.equal(together[i, :n, :m], alone[0])


@pytest.mark.parametrize("implementation", ["exact", "batched"])
def test_gradcheck_small_double_problems(implementation):
    cost, valid, _ = random_batch(3, 3, max_n=3, max_m=5, dtype=torch.float64)
    cost = cost.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda c: relaxed_matching(c, valid, 4, 3, 0.1, implementation), (cost,),
                                    eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("implementation", ["exact", "batched"])
def test_gradient_reaches_cost(implementation):
    cost, valid, _ = random_batch(4, 4, max_n=4, max_m=8)
    cost.requires_grad_(True)
    out = relaxed_matching(cost, valid, 10, 5, 0.1, implementation)
    (out * torch.randn_like(out)).sum().backward()
    assert cost.grad[valid].abs().sum() > 0 and torch.all(cost.grad[~valid] == 0)


def test_problems_without_rows_or_columns():
    cost = torch.zeros(2, 3, 4)
    valid = torch.zeros(2, 3, 4, dtype=torch.bool)
    valid[1, :2, :3] = True
    for implementation in ("exact", "batched"):
        out, steps = relax(cost, valid, 10, 5, 0.1, implementation)
        assert torch.all(out[0] == 0) and steps[0].item() == 0


def test_hungarian_is_optimal_and_one_hot():
    cost, valid, sizes = random_batch(5, 20, max_n=5, max_m=12)
    out = hungarian_matching(cost, valid)
    for i, (n, m) in enumerate(sizes):
        sub = out[i, :n, :m]
        assert torch.all(sub.sum(dim=0) <= 1)
        assert out[i].sum() == min(n, m)
    for i, (n, m) in enumerate(sizes[:8]):
        if m >= n and n <= 4 and m <= 8:
            c = cost[i, :n, :m]
            best = min(sum(c[r, col] for r, col in enumerate(p)) for p in itertools.permutations(range(m), n))
            torch.testing.assert_close((c * out[i, :n, :m]).sum(), best)


def test_sinkhorn_marginals_and_gradients():
    cost, valid, sizes = random_batch(6, 8, max_n=4, max_m=20, dtype=torch.float64)
    cost = cost.clone().requires_grad_(True)
    plan = sinkhorn_matching(cost, valid, epsilon=0.05, num_iter=200)
    for i, (n, m) in enumerate(sizes):
        sub = plan[i, :n, :m]
        torch.testing.assert_close(sub.sum(dim=1), torch.ones(n, dtype=sub.dtype), atol=1e-3, rtol=0)
        if m >= n:
            assert torch.all(sub.sum(dim=0) <= 1 + 1e-3)
        else:
            torch.testing.assert_close(sub.sum(dim=0), torch.full((m,), n / m, dtype=sub.dtype), atol=1e-3, rtol=0)
    assert torch.all(plan[~valid] == 0)
    plan.sum().backward()
    assert torch.isfinite(cost.grad).all()


VALID_PAIRS = [(m, i) for m, impls in MATCHING_IMPLEMENTATIONS.items() for i in impls]


def test_five_method_implementation_pairs():
    assert sorted(VALID_PAIRS) == [("dykstra", "batched"), ("dykstra", "exact"), ("dykstra", "triton"),
                                   ("hungarian", "exact"), ("sinkhorn", "batched")]


@pytest.mark.parametrize("method, implementation", VALID_PAIRS)
def test_build_matcher_runs_every_valid_pair(method, implementation):
    cfg = load_config(None, ["MATCHING.METHOD", method, "MATCHING.IMPLEMENTATION", implementation]).MATCHING
    matcher = build_matcher(cfg)
    cost, valid, _ = random_batch(8, 5, max_n=3, max_m=9)
    for training in (True, False):
        out = matcher.match(cost, valid, training)
        assert out.shape == cost.shape and torch.all(out[~valid] == 0)


@pytest.mark.parametrize("method, implementation", sorted(
    set(itertools.product(MATCHING_IMPLEMENTATIONS, MATCHING_IMPLEMENTATIONS["dykstra"])) - set(VALID_PAIRS)))
def test_invalid_pairs_are_config_errors_naming_the_valid_pairs(method, implementation):
    opts = ["MATCHING.METHOD", method, "MATCHING.IMPLEMENTATION", implementation]
    with pytest.raises(ConfigError) as err:
        load_config(None, opts)
    message = str(err.value)
    assert f"MATCHING.METHOD = {method!r}" in message and f"MATCHING.IMPLEMENTATION = {implementation!r}" in message
    assert message.endswith("dykstra x exact, dykstra x batched, dykstra x triton, hungarian x exact, "
                            "sinkhorn x batched")
    cfg = get_cfg_defaults().MATCHING  # built without load_config: refused all the same
    cfg.METHOD, cfg.IMPLEMENTATION = method, implementation
    with pytest.raises(ConfigError, match="valid pairs"):
        build_matcher(cfg)


def test_build_matcher_rejects_unknown_method_and_implementation():
    cfg = get_cfg_defaults().MATCHING
    cfg.METHOD = "auction"
    with pytest.raises(ConfigError, match="MATCHING.METHOD = 'auction'.*dykstra, hungarian, sinkhorn"):
        build_matcher(cfg)
    cfg = get_cfg_defaults().MATCHING
    cfg.IMPLEMENTATION = "magic"
    with pytest.raises(ConfigError, match="MATCHING.IMPLEMENTATION = 'magic'.*exact, batched, triton"):
        build_matcher(cfg)
    with pytest.raises(ConfigError, match="magic"):
        relax(*random_batch(8, 2)[:2], 10, 5, 0.1, "magic")


def test_2019_iterations_train_10x5_eval_40x5():
    matcher = build_matcher(get_cfg_defaults().MATCHING)
    assert matcher.train_iters == (10, 5) and matcher.test_iters == (40, 5)
    assert matcher.implementation == "exact"
    cost, valid, _ = random_batch(9, 6, max_n=4, max_m=30)
    for training, (it, pit) in ((True, (10, 5)), (False, (40, 5))):
        assert torch.equal(matcher.match(cost, valid, training), relaxed_matching(cost, valid, it, pit, 0.1))


def test_keep_rule_training_threshold_and_every_row_maximum_at_test():
    x = torch.tensor([[[0.005, 0.6, 0.3], [0.2, 0.2, 0.02]]])
    assert torch.equal(keep_assignment(x, training=True, threshold=0.01), torch.tensor([[[0.0, 0.6, 0.3], [0.2, 0.2, 0.02]]]))
    # a tie keeps both maxima (2019: A == rowmax(A))
    assert torch.equal(keep_assignment(x, training=False), torch.tensor([[[0.0, 0.6, 0.0], [0.2, 0.2, 0.0]]]))


def test_matched_masks_are_not_clamped():
    kept = torch.tensor([[[1.0, 0.5], [0.0, 0.0]]])
    masks = torch.stack([torch.full((2, 2), 0.8), torch.full((2, 2), 0.6)])[None]
    out = matched_masks(kept, masks)
    torch.testing.assert_close(out[0, 0], torch.full((2, 2), 1.1)) and torch.equal(out[0, 1], torch.zeros(2, 2))
    assert matched_masks(torch.zeros(1, 2, 0), torch.zeros(1, 0, 3, 3)).shape == (1, 2, 3, 3)
