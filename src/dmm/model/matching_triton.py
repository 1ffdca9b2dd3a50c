"""A fused Triton kernel for the ``"batched"`` relaxed matching layer (forward only).

The ``"batched"`` implementation of :func:`dmm.model.matching.relax` runs a few thousand small
element-wise kernels per call on CUDA (``max_iter`` outer steps, each with ``proj_iter``
Dykstra rounds of a dozen operations). :func:`relax_triton` computes the same thing in **one
kernel launch**: one Triton program per problem of the padded batch keeps its problem's
``(N, M)`` matrices (cost, iterate, the three Dykstra corrections and the running total) in
registers, padded to power-of-two tiles, for all the steps.

It mirrors :func:`dmm.model.matching._relax_batched` operation by operation: the same float32
arithmetic in the same order (fp contraction into FMAs is switched off, divisions and the
square root round to nearest), the same start point (:func:`dmm.model.matching.greedy_start`,
computed in torch before the launch), column and row sums and the squared norm accumulated in
float64 and rounded back to float32, and the same per-problem early exits (a problem stops its
outer steps when its norm equals the previous one, its Dykstra rounds when a round leaves the
iterate unchanged). Where the torch path only masks a finished problem, the kernel leaves its
loops, which gives the same values.

Differences: a float64 sum accumulated in another order (Triton's reduction tree against
torch's) can round to another float32 in rare cases, so an early exit, which compares floats
for equality, can fire at another step in a few problems; elsewhere the results agree with the
torch path within 1e-6.

No autograd: the outputs do not require grad and no gradient reaches ``cost``; training keeps
the torch implementations. Needs a CUDA tensor, or CPU tensors with ``TRITON_INTERPRET=1`` set
before triton is imported (Triton's interpreter, slow, for tests). Triton is imported lazily,
so importing this module works where triton is not installed.
"""

from __future__ import annotations

import functools
import os

import torch

from .matching import greedy_start


@functools.lru_cache(maxsize=None)
def _kernel():
    """Import triton and build the kernel once; a clear error where triton is unavailable."""
    try:
        import triton
        import triton.language as tl
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError("the Triton relaxed-matching kernel needs the 'triton' package, which "
                           "is not installed; use MATCHING.IMPLEMENTATION 'batched' instead") from exc

    @triton.jit
    def relax_kernel(cost_ptr, valid_ptr, start_ptr, out_ptr, steps_ptr, N, M, max_iter, proj_iter, lr,
                     BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr):
        # One program per problem b: cost, valid, start (B, N, M) contiguous -> out (B, N, M), steps (B,).
        b = tl.program_id(0).to(tl.int64)
        rows = tl.arange(0, BLOCK_N)[:, None]
        cols = tl.arange(0, BLOCK_M)[None, :]
        inside = (rows < N) & (cols < M)
        offsets = b * N * M + rows * M + cols

        valid = (tl.load(valid_ptr + offsets, mask=inside, other=0) != 0) & inside
        validf = valid.to(tl.float32)
        c = tl.where(valid, tl.load(cost_ptr + offsets, mask=inside, other=0.0), 0.0)
        x = tl.load(start_ptr + offsets, mask=inside, other=0.0)
        rows_per_col = tl.maximum(tl.sum(validf, axis=0), 1.0)[None, :]  # (1, BLOCK_M)
        cols_per_row = tl.maximum(tl.sum(validf, axis=1), 1.0)[:, None]  # (BLOCK_N, 1)

        p1 = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
        p2 = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
        p3 = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
        total = x
        count = tl.full((), 1.0, tl.float32)
        running = tl.sum(valid.to(tl.int32)) > 0
        previous_norm = tl.full((), 0.0, tl.float32)
        step = 0
        # A problem that stops running keeps its values in the torch path: leave the loop.
        while (step < max_iter) & running:
            x = x - lr * c
            xc = (x * c).to(tl.float64)
            norm = tl.sqrt(tl.sum(tl.sum(xc * xc, axis=1), axis=0)).to(tl.float32)
            total = total + x
            count = count + 1.0
            projecting = running
            round_ = 0
            while (round_ < proj_iter) & projecting:
                z = x + p1
                y = tl.maximum(z, 0.0) * validf
                p1 = z - y
                z = y + p2
                sums = tl.sum(z.to(tl.float64), axis=0).to(tl.float32)[None, :]
                y = tl.where(sums <= 1.0, z, z - tl.math.div_rn(sums - 1.0, rows_per_col)) * validf
                p2 = z - y
                z = y + p3
                sums = tl.sum(z.to(tl.float64), axis=1).to(tl.float32)[:, None]
                y = (z - tl.math.div_rn(sums - 1.0, cols_per_row)) * validf
                p3 = z - y
                projecting = tl.sum(((y != x) & inside).to(tl.int32)) > 0
                x = y
                round_ += 1
            running = norm != previous_norm
            previous_norm = norm
            step += 1

        out = tl.math.div_rn(total, tl.broadcast_to(count, (BLOCK_N, BLOCK_M))) * validf
        tl.store(out_ptr + offsets, out, mask=inside)
        tl.store(steps_ptr + b, (count - 1.0).to(tl.int64))

    return triton, relax_kernel


