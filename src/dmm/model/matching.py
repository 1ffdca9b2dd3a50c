"""Mask matching: the relaxed assignment layer of DMM-Net and two alternatives behind one interface.

Every solver takes a padded batch of assignment problems, ``cost (B, N, M)`` with a boolean
``valid (B, N, M)`` marking the real template/proposal pairs of each problem (the product of
its rows and its columns), and returns an assignment ``(B, N, M)`` that is zero outside
``valid``. Rows are templates (objects), columns proposals.

``MATCHING.METHOD`` picks the solver and ``MATCHING.IMPLEMENTATION`` how it runs; five pairs
exist (:data:`dmm.config.keys.MATCHING_IMPLEMENTATIONS`, every other pair is a config error):
``dykstra`` (:func:`relax`, the paper's layer) with ``exact``, ``batched`` or ``triton``;
``hungarian`` (:func:`hungarian_matching`) with ``exact``; ``sinkhorn``
(:func:`sinkhorn_matching`) with ``batched``.

The relaxed layer (:func:`relax`) has three implementations of the same algorithm, all starting
from :func:`greedy_start`:

- ``"exact"`` (the default): one problem at a time on its own compact ``(n, m)`` matrix, in
  float32 with the 2019 code's operations and early exits. Its stopping rule compares two
  float32 norms for equality, so the step it stops at depends on the last bits of the norm;
  this path gives the 2019 code's bits on the same device.
- ``"batched"``: the whole padded batch at once with fixed-length loops, per-problem masks for
  the early exits and sums accumulated in float64, so a problem gives the same bits whatever
  batch it is padded into and on any device, with no host synchronisation. The early exits
  fire at another step than the 2019 code's in a few problems in a hundred (where they fire
  at all); elsewhere the two implementations agree to float rounding.
- ``"triton"``: the batched computation as one fused Triton kernel per call on CUDA, and its
  gradient as one more (:mod:`dmm.model.matching_triton`); without CUDA the batched torch path
  runs instead, with the same results. The kernel computes the start point in Triton code
  (:mod:`dmm.model.matching_kernels`); the tests check it bit-equal to :func:`greedy_start`.

In every implementation the layer's output is **not continuous in the cost**: the start point
is an argmin, and the early exits test float equality, so a change of 1e-7 in the cost can
change the assignment by 1e-2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ..config.keys import check_choice, check_matching_pair


def greedy_start(cost: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The layer's one-hot start point (2019 ``relax_match.py``), for each problem of a batch.

    For every column, all entries except those of the column's cheapest row (first on ties) are
    replaced by the problem's largest cost; each row then takes its cheapest column of the
    result (first on ties). A row that is no column's cheapest therefore sees a constant row
    and takes column 0. Example: cost ``-[[.9, .8, .7], [.5, .4, .6]]`` -> ``[[1, 0, 0], [1, 0, 0]]``.

    This is the one start point of every implementation of :func:`relax`; the Triton kernel
    computes it in Triton code (``matching_kernels.greedy_start``), tested bit-equal to this.

    cost: (B, N, M) float, valid: (B, N, M) bool -> (B, N, M) float one-hot rows (zero rows for
    rows without a valid pair).
    """
    b, n, m = cost.shape
    c = cost.detach()
    if n == 0 or m == 0:
        return torch.zeros_like(cost)
    inf = torch.tensor(float("inf"), dtype=c.dtype, device=c.device)
    largest = torch.where(valid, c, -inf).amax(dim=(1, 2), keepdim=True)  # (B, 1, 1)
    best_row = torch.where(valid, c, inf).argmin(dim=1, keepdim=True)  # (B, 1, M)
    rows = torch.arange(n, device=c.device).view(1, n, 1)
    replaced = torch.where(rows == best_row, c, largest)
    choice = torch.where(valid, replaced, inf).argmin(dim=2)  # (B, N)
    start = torch.nn.functional.one_hot(choice, m).to(cost.dtype)
    return start * valid.any(dim=2, keepdim=True).to(cost.dtype)


# ------------------------------------------------------------------------------------------
# "exact": one compact problem at a time, the 2019 arithmetic
# ------------------------------------------------------------------------------------------


def _project_columns(x: torch.Tensor) -> torch.Tensor:
    """Columns summing to more than 1 lose (sum - 1) / n in every row. x: (n, m)."""
    sums = x.sum(dim=0, keepdim=True)
    return torch.where(sums <= 1, x, x - (sums - 1) / x.shape[0])


def _project_rows(x: torch.Tensor) -> torch.Tensor:
    """Every row loses (sum - 1) / m in every column. x: (n, m)."""
    return x - (x.sum(dim=1, keepdim=True) - 1) / x.shape[1]


