"""A plain per-problem implementation of DMM-Net's relaxed matching, the tests' reference.

One problem at a time, written as directly as the algorithm reads, with Python-level early exits.
"""

from __future__ import annotations

import torch


def _sum(x: torch.Tensor, dim=None) -> torch.Tensor:
    """Sums accumulate in float64 (rounded back), as the layer's do."""
    if dim is None:
        return x.sum(dtype=torch.float64).to(x.dtype)
    return x.sum(dim=dim, keepdim=True, dtype=torch.float64).to(x.dtype)


def reference_greedy_start(cost: torch.Tensor) -> torch.Tensor:
    """cost: (N, M) -> one-hot (N, M): each proposal keeps its best template, each template its cheapest."""
    n, m = cost.shape
    start = torch.zeros_like(cost)
    best_template = cost.argmin(dim=0)
    for row in range(n):
        columns = (best_template == row).nonzero().flatten()
        if len(columns):
            col = columns[cost[row, columns].argmin()]
        else:
            col = cost[row].argmin()
        start[row, col] = 1.0
    return start


def reference_matching(cost: torch.Tensor, max_iter: int, proj_iter: int, lr: float) -> tuple[torch.Tensor, bool]:
    """cost: (N, M) -> (averaged assignment (N, M), whether an early exit happened)."""
    n, m = cost.shape
    x = reference_greedy_start(cost)
    p1, p2, p3 = torch.zeros_like(x), torch.zeros_like(x), torch.zeros_like(x)
    remembered = [x]
    prev_obj = _sum(cost * x)
    exited = False
    for _ in range(max_iter):
        x = x - lr * cost
        remembered.append(x)
        for _ in range(proj_iter):
            before = x
            z = x + p1
            x = z.clamp_min(0.0)
            p1 = z - x
            z = x + p2
            x = z - (_sum(z, 0) - 1.0).clamp_min(0.0) / n
            p2 = z - x
            z = x + p3
            x = z - (_sum(z, 1) - 1.0) / m
            p3 = z - x
            if torch.equal(x, before):
                exited = True
                break
        obj = _sum(cost * x)
        if obj.item() == prev_obj.item():
            exited = True
            break
        prev_obj = obj
    return torch.stack(remembered).mean(dim=0), exited
