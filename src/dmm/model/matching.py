"""Mask matching: the relaxed assignment layer of DMM-Net and two alternatives behind one interface.

Every solver takes a padded batch of assignment problems, ``cost (B, N, M)`` with a boolean
``valid (B, N, M)`` marking the real template/proposal pairs of each problem, and returns an
assignment ``(B, N, M)`` that is zero outside ``valid``. Rows are templates (objects), columns
proposals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


def greedy_start(cost: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The layer's one-hot start point.

    Each proposal keeps only the cost of its best (cheapest) template; each template then takes
    its cheapest kept proposal (a template that is no proposal's best takes its cheapest proposal).
    Ties go to the lowest index.

    cost: (B, N, M) float, valid: (B, N, M) bool -> (B, N, M) float one-hot rows (zero rows for
    templates without a valid pair).
    """
    b, n, m = cost.shape
    masked = cost.detach().masked_fill(~valid, float("inf"))
    best_template = masked.argmin(dim=1, keepdim=True)  # (B, 1, M)
    rows = torch.arange(n, device=cost.device).view(1, n, 1)
    kept = (rows == best_template) & valid
    primary = masked.masked_fill(~kept, float("inf"))
    choice = torch.where(kept.any(dim=2), primary.argmin(dim=2), masked.argmin(dim=2))  # (B, N)
    start = torch.nn.functional.one_hot(choice, m).to(cost.dtype)
    return start * valid.any(dim=2, keepdim=True).to(cost.dtype)


def _exact_sum(x: torch.Tensor, dim) -> torch.Tensor:
    """Sum (keepdim) accumulated in float64, then rounded back to ``x.dtype``.

    For float32 the result hardly ever depends on summation order, so a padded batch gives the
    bits that each problem alone gives, and the layer's exact-equality exits agree with them.
    """
    return x.sum(dim=dim, keepdim=True, dtype=torch.float64).to(x.dtype)


def _dykstra_round(x: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor, p3: torch.Tensor,
                   validf: torch.Tensor, rows_per_col: torch.Tensor, cols_per_row: torch.Tensor):
    """One Dykstra round over (x >= 0, column sums <= 1, row sums = 1), invalid entries kept 0."""
    z = x + p1
    x1 = z.clamp_min(0.0)
    p1 = z - x1
    z = x1 + p2
    excess = (_exact_sum(z, 1) - 1.0).clamp_min(0.0)  # (B, 1, M)
    x2 = z - excess / rows_per_col * validf
    p2 = z - x2
    z = x2 + p3
    x3 = z - (_exact_sum(z, 2) - 1.0) / cols_per_row * validf
    p3 = z - x3
    return x3, p1, p2, p3


def relaxed_matching(cost: torch.Tensor, valid: torch.Tensor, max_iter: int, proj_iter: int,
                     lr: float) -> torch.Tensor:
    """DMM-Net's differentiable matching: unrolled projected gradient descent, Dykstra projections.

    Minimises <C, X> over X >= 0 with each template row summing to 1 and each proposal column
    summing to at most 1. From :func:`greedy_start`, each outer step does X <- X - lr * C,
    remembers X, then runs ``proj_iter`` Dykstra rounds whose three correction terms persist
    across outer steps. The result is the mean of the start point and every remembered X.

    Early exits of the per-problem algorithm are kept per problem with masks: a projection round
    that leaves X exactly unchanged ends that step's projection, and an outer step whose cost
    <C, X> equals the previous one ends the iteration. Loops have fixed lengths and no host
    synchronisation, so the whole batch is one set of tensor ops on any device.

    Args:
        cost: (B, N, M) float. Values outside ``valid`` are ignored.
        valid: (B, N, M) bool, the real pairs of each padded problem (rows x columns).
        max_iter, proj_iter: outer steps and Dykstra rounds per step.
        lr: gradient step.
    Returns:
        (B, N, M) averaged assignment, differentiable w.r.t. ``cost``, zero outside ``valid``.
    """
    if cost.shape != valid.shape or cost.dim() != 3:
        raise ValueError(f"cost {tuple(cost.shape)} and valid {tuple(valid.shape)} must be equal (B, N, M)")
    validf = valid.to(cost.dtype)
    c = torch.where(valid, cost, torch.zeros((), dtype=cost.dtype, device=cost.device))
    rows_per_col = validf.sum(dim=1, keepdim=True).clamp_min(1.0)
    cols_per_row = validf.sum(dim=2, keepdim=True).clamp_min(1.0)

    x = greedy_start(cost, valid)
    p1 = p2 = p3 = torch.zeros_like(x)
    total = x
    count = torch.ones(cost.shape[0], 1, 1, dtype=cost.dtype, device=cost.device)
    running = torch.ones(cost.shape[0], 1, 1, dtype=torch.bool, device=cost.device)
    prev_obj = _exact_sum(c * x, (1, 2))
    for _ in range(max_iter):
        x = torch.where(running, x - lr * c, x)
        total = total + x * running
        count = count + running
        projecting = running
        for _ in range(proj_iter):
            y, q1, q2, q3 = _dykstra_round(x, p1, p2, p3, validf, rows_per_col, cols_per_row)
            changed = (y != x).any(dim=(1, 2), keepdim=True)
            x = torch.where(projecting, y, x)
            p1 = torch.where(projecting, q1, p1)
            p2 = torch.where(projecting, q2, p2)
            p3 = torch.where(projecting, q3, p3)
            projecting = projecting & changed
        obj = _exact_sum(c * x, (1, 2))
        running = running & (obj != prev_obj)
        prev_obj = obj
    return total / count * validf


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
    """The part of the assignment that selects masks.

    Training keeps the entries above ``threshold``; test keeps each row's maximum (its value; the
    first one on ties). assignment: (B, N, M) -> (B, N, M).
    """
    if training:
        return assignment * (assignment > threshold)
    if assignment.shape[-1] == 0:
        return assignment
    best = assignment.argmax(dim=2, keepdim=True)
    keep = torch.zeros_like(assignment, dtype=torch.bool).scatter_(2, best, True)
    return assignment * keep