def relax_problem(cost: torch.Tensor, max_iter: int, proj_iter: int, lr: float,
                  stop_on_equal_norms: bool = True) -> tuple[torch.Tensor, int]:
    """The relaxed matching of one problem, as the 2019 code computes it.

    From :func:`greedy_start`, each outer step does ``X <- X - lr C``, remembers X and its norm
    ``||X * C||_F``, then runs up to ``proj_iter`` Dykstra rounds over (X >= 0, column sums
    <= 1, row sums = 1) with the three correction terms kept across steps; the rounds stop when
    a round leaves X unchanged, the steps when the remembered norm equals the previous one (the
    first is compared with 0). The result is the mean of the start point and every remembered X.

    Args:
        cost: (n, m) float.
        stop_on_equal_norms: the 2019 early exit of the outer steps; False runs all ``max_iter``.
    Returns:
        (assignment (n, m), number of outer steps taken). Differentiable w.r.t. ``cost``.
    """
    x = greedy_start(cost[None], torch.ones_like(cost, dtype=torch.bool)[None])[0]
    remembered = [x]
    p1 = p2 = p3 = torch.zeros_like(cost)
    previous_norm = 0.0
    norm_of = torch.linalg.vector_norm  # what Tensor.norm() calls, without its Python wrapper
    for _ in range(max_iter):
        x = x - lr * cost
        norm = norm_of((x * cost).detach()).item()
        remembered.append(x)
        for _ in range(proj_iter):
            before = x
            z = x + p1
            y = torch.relu(z)
            p1 = z - y
            z = y + p2
            y = _project_columns(z)
            p2 = z - y
            z = y + p3
            y = _project_rows(z)
            p3 = z - y
            x = y
            if norm_of((x - before).detach()).item() == 0:
                break
        if stop_on_equal_norms and norm == previous_norm:
            break
        previous_norm = norm
    return sum(remembered) / len(remembered), len(remembered) - 1


