"""The fused Triton kernels of the relaxed matching layer (forward and backward) against the
``"batched"`` torch path and autograd through it.

On the CPU the kernel runs in Triton's interpreter, which must be switched on before triton is
imported: those runs happen in one subprocess with ``TRITON_INTERPRET=1`` (so this process,
and any other test importing triton, is unaffected), which saves its results for the
comparisons here. The interpreter is slow, so the problems are tiny and few.
"""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dmm
import dmm.model.matching_triton as matching_triton
from dmm.model.matching import greedy_start, relax
from dmm.model.matching_triton import relax_triton

from .test_matching import random_batch

ITERATIONS = ((10, 5), (40, 5))
LR = 0.1


def small_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """6 padded problems up to 3x8: full, partial, 1x1, no valid pair, fewer proposals than
    templates (3x2), and 2x7; padding holds a cost that must not matter."""
    g = torch.Generator().manual_seed(3)
    sizes = [(3, 8), (2, 5), (1, 1), (0, 0), (3, 2), (2, 7)]
    cost = -(0.7 * (torch.rand(len(sizes), 3, 8, generator=g) * 2 - 1)
             + 0.3 * (torch.rand(len(sizes), 3, 8, generator=g) > 0.8).float())
    valid = torch.zeros(len(sizes), 3, 8, dtype=torch.bool)
    for i, (n, m) in enumerate(sizes):
        valid[i, :n, :m] = True
    return torch.where(valid, cost, torch.full_like(cost, 7.0)), valid


def tied_costs(valid: torch.Tensor) -> torch.Tensor:
    """Costs of :func:`small_batch`'s shapes drawn from three values, so ties are everywhere; the
    2x5 problem holds the start-point example of :func:`greedy_start` and two costlier columns."""
    g = torch.Generator().manual_seed(4)
    cost = torch.tensor([-0.5, -0.3, 0.0])[torch.randint(0, 3, valid.shape, generator=g)]
    cost[1, :2, :5] = -torch.tensor([[0.9, 0.8, 0.7, 0.0, 0.0], [0.5, 0.4, 0.6, 0.0, 0.0]])
    return cost


def upstream_gradient(cost: torch.Tensor) -> torch.Tensor:
    """A fixed random gradient of the loss w.r.t. the assignment, (B, N, M)."""
    return torch.randn(cost.shape, generator=torch.Generator().manual_seed(5))


_INTERPRETED = """
import sys
import torch
from dmm.model.matching_triton import relax_triton
cost, valid, grad, iterations, lr, tied = torch.load(sys.argv[1])
starts = [relax_triton(c, valid, 0, 1, lr)[0] for c in (tied, cost)]  # no step: the start points
results = []
for it, pit in iterations:
    plain = relax_triton(cost, valid, it, pit, lr)
    leaf = cost.clone().requires_grad_()
    assignment, steps = relax_triton(leaf, valid, it, pit, lr)
    (assignment * grad).sum().backward()
    results.append((plain, (assignment.detach(), steps), leaf.grad))
torch.save((results, starts), sys.argv[2])
"""


