"""The 2019 relaxed matching transcribed from its description (golden README), one problem at a time.

Written with the 2019 code's own matrix forms (outer products with ones vectors, masks blended
with ``X * mask + (1 - mask) * P``), so it gives the same float32 bits; the layer is tested against it.
"""

from __future__ import annotations

import torch


def reference_start(cost: torch.Tensor) -> torch.Tensor:
    """cost (n, m) -> one-hot start: per column keep the cheapest row, the rest become max(C); rows take their argmin."""
    n, m = cost.shape
    replaced = cost.clone()
    largest = cost.max()
    for j in range(m):
        best = torch.argmin(cost[:, j])
        for i in range(n):
            if i != best:
                replaced[i, j] = largest
    start = torch.zeros_like(cost)
    start[torch.arange(n), replaced.argmin(dim=1)] = 1.0
    return start


def reference_matching(cost: torch.Tensor, max_iter: int, proj_iter: int, lr: float) -> tuple[torch.Tensor, int]:
    """cost (n, m) -> (mean of the start and the pre-projection iterates (n, m), outer steps taken)."""
    n, m = cost.shape
    x = reference_start(cost)
    iterates = [x]
    corrections = [torch.zeros_like(cost) for _ in range(3)]
    norms = [0.0]
    for _ in range(max_iter):
        x = x - lr * cost
        norms.append((x * cost).norm().item())
        iterates.append(x)
        for _ in range(proj_iter):
            before = x.clone()
            z = x + corrections[0]
            y = torch.relu(z)
            corrections[0] = z - y
            z = y + corrections[1]
            col = z.sum(dim=0, keepdim=True)
            keep = (col <= 1).float()
            y = z * keep + (1 - keep) * (z - torch.ones(n, 1).mm(col - 1) / n)
            corrections[1] = z - y
            z = y + corrections[2]
            row = z.sum(dim=1, keepdim=True)
            y = z - (row - 1).mm(torch.ones(1, m)) / m
            corrections[2] = z - y
            x = y
            if (x - before).norm().item() == 0:
                break
        if norms[-2] == norms[-1]:
            break
    return sum(iterates) / len(iterates), len(iterates) - 1