def matched_masks(kept: torch.Tensor, proposal_masks: torch.Tensor) -> torch.Tensor:
    """Kept assignment times proposal masks, summed over proposals and clamped to [0, 1].

    kept: (B, N, M), proposal_masks: (B, M, H, W) -> (B, N, H, W).
    """
    b, m, h, w = proposal_masks.shape
    out = torch.bmm(kept, proposal_masks.reshape(b, m, h * w)).reshape(b, kept.shape[1], h, w)
    return out.clamp(0.0, 1.0)


@dataclass(frozen=True)
class Matcher:
    """A matching method with its train and test settings (see :func:`build_matcher`)."""

    method: str = "dykstra"
    lr: float = 0.1
    train_iters: tuple[int, int] = (40, 5)  # (max_iter, proj_iter)
    test_iters: tuple[int, int] = (10, 5)
    sinkhorn_epsilon: float = 0.05
    sinkhorn_iter: int = 50
    keep_threshold: float = 0.01

    def keep(self, assignment: torch.Tensor, training: bool) -> torch.Tensor:
        """:func:`keep_assignment` with this matcher's training threshold."""
        return keep_assignment(assignment, training, self.keep_threshold)

    def match(self, cost: torch.Tensor, valid: torch.Tensor, training: bool) -> torch.Tensor:
        """cost, valid: (B, N, M) -> assignment (B, N, M), zero outside ``valid``."""
        if self.method == "dykstra":
            max_iter, proj_iter = self.train_iters if training else self.test_iters
            return relaxed_matching(cost, valid, max_iter, proj_iter, self.lr)
        if self.method == "hungarian":
            return hungarian_matching(cost, valid)
        if self.method == "sinkhorn":
            return sinkhorn_matching(cost, valid, self.sinkhorn_epsilon, self.sinkhorn_iter)
        raise ValueError(f"unknown MATCHING.METHOD {self.method!r}")


METHODS = ("dykstra", "hungarian", "sinkhorn")


def build_matcher(cfg_matching) -> Matcher:
    """A :class:`Matcher` from the ``MATCHING`` config node."""
    method = str(cfg_matching.METHOD).lower()
    if method not in METHODS:
        raise ValueError(f"MATCHING.METHOD {cfg_matching.METHOD!r} is not one of {METHODS}")
    return Matcher(
        method=method,
        lr=float(cfg_matching.LR),
        train_iters=(int(cfg_matching.TRAIN_MAX_ITER), int(cfg_matching.TRAIN_PROJ_ITER)),
        test_iters=(int(cfg_matching.TEST_MAX_ITER), int(cfg_matching.TEST_PROJ_ITER)),
        sinkhorn_epsilon=float(cfg_matching.SINKHORN_EPSILON),
        sinkhorn_iter=int(cfg_matching.SINKHORN_ITER),
        keep_threshold=float(cfg_matching.TRAIN_KEEP_THRESHOLD),
    )