@pytest.fixture(scope="module")
def interpreted(tmp_path_factory):
    """From the kernels in Triton's interpreter: (cost, valid, [((assignment, steps) without
    grad, the same with grad, grad of cost for :func:`upstream_gradient`) per ITERATIONS],
    (the costs of :func:`tied_costs`, [their start points, the start points of cost]))."""
    tmp = tmp_path_factory.mktemp("triton")
    cost, valid = small_batch()
    tied = tied_costs(valid)
    torch.save((cost, valid, upstream_gradient(cost), ITERATIONS, LR, tied), tmp / "inputs.pt")
    env = dict(os.environ, TRITON_INTERPRET="1")
    src = str(Path(dmm.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src] + [p for p in [env.get("PYTHONPATH")] if p])
    done = subprocess.run([sys.executable, "-c", _INTERPRETED, str(tmp / "inputs.pt"), str(tmp / "outputs.pt")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    results, starts = torch.load(tmp / "outputs.pt")
    return cost, valid, results, (tied, starts)


@pytest.mark.parametrize("index", range(len(ITERATIONS)))
def test_interpreted_kernel_equals_batched_torch(interpreted, index):
    cost, valid, results, _ = interpreted
    max_iter, proj_iter = ITERATIONS[index]
    (assignment, steps), traced, _ = results[index]
    assert torch.equal(traced[0], assignment) and torch.equal(traced[1], steps)  # the trace changes nothing
    expected, expected_steps = relax(cost, valid, max_iter, proj_iter, LR, "batched")
    assert assignment.dtype == torch.float32 and assignment.shape == cost.shape
    assert steps.dtype == torch.int64 and steps.shape == (cost.shape[0],)
    assert torch.equal(steps, expected_steps)
    torch.testing.assert_close(assignment, expected, atol=1e-6, rtol=0)
    assert torch.all(assignment[~valid] == 0)
    assert steps[3] == 0 and torch.all(assignment[3] == 0)  # the problem without a valid pair
    assert (assignment[4, :3, :2] != 0).any()  # fewer proposals than templates still gets an answer


def test_interpreted_kernel_start_point_is_bit_equal_to_greedy_start(interpreted):
    """The kernel's start point (Triton code) is the torch greedy_start's, on ties and without."""
    cost, valid, _, (tied, (tied_starts, starts)) = interpreted
    assert torch.equal(tied_starts, greedy_start(tied, valid))
    assert tied_starts[1, :2, :5].tolist() == [[1, 0, 0, 0, 0], [1, 0, 0, 0, 0]]  # row 1 is no column's cheapest
    assert torch.equal(starts, greedy_start(cost, valid))
    assert (starts[:, :, 1:] != 0).any()  # not every row takes column 0


def test_interpreted_kernel_stops_early_somewhere(interpreted):
    """The batch exercises the early exit: some problem stops before max_iter, some does not."""
    _, _, results, _ = interpreted
    steps = results[1][0][1]
    assert (steps < ITERATIONS[1][0]).any() and (steps == ITERATIONS[1][0]).any()


@pytest.mark.parametrize("index", range(len(ITERATIONS)))
def test_interpreted_backward_kernel_equals_autograd_through_batched_torch(interpreted, index):
    """The gradient w.r.t. the cost, early exits included, as autograd gives it through the torch path."""
    cost, valid, results, _ = interpreted
    max_iter, proj_iter = ITERATIONS[index]
    _, _, grad = results[index]
    leaf = cost.clone().requires_grad_()
    assignment, _ = relax(leaf, valid, max_iter, proj_iter, LR, "batched")
    (assignment * upstream_gradient(cost)).sum().backward()
    assert grad.shape == cost.shape and grad.dtype == torch.float32
    assert leaf.grad.abs().max() > 0.1  # the gradient is not trivially zero
    torch.testing.assert_close(grad, leaf.grad, atol=1e-6, rtol=1e-5)
    assert torch.all(grad[~valid] == 0)


def test_rejects_bad_inputs():
    cost, valid = small_batch()
    with pytest.raises(ValueError, match="float32"):
        relax_triton(cost.double(), valid, 10, 5, LR)
    with pytest.raises(ValueError, match="must be equal"):
        relax_triton(cost, valid[:, :2], 10, 5, LR)


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1", reason="runs CPU tensors when interpreting")
def test_cpu_tensors_need_cuda_or_the_interpreter():
    pytest.importorskip("triton")
    cost, valid = small_batch()
    with pytest.raises(RuntimeError, match="CUDA"):
        relax_triton(cost, valid, 10, 5, LR)


def test_import_without_triton_and_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)
    monkeypatch.setitem(sys.modules, "triton.language", None)
    matching_triton._kernels.cache_clear()
    try:
        module = importlib.reload(matching_triton)
        cost, valid = small_batch()
        with pytest.raises(RuntimeError, match="triton"):
            module.relax_triton(cost, valid, 10, 5, LR)
    finally:
        monkeypatch.undo()
        importlib.reload(matching_triton)


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1", reason="compiles, does not interpret")
def test_kernels_compile_for_hopper_without_a_gpu():
    """Both kernels, as launched for 5 x 50 problems, compile to sm_90 (H100/H200) machine code:
    the interpreter accepts programs the compiler rejects."""
    pytest.importorskip("triton")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    triton, forward_kernel, backward_kernel = matching_triton._kernels()
    options = matching_triton._launch_options(triton, 5, 50)
    blocks = {"BLOCK_N": options["BLOCK_N"], "BLOCK_M": options["BLOCK_M"]}
    scalars = {"N": "i32", "M": "i32", "max_iter": "i32", "proj_iter": "i32", "lr": "fp32",
               "BLOCK_N": "constexpr", "BLOCK_M": "constexpr"}
    forward = {"cost_ptr": "*fp32", "valid_ptr": "*u8", "out_ptr": "*fp32",
               "steps_ptr": "*i64", "rounds_ptr": "*i32", "relu_ptr": "*i8", "moved_ptr": "*i8",
               **scalars, "TRACE": "constexpr"}
    backward = {"grad_out_ptr": "*fp32", "valid_ptr": "*u8", "steps_ptr": "*i64", "rounds_ptr": "*i32",
                "relu_ptr": "*i8", "moved_ptr": "*i8", "grad_cost_ptr": "*fp32", **scalars}
    sources = [ASTSource(forward_kernel, forward, constexprs={**blocks, "TRACE": trace}) for trace in (False, True)]
    sources.append(ASTSource(backward_kernel, backward, constexprs=blocks))
    for source in sources:
        compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32),
                                  options={"num_warps": options["num_warps"], "enable_fp_fusion": False})
        assert len(compiled.asm["cubin"]) > 1000


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("max_iter,proj_iter", ITERATIONS)
def test_cuda_kernel_equals_batched_torch_on_cuda(max_iter, proj_iter):
    cost, valid, _ = random_batch(5, 64, max_n=5, max_m=50)
    cost, valid = cost.cuda(), valid.cuda()
    assignment, steps = relax_triton(cost, valid, max_iter, proj_iter, LR)
    expected, expected_steps = relax(cost, valid, max_iter, proj_iter, LR, "batched")
    assert assignment.is_cuda and steps.is_cuda
    same = steps == expected_steps
    assert same.float().mean().item() >= 0.95, (steps.tolist(), expected_steps.tolist())
    torch.testing.assert_close(assignment[same], expected[same], atol=1e-5, rtol=0)
    assert torch.all(assignment[~valid] == 0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_backward_kernel_equals_autograd_through_batched_torch():
    cost, valid, _ = random_batch(6, 64, max_n=5, max_m=50)
    cost, valid = cost.cuda(), valid.cuda()
    grad = upstream_gradient(cost).cuda()
    leaves = [cost.clone().requires_grad_() for _ in range(2)]
    assignment, steps = relax_triton(leaves[0], valid, 10, 5, LR)
    expected, expected_steps = relax(leaves[1], valid, 10, 5, LR, "batched")
    (assignment * grad).sum().backward()
    (expected * grad).sum().backward()
    same = steps == expected_steps
    assert same.float().mean().item() >= 0.95, (steps.tolist(), expected_steps.tolist())
    torch.testing.assert_close(leaves[0].grad[same], leaves[1].grad[same], atol=1e-5, rtol=1e-4)
    assert torch.all(leaves[0].grad[~valid] == 0)
