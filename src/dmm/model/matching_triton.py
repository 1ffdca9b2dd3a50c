"""A fused Triton kernel for the ``"batched"`` relaxed matching layer, forward and backward.

The ``"batched"`` implementation of :func:`dmm.model.matching.relax` runs a few thousand small
element-wise kernels per call on CUDA (``max_iter`` outer steps, each with ``proj_iter``
Dykstra rounds of a dozen operations), and autograd runs as many again backwards.
:func:`relax_triton` computes the same thing in **one kernel launch** each way: one Triton
program per problem of the padded batch keeps its problem's ``(N, M)`` matrices (cost,
iterate, the three Dykstra corrections and the running total) in registers, padded to
power-of-two tiles, for all the steps.

Forward. It mirrors :func:`dmm.model.matching._relax_batched` operation by operation: the same
float32 arithmetic in the same order (fp contraction into FMAs is switched off, divisions and
the square root round to nearest), the same start point (:func:`dmm.model.matching.greedy_start`,
computed in the kernel), column and row sums and the squared norm accumulated in
float64 and rounded back to float32, and the same per-problem early exits (a problem stops its
outer steps when its norm equals the previous one, its Dykstra rounds when a round leaves the
iterate unchanged). Where the torch path only masks a finished problem, the kernel leaves its
loops, which gives the same values.

Backward. Given its decisions (which entries the ReLU kept, which columns the column
projection moved, how many rounds each step ran) the layer is linear in the cost, so its
gradient is that linear map transposed. When a gradient is needed the forward kernel writes
those decisions to a trace (one byte per entry and round); the backward kernel walks the steps
and rounds in reverse through the trace, in one launch. The start point, the norms and the
exits are piecewise constant and carry no gradient, as in autograd through the torch path.

Differences: a float64 sum accumulated in another order (Triton's reduction tree against
torch's) can round to another float32 in rare cases, so an early exit, which compares floats
for equality, can fire at another step in a few problems; elsewhere the forward agrees with the
torch path within 1e-6 and the gradient with autograd through it within float rounding.

Needs a CUDA tensor, or CPU tensors with ``TRITON_INTERPRET=1`` set before triton is imported
(Triton's interpreter, slow, for tests). The kernels live in :mod:`dmm.model.matching_kernels`,
imported on first use, so importing this module works where triton is not installed.
"""

from __future__ import annotations

import functools
import os

import torch


@functools.lru_cache(maxsize=None)
def _kernels():
    """(triton, forward_kernel, backward_kernel), imported once; a clear error without triton."""
    try:
        import triton

        from . import matching_kernels
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError("the Triton relaxed-matching kernel needs the 'triton' package, which "
                           "is not installed; use MATCHING.IMPLEMENTATION 'batched' instead") from exc
    return triton, matching_kernels.forward_kernel, matching_kernels.backward_kernel


def _check(cost: torch.Tensor, valid: torch.Tensor) -> None:
    if cost.shape != valid.shape or cost.dim() != 3:
        raise ValueError(f"cost {tuple(cost.shape)} and valid {tuple(valid.shape)} must be equal (B, N, M)")
    if cost.dtype != torch.float32:
        raise ValueError(f"the Triton relaxed-matching kernel computes in float32, got cost {cost.dtype}")
    if valid.device != cost.device:
        raise ValueError(f"cost on {cost.device} and valid on {valid.device} must share a device")


def _launch_options(triton, n: int, m: int) -> dict:
    block_n = triton.next_power_of_2(n)
    block_m = triton.next_power_of_2(m)
    num_warps = 1 if block_n * block_m <= 256 else 2 if block_n * block_m <= 1024 else 4
    return dict(BLOCK_N=block_n, BLOCK_M=block_m, num_warps=num_warps)


def _forward(cost: torch.Tensor, valid: torch.Tensor, max_iter: int, proj_iter: int, lr: float,
             trace: bool) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """(assignment, steps, trace): trace is (rounds, relu, moved) or () (see forward_kernel)."""
    triton, kernel, _ = _kernels()
    if cost.device.type != "cuda" and os.environ.get("TRITON_INTERPRET", "0") != "1":
        raise RuntimeError(f"the Triton relaxed-matching kernel needs CUDA tensors, got {cost.device} "
                           "(or set TRITON_INTERPRET=1 before importing triton to run it on the CPU)")
    b, n, m = cost.shape
    device = cost.device
    if b == 0 or n == 0 or m == 0:
        return torch.zeros(b, n, m, device=device), torch.zeros(b, dtype=torch.int64, device=device), ()
    # Every buffer is written where it is read, so none is filled first: the layer is one launch.
    out = torch.empty(b, n, m, dtype=torch.float32, device=device)
    steps = torch.empty(b, dtype=torch.int64, device=device)
    options = _launch_options(triton, n, m)
    c = cost.detach().contiguous()
    v = valid.contiguous()
    if trace:
        rounds = torch.empty(b, max_iter, dtype=torch.int32, device=device)
        relu = torch.empty(b, max_iter * proj_iter, options["BLOCK_N"], options["BLOCK_M"], dtype=torch.int8,
                           device=device)
        moved = torch.empty(b, max_iter * proj_iter, options["BLOCK_M"], dtype=torch.int8, device=device)
    else:
        rounds = relu = moved = out  # not written
    kernel[(b,)](c, v.view(torch.uint8), out, steps, rounds, relu, moved, n, m, int(max_iter),
                 int(proj_iter), float(lr), TRACE=trace, enable_fp_fusion=False, **options)
    return out, steps, ((rounds, relu, moved) if trace else ())


class _RelaxFunction(torch.autograd.Function):
    """The fused layer with its fused gradient w.r.t. ``cost`` (once differentiable)."""

    @staticmethod
    def forward(ctx, cost, valid, max_iter, proj_iter, lr):
        out, steps, trace = _forward(cost, valid, max_iter, proj_iter, lr, trace=True)
        ctx.save_for_backward(valid, steps, *trace)
        ctx.settings = (max_iter, proj_iter, lr)
        ctx.mark_non_differentiable(steps)
        return out, steps

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out, _grad_steps):
        valid, steps, *trace = ctx.saved_tensors
        max_iter, proj_iter, lr = ctx.settings
        b, n, m = valid.shape
        if not trace:
            return torch.zeros(b, n, m, device=valid.device), None, None, None, None
        triton, _, kernel = _kernels()
        grad_cost = torch.empty(b, n, m, dtype=torch.float32, device=valid.device)
        rounds, relu, moved = trace
        kernel[(b,)](grad_out.contiguous(), valid.contiguous().view(torch.uint8), steps, rounds, relu, moved,
                     grad_cost, n, m, int(max_iter), int(proj_iter), float(lr), **_launch_options(triton, n, m))
        return grad_cost, None, None, None, None


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
        assignment (B, N, M) float32, zero outside ``valid``, differentiable w.r.t. ``cost``
        (one more launch backwards) when grad is enabled and ``cost`` requires it; steps (B,)
        int64, the outer steps each problem took.
    Raises:
        RuntimeError: triton is not installed, or the tensors are not on CUDA outside the interpreter.
        ValueError: wrong shapes or dtype.
    """
    _check(cost, valid)
    if torch.is_grad_enabled() and cost.requires_grad:
        return _RelaxFunction.apply(cost, valid, int(max_iter), int(proj_iter), float(lr))
    with torch.no_grad():
        out, steps, _ = _forward(cost, valid, max_iter, proj_iter, lr, trace=False)
    return out, steps
