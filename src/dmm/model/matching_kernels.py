"""The Triton kernels of :mod:`dmm.model.matching_triton` (importing this module needs triton).

``forward_kernel`` is the ``"batched"`` relaxed matching layer for one problem per program,
optionally writing the trace of its decisions; ``backward_kernel`` is its gradient w.r.t. the
cost from that trace. :mod:`dmm.model.matching_triton` explains both and launches them.

``greedy_start`` here is :func:`dmm.model.matching.greedy_start` written in Triton, because the
kernel computes its start point itself; it is not a second rule: the tests check the kernel's
start point bit-equal to the torch function's (tests/model/test_matching_triton.py).
"""

import triton
import triton.language as tl


@triton.jit
def load_problem(valid_ptr, N, M, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr):
    # Program b's tile: element offsets into (B, N, M), which tile entries are inside (N, M)
    # and valid, and the valid entries per column (1, BLOCK_M) and per row (BLOCK_N, 1).
    b = tl.program_id(0).to(tl.int64)
    rows = tl.arange(0, BLOCK_N)[:, None]
    cols = tl.arange(0, BLOCK_M)[None, :]
    inside = (rows < N) & (cols < M)
    offsets = b * N * M + rows * M + cols
    valid = (tl.load(valid_ptr + offsets, mask=inside, other=0) != 0) & inside
    validf = valid.to(tl.float32)
    rows_per_col = tl.maximum(tl.sum(validf, axis=0), 1.0)[None, :]
    cols_per_row = tl.maximum(tl.sum(validf, axis=1), 1.0)[:, None]
    return b, rows, cols, inside, offsets, valid, rows_per_col, cols_per_row


@triton.jit
def greedy_start(c, valid, rows, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr):
    # dmm.model.matching.greedy_start for one problem's tile: every column keeps the entry of
    # its cheapest valid row (first on ties), the rest of it takes the problem's largest cost;
    # each row with a valid pair takes its cheapest valid column of that (first on ties).
    inf = float("inf")
    largest = tl.max(tl.max(tl.where(valid, c, -inf), axis=1), axis=0)
    best_row = tl.argmin(tl.where(valid, c, inf), axis=0, tie_break_left=True)[None, :]  # (1, BLOCK_M)
    replaced = tl.where(valid, tl.where(rows == best_row, c, largest), inf)
    choice = tl.argmin(replaced, axis=1, tie_break_left=True)[:, None]  # (BLOCK_N, 1)
    has_pair = tl.max(valid.to(tl.int32), axis=1)[:, None] > 0
    columns = tl.arange(0, BLOCK_M)[None, :]
    return ((columns == choice) & has_pair).to(tl.float32)