def _relax_exact(cost: torch.Tensor, valid: torch.Tensor, max_iter: int, proj_iter: int,
                 lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`relax_problem` on each problem's compact matrix, scattered back into the batch."""
    b = cost.shape[0]
    out = torch.zeros_like(cost)
    steps = torch.zeros(b, dtype=torch.int64)
    row_valid = valid.any(dim=2).cpu()
    col_valid = valid.any(dim=1).cpu()
    for i in range(b):
        rows = torch.nonzero(row_valid[i]).flatten()
        cols = torch.nonzero(col_valid[i]).flatten()
        if rows.numel() == 0 or cols.numel() == 0:
            continue
        rows_d, cols_d = rows.to(cost.device), cols.to(cost.device)
        compact = cost[i].index_select(0, rows_d).index_select(1, cols_d)
        assignment, steps[i] = relax_problem(compact, max_iter, proj_iter, lr)
        index = (torch.full_like(rows_d, i)[:, None], rows_d[:, None], cols_d[None, :])
        out = out.index_put(index, assignment)
    return out, steps.to(cost.device)


# ------------------------------------------------------------------------------------------
# "batched": the padded batch at once, float64 accumulation, no host synchronisation
# ------------------------------------------------------------------------------------------


def _sum64(x: torch.Tensor, dim) -> torch.Tensor:
    """Sum (keepdim) accumulated in float64, then rounded back to ``x.dtype``."""
    return x.sum(dim=dim, keepdim=True, dtype=torch.float64).to(x.dtype)


def _norm64(x: torch.Tensor) -> torch.Tensor:
    """Per-problem Frobenius norm (B, 1, 1), accumulated in float64 and rounded to ``x.dtype``."""
    return (x.to(torch.float64) ** 2).sum(dim=(1, 2), keepdim=True).sqrt().to(x.dtype)


def _relax_batched(cost: torch.Tensor, valid: torch.Tensor, max_iter: int, proj_iter: int,
                   lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    validf = valid.to(cost.dtype)
    c = torch.where(valid, cost, torch.zeros((), dtype=cost.dtype, device=cost.device))
    rows_per_col = validf.sum(dim=1, keepdim=True).clamp_min(1.0)
    cols_per_row = validf.sum(dim=2, keepdim=True).clamp_min(1.0)

    x = greedy_start(cost, valid)
    p1 = p2 = p3 = torch.zeros_like(x)
    total = x
    count = torch.ones(cost.shape[0], 1, 1, dtype=cost.dtype, device=cost.device)
    running = valid.flatten(1).any(dim=1).view(-1, 1, 1)
    previous_norm = torch.zeros(cost.shape[0], 1, 1, dtype=cost.dtype, device=cost.device)
    for _ in range(max_iter):
        x = torch.where(running, x - lr * c, x)
        norm = _norm64((x * c).detach())
        total = total + x * running
        count = count + running
        projecting = running
        for _ in range(proj_iter):
            z = x + p1
            y = torch.relu(z) * validf
            q1 = z - y
            z = y + p2
            sums = _sum64(z, 1)
            y = torch.where(sums <= 1, z, z - (sums - 1) / rows_per_col) * validf
            q2 = z - y
            z = y + p3
            y = (z - (_sum64(z, 2) - 1) / cols_per_row) * validf
            q3 = z - y
            changed = (y != x).any(dim=(1, 2), keepdim=True)
            x = torch.where(projecting, y, x)
            p1 = torch.where(projecting, q1, p1)
            p2 = torch.where(projecting, q2, p2)
            p3 = torch.where(projecting, q3, p3)
            projecting = projecting & changed
        running = running & (norm != previous_norm)
        previous_norm = norm
    return total / count * validf, (count.view(-1) - 1).to(torch.int64)


def relax(cost: torch.Tensor, valid: torch.Tensor, max_iter: int, proj_iter: int, lr: float,
          implementation: str = "exact") -> tuple[torch.Tensor, torch.Tensor]:
    """DMM-Net's differentiable matching on a padded batch: (assignment, outer steps taken).

    Minimises <C, X> over X >= 0 with each template row summing to 1 and each proposal column
    summing to at most 1, by unrolled projected gradient descent (see :func:`relax_problem`).

    Args:
        cost: (B, N, M) float. Values outside ``valid`` are ignored.
        valid: (B, N, M) bool, the real pairs of each padded problem (rows x columns).
        max_iter, proj_iter: outer steps and Dykstra rounds per step.
        lr: gradient step.
        implementation: "exact", "batched" or "triton" (see the module docstring).
    Returns:
        assignment (B, N, M), differentiable w.r.t. ``cost``, zero outside ``valid``; steps (B,) int64.
    """
    if cost.shape != valid.shape or cost.dim() != 3:
        raise ValueError(f"cost {tuple(cost.shape)} and valid {tuple(valid.shape)} must be equal (B, N, M)")
    if implementation == "exact":
        return _relax_exact(cost, valid, max_iter, proj_iter, lr)
    if check_choice("MATCHING.IMPLEMENTATION", implementation) == "triton" and cost.is_cuda:
        from .matching_triton import relax_triton

        return relax_triton(cost, valid, max_iter, proj_iter, lr)
    return _relax_batched(cost, valid, max_iter, proj_iter, lr)  # "batched", and "triton" off CUDA


def relaxed_matching(cost: torch.Tensor, valid: torch.Tensor, max_iter: int, proj_iter: int, lr: float,
                     implementation: str = "exact") -> torch.Tensor:
    """The assignment of :func:`relax`: (B, N, M)."""
    return relax(cost, valid, max_iter, proj_iter, lr, implementation)[0]


# ------------------------------------------------------------------------------------------
# Alternatives and the keep rule
# ------------------------------------------------------------------------------------------


def hungarian_matching(cost: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The optimal one-hot assignment per problem (scipy), on the host; not differentiable.

    cost, valid: (B, N, M) -> (B, N, M) float one-hot (each valid row gets one column when the
    problem has at least as many columns as rows).
    """
    out = torch.zeros(cost.shape, dtype=cost.dtype)
    cost_np = cost.detach().cpu().double().numpy()
    valid_np = valid.cpu().numpy()
    for b in range(cost.shape[0]):
        rows = np.flatnonzero(valid_np[b].any(axis=1))
        cols = np.flatnonzero(valid_np[b].any(axis=0))
        if rows.size == 0 or cols.size == 0:
            continue
        sub = np.where(valid_np[b][np.ix_(rows, cols)], cost_np[b][np.ix_(rows, cols)], 1e9)
        r, c = linear_sum_assignment(sub)
        out[b, rows[r], cols[c]] = 1.0
    return out.to(cost.device) * valid


def sinkhorn_matching(cost: torch.Tensor, valid: torch.Tensor, epsilon: float = 0.05,
                      num_iter: int = 50) -> torch.Tensor:
    """Entropic relaxation: log-domain Sinkhorn with a dustbin row for unmatched proposals.

    Template rows carry mass 1, proposal columns mass 1, the dustbin row mass (columns - rows);
    with fewer columns than rows, columns carry mass rows / columns so rows still sum to 1. Batched and differentiable.

    cost, valid: (B, N, M) -> (B, N, M) transport plan, zero outside ``valid``.
    """
    b, n, m = cost.shape
    dtype, device = cost.dtype, cost.device
    neg = torch.tensor(-1e9, dtype=dtype, device=device)
    row_valid = valid.any(dim=2)  # (B, N)
    col_valid = valid.any(dim=1)  # (B, M)
    n_rows = row_valid.sum(dim=1, keepdim=True).to(dtype)
    n_cols = col_valid.sum(dim=1, keepdim=True).to(dtype)
    scale = (n_rows / n_cols.clamp_min(1.0)).clamp_min(1.0)  # > 1 only when columns are short
    dust = (n_cols * scale - n_rows).clamp_min(0.0)
    log_a = torch.cat([torch.where(row_valid, torch.zeros((), dtype=dtype, device=device), neg),
                       torch.where(dust > 0, dust.clamp_min(1e-12).log(), neg)], dim=1)  # (B, N+1)
    log_b = torch.where(col_valid, scale.log(), neg)  # (B, M)
    pair_valid = torch.cat([valid, col_valid[:, None, :]], dim=1)  # dustbin pairs with every column
    logits = torch.cat([-cost / epsilon, torch.zeros(b, 1, m, dtype=dtype, device=device)], dim=1)
    logits = torch.where(pair_valid, logits, neg)
    f = torch.zeros(b, n + 1, dtype=dtype, device=device)
    g = torch.zeros(b, m, dtype=dtype, device=device)
    for _ in range(num_iter):  # the row update last, so template rows sum to 1 exactly
        g = log_b - torch.logsumexp(logits + f[:, :, None], dim=1)
        f = log_a - torch.logsumexp(logits + g[:, None, :], dim=2)
    plan = (logits + f[:, :, None] + g[:, None, :]).exp()
    return plan[:, :n] * valid


def keep_assignment(assignment: torch.Tensor, training: bool, threshold: float = 0.01) -> torch.Tensor:
    """The part of the assignment that selects masks (2019 ``match_model.py``).

    Training keeps the entries above ``threshold``; test keeps every entry equal to its row's
    maximum (all of them on ties). assignment: (B, N, M) -> (B, N, M).
    """
    if training:
        return assignment * (assignment > threshold).to(assignment.dtype)
    if assignment.shape[-1] == 0:
        return assignment
    row_max = assignment.amax(dim=2, keepdim=True)
    return assignment * (assignment == row_max).to(assignment.dtype)


def matched_masks(kept: torch.Tensor, proposal_masks: torch.Tensor) -> torch.Tensor:
    """Kept assignment times proposal masks, summed over proposals; *not* clamped (it can exceed 1).

    kept: (B, N, M), proposal_masks: (B, M, H, W) -> (B, N, H, W).
    """
    b, m, h, w = proposal_masks.shape
    return torch.bmm(kept, proposal_masks.reshape(b, m, h * w)).reshape(b, kept.shape[1], h, w)


@dataclass(frozen=True)
class Matcher:
    """A matching method with its train and test settings (see :func:`build_matcher`)."""

    method: str = "dykstra"
    lr: float = 0.1
    train_iters: tuple[int, int] = (10, 5)  # (max_iter, proj_iter), 2019 dmm/configs/train.yaml
    test_iters: tuple[int, int] = (40, 5)  # 2019 dmm/configs/eval.yaml
    implementation: str = "exact"
    sinkhorn_epsilon: float = 0.05
    sinkhorn_iter: int = 50
    keep_threshold: float = 0.01

    def keep(self, assignment: torch.Tensor, training: bool) -> torch.Tensor:
        """:func:`keep_assignment` with this matcher's training threshold."""
        return keep_assignment(assignment, training, self.keep_threshold)

    def match(self, cost: torch.Tensor, valid: torch.Tensor, training: bool) -> torch.Tensor:
        """cost, valid: (B, N, M) -> assignment (B, N, M), zero outside ``valid``."""
        method = check_choice("MATCHING.METHOD", self.method)
        if method == "dykstra":
            max_iter, proj_iter = self.train_iters if training else self.test_iters
            return relaxed_matching(cost, valid, max_iter, proj_iter, self.lr, self.implementation)
        if method == "hungarian":
            return hungarian_matching(cost, valid)
        return sinkhorn_matching(cost, valid, self.sinkhorn_epsilon, self.sinkhorn_iter)


def build_matcher(cfg_matching) -> Matcher:
    """A :class:`Matcher` from the ``MATCHING`` config node; a ConfigError for a method or
    implementation that is not a choice, or a pair that does not run (module docstring)."""
    check_matching_pair(cfg_matching.METHOD, cfg_matching.IMPLEMENTATION)
    return Matcher(
        method=cfg_matching.METHOD,
        lr=float(cfg_matching.LR),
        train_iters=(int(cfg_matching.TRAIN_MAX_ITER), int(cfg_matching.TRAIN_PROJ_ITER)),
        test_iters=(int(cfg_matching.TEST_MAX_ITER), int(cfg_matching.TEST_PROJ_ITER)),
        implementation=cfg_matching.IMPLEMENTATION,
        sinkhorn_epsilon=float(cfg_matching.SINKHORN_EPSILON),
        sinkhorn_iter=int(cfg_matching.SINKHORN_ITER),
        keep_threshold=float(cfg_matching.TRAIN_KEEP_THRESHOLD),
    )