def relax_triton(cost: torch.Tensor, valid: torch.Tensor, max_iter: int, proj_iter: int,
                 lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """DMM-Net's relaxed matching, ``relax(..., "batched")`` in one Triton kernel launch.

    Args:
        cost: (B, N, M) float32, CUDA (or CPU under ``TRITON_INTERPRET=1``). Values outside
            ``valid`` are ignored.
        valid: (B, N, M) bool, the real pairs of each padded problem (rows x columns).
        max_iter, proj_iter: outer steps and Dykstra rounds per step.
        lr: gradient step.
    Returns:
        assignment (B, N, M) float32, zero outside ``valid``; steps (B,) int64, the outer steps
        each problem took. Forward only: neither output carries a gradient.
    Raises:
        RuntimeError: triton is not installed, or the tensors are not on CUDA outside the interpreter.
        ValueError: wrong shapes or dtype.
    """
    if cost.shape != valid.shape or cost.dim() != 3:
        raise ValueError(f"cost {tuple(cost.shape)} and valid {tuple(valid.shape)} must be equal (B, N, M)")
    if cost.dtype != torch.float32:
        raise ValueError(f"the Triton relaxed-matching kernel computes in float32, got cost {cost.dtype}")
    if valid.device != cost.device:
        raise ValueError(f"cost on {cost.device} and valid on {valid.device} must share a device")
    triton, kernel = _kernel()
    if cost.device.type != "cuda" and os.environ.get("TRITON_INTERPRET", "0") != "1":
        raise RuntimeError(f"the Triton relaxed-matching kernel needs CUDA tensors, got {cost.device} "
                           "(or set TRITON_INTERPRET=1 before importing triton to run it on the CPU)")
    b, n, m = cost.shape
    out = torch.zeros(b, n, m, dtype=torch.float32, device=cost.device)
    steps = torch.zeros(b, dtype=torch.int64, device=cost.device)
    if b == 0 or n == 0 or m == 0:
        return out, steps
    with torch.no_grad():
        c = cost.detach().contiguous()
        v = valid.contiguous()
        start = greedy_start(c, v).contiguous()
        block_n = triton.next_power_of_2(n)
        block_m = triton.next_power_of_2(m)
        num_warps = 1 if block_n * block_m <= 256 else 2 if block_n * block_m <= 1024 else 4
        kernel[(b,)](c, v.view(torch.uint8), start, out, steps, n, m, int(max_iter), int(proj_iter), float(lr),
                     BLOCK_N=block_n, BLOCK_M=block_m, num_warps=num_warps, enable_fp_fusion=False)
    return out, steps