@triton.jit
def forward_kernel(cost_ptr, valid_ptr, out_ptr, steps_ptr, rounds_ptr, relu_ptr, moved_ptr,
                   N, M, max_iter, proj_iter, lr,
                   BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, TRACE: tl.constexpr):
    # One program per problem b: cost, valid (B, N, M) contiguous -> out (B, N, M), steps (B,).
    # TRACE: also rounds (B, max_iter) int32, and per round t = step * proj_iter + round the
    # ReLU's kept entries relu (B, T, BLOCK_N, BLOCK_M) and the moved columns moved (B, T, BLOCK_M), int8.
    b, rows, cols, inside, offsets, valid, rows_per_col, cols_per_row = load_problem(
        valid_ptr, N, M, BLOCK_N, BLOCK_M)
    validf = valid.to(tl.float32)
    c = tl.where(valid, tl.load(cost_ptr + offsets, mask=inside, other=0.0), 0.0)
    x = greedy_start(c, valid, rows, BLOCK_N, BLOCK_M)

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
            kept = z > 0.0
            y = tl.maximum(z, 0.0) * validf
            p1 = z - y
            z = y + p2
            sums = tl.sum(z.to(tl.float64), axis=0).to(tl.float32)[None, :]
            y = tl.where(sums <= 1.0, z, z - tl.math.div_rn(sums - 1.0, rows_per_col)) * validf
            p2 = z - y
            z = y + p3
            sums_r = tl.sum(z.to(tl.float64), axis=1).to(tl.float32)[:, None]
            y = (z - tl.math.div_rn(sums_r - 1.0, cols_per_row)) * validf
            p3 = z - y
            if TRACE:
                t = (b * max_iter + step) * proj_iter + round_
                tl.store(relu_ptr + (t * BLOCK_N + rows) * BLOCK_M + cols, (kept & valid).to(tl.int8))
                moved = tl.where(sums <= 1.0, 0, 1).to(tl.int8)  # (1, BLOCK_M)
                tl.store(moved_ptr + t * BLOCK_M + cols, moved)
            projecting = tl.sum(((y != x) & inside).to(tl.int32)) > 0
            x = y
            round_ += 1
        if TRACE:
            tl.store(rounds_ptr + b * max_iter + step, round_)
        running = norm != previous_norm
        previous_norm = norm
        step += 1

    out = tl.math.div_rn(total, tl.broadcast_to(count, (BLOCK_N, BLOCK_M))) * validf
    tl.store(out_ptr + offsets, out, mask=inside)
    tl.store(steps_ptr + b, (count - 1.0).to(tl.int64))


@triton.jit
def backward_kernel(grad_out_ptr, valid_ptr, steps_ptr, rounds_ptr, relu_ptr, moved_ptr, grad_cost_ptr,
                    N, M, max_iter, proj_iter, lr,
                    BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr):
    # One program per problem b: the adjoint of forward_kernel's computation, from its trace.
    # Names ending in _bar are adjoints: x_bar of the iterate, p*_bar of the Dykstra corrections.
    b, rows, cols, inside, offsets, valid, rows_per_col, cols_per_row = load_problem(
        valid_ptr, N, M, BLOCK_N, BLOCK_M)
    validf = valid.to(tl.float32)
    steps = tl.load(steps_ptr + b).to(tl.int32)
    # out = total / count * valid, count = steps + 1
    total_bar = tl.load(grad_out_ptr + offsets, mask=inside, other=0.0) * validf / (steps + 1.0)

    x_bar = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    p1_bar = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    p2_bar = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    p3_bar = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    cost_bar = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    for i in range(0, steps):
        step = steps - 1 - i
        rounds = tl.load(rounds_ptr + b * max_iter + step)
        for j in range(0, rounds):
            t = (b * max_iter + step) * proj_iter + rounds - 1 - j
            kept = tl.load(relu_ptr + (t * BLOCK_N + rows) * BLOCK_M + cols).to(tl.float32)
            moved = tl.load(moved_ptr + t * BLOCK_M + cols).to(tl.float32)  # (1, BLOCK_M)
            # row projection y3 = (z3 - (rowsum z3 - 1) / m) * valid; p3 = z3 - y3; x = y3
            u = (x_bar - p3_bar) * validf
            z3_bar = p3_bar + (u - tl.sum(u, axis=1)[:, None] / cols_per_row) * validf
            # column projection of the moved columns; p2 = z2 - y2; z3 = y2 + p3
            w = (z3_bar - p2_bar) * validf
            z2_bar = p2_bar + (w - moved * tl.sum(w, axis=0)[None, :] / rows_per_col) * validf
            p3_bar = z3_bar
            # y1 = relu(z1) * valid; p1 = z1 - y1; z2 = y1 + p2; z1 = x + p1
            z1_bar = p1_bar + kept * (z2_bar - p1_bar)
            p2_bar = z2_bar
            x_bar = z1_bar
            p1_bar = z1_bar
        # x = x - lr * c, then total += x
        x_bar = x_bar + total_bar
        cost_bar = cost_bar - lr * x_bar
    tl.store(grad_cost_ptr + offsets, cost_bar * validf, mask=inside)
