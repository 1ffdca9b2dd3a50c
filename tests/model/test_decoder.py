import copy

import pytest
import torch
import torch.nn.functional as F

from dmm.model.decoder import Decoder, add_mask_gates, mask_pyramid, pyramid_sizes


def make_inputs(b=2, o=3, h=64, w=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    sizes = [(h // 32, w // 32), (h // 16, w // 16), (h // 8, w // 8), (h // 4, w // 4)]
    skips = [torch.randn(b, c, *s, generator=g) for c, s in zip((128, 128, 64, 32), sizes)]
    masks = [torch.rand(b, o, h, w, generator=g) for _ in range(3)]
    return skips, masks


def test_mask_pyramid_rounds_odd_sizes_up_like_ceil_mode_max_pooling():
    mask = torch.zeros(1, 1, 255, 448)
    mask[0, 0, 248:252, 100:104] = 1  # rows 248-251
    levels = mask_pyramid(mask, 4)
    assert [tuple(p.shape[-2:]) for p in levels] == [(8, 14), (16, 28), (32, 56), (64, 112)]
    rows = torch.nonzero(levels[-1][0, 0].any(dim=1)).flatten().tolist()
    assert rows == [62]  # adaptive pooling to 64 rows would give rows 62-63


@pytest.mark.slow  # at full width; the fast test_shared_path_gradients_equal_the_2019_layout_... covers it narrower
def test_shared_gate_path_equals_three_full_convolutions():
    torch.manual_seed(0)
    full = Decoder(shared_gate_conv=False)
    shared = copy.deepcopy(full)
    shared.shared_gate_conv = True
    skips, masks = make_inputs()
    run = torch.tensor([[True, False, True], [True, True, True]])
    out_f, mem_f = full(skips, masks, run)
    out_s, mem_s = shared(skips, masks, run)
    torch.testing.assert_close(out_s, out_f, atol=1e-5, rtol=0)
    out_f2, _ = full(skips, masks[::-1], run, mem_f)
    out_s2, _ = shared(skips, masks[::-1], run, mem_s)
    torch.testing.assert_close(out_s2, out_f2, atol=1e-5, rtol=0)


def test_slots_that_do_not_run_are_zero_keep_their_memory_and_skip_the_spatial_chain():
    torch.manual_seed(0)
    dec = Decoder().eval()
    skips, masks = make_inputs(b=1, o=3)
    out_all, _ = dec(skips, masks, torch.ones(1, 3, dtype=torch.bool))
    memory = [torch.full_like(m, 0.5) for m in dec.initial_memory(skips, 3)]
    out_mid, new_memory = dec(skips, masks, torch.tensor([[True, False, True]]), memory)
    assert torch.all(out_mid[:, 1] == 0) and all(torch.all(m[:, 1] == 0.5) for m in new_memory)
    two = [m[:, [0, 2]] for m in masks]
    out_two, _ = dec(skips, two, torch.ones(1, 2, dtype=torch.bool), [m[:, [0, 2]] for m in memory])
    torch.testing.assert_close(out_mid[:, 2], out_two[:, 1])
    assert not torch.allclose(out_all[:, 2], out_two[:, 1])


def test_output_resize_is_bilinear_in_eval_and_nearest_in_training():
    torch.manual_seed(0)
    dec = Decoder()
    skips, masks = make_inputs(b=1, o=1, h=127, w=224)
    skips = [torch.randn(1, c, *s) for c, s in zip((128, 128, 64, 32), [(4, 7), (8, 14), (16, 28), (32, 56)])]
    run = torch.ones(1, 1, dtype=torch.bool)
    dec.train()
    nearest, _ = dec(skips, masks, run)
    dec.eval()
    bilinear, _ = dec(skips, masks, run)
    assert nearest.shape == bilinear.shape == (1, 1, 127, 224)
    # nearest repeats the 64x112 map's values; bilinear interpolates between them
    assert len(torch.unique(nearest)) <= 64 * 112 < len(torch.unique(bilinear))


def test_output_size_range_and_many_objects():
    dec = Decoder()
    skips = [torch.randn(1, c, *s) for c, s in zip((128, 128, 64, 32), [(3, 4), (5, 7), (9, 13), (17, 25)])]
    masks = [torch.rand(1, 7, 65, 97) for _ in range(3)]
    out, memory = dec(skips, masks, torch.ones(1, 7, dtype=torch.bool))
    assert out.shape == (1, 7, 65, 97) and out.min() >= 0 and out.max() <= 1
    assert [tuple(h.shape) for h in memory] == [(1, 7, 128, 3, 4), (1, 7, 64, 5, 7), (1, 7, 32, 9, 13), (1, 7, 16, 17, 25)]


def test_gradients_reach_every_gate_weight():
    dec = Decoder()
    skips, masks = make_inputs(b=1, o=2)
    out, _ = dec(skips, masks, torch.ones(1, 2, dtype=torch.bool))
    out.sum().backward()
    for cell in dec.clstm_list:
        g = cell.Gates.weight.grad
        assert g is not None and g[:, cell.carry_channels + cell.skip_channels].abs().sum() > 0


def test_pyramid_sizes_are_the_mask_pyramid_shapes():
    for h, w in [(255, 448), (127, 224), (65, 97), (64, 112)]:
        pooled = mask_pyramid(torch.zeros(1, 1, h, w), 4)
        assert pyramid_sizes(h, w, 4) == [tuple(p.shape[-2:]) for p in pooled]


def test_split_weights_cover_the_gate_weight_in_checkpoint_order_cell_input_rows_doubled():
    for cell in Decoder().clstm_list:
        parts = cell.split_weights()
        c, h = cell.carry_channels, cell.hidden_size
        spatial = parts.carry_spatial[:, c:]
        carry = [parts.carry] if c else []
        whole = torch.cat(carry + [parts.skip, parts.mask, spatial, parts.temporal], 1)
        assert spatial.shape[1] == h
        weight, bias = cell.Gates.weight, cell.Gates.bias
        assert torch.equal(whole[:3 * h], weight[:3 * h]) and torch.equal(parts.bias[:3 * h], bias[:3 * h])
        assert torch.equal(whole[3 * h:], 2 * weight[3 * h:]) and torch.equal(parts.bias[3 * h:], 2 * bias[3 * h:])


def test_add_mask_gates_equals_base_plus_a_one_channel_convolution():
    base = torch.randn(2, 20, 13, 22).contiguous(memory_format=torch.channels_last)
    masks = torch.rand(3, 2, 1, 13, 22)
    weight = torch.randn(20, 1, 3, 3)
    taps = F.unfold(masks.flatten(0, 1), 3, padding=1).view(3, 2, 9, 13 * 22)
    got = add_mask_gates(base, taps, weight)
    want = base + F.conv2d(masks.flatten(0, 1), weight, padding=1).view(3, 2, 20, 13, 22)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_mask_pyramid_equals_repeated_two_by_two_ceil_pooling():
    for h, w in [(1, 1), (2, 3), (5, 7), (65, 97), (255, 448)]:
        masks = torch.rand(2, 1, h, w)
        x, want = F.max_pool2d(masks, 2, ceil_mode=True), []
        for _ in range(4):
            x = F.max_pool2d(x, 2, ceil_mode=True)
            want.append(x)
        assert all(torch.equal(a, b) for a, b in zip(mask_pyramid(masks, 4), want[::-1]))


def test_shared_path_gradients_equal_the_2019_layout_with_memory_and_partial_runs():
    """Training mode, a temporal state, a slot no video runs and one some videos skip: outputs,
    memory and every gradient (weights, skips, masks) agree with three full convolutions per cell."""
    torch.manual_seed(0)
    full = Decoder(skip_channels=(16, 16, 8, 8), hidden_sizes=(16, 8, 8, 4), shared_gate_conv=False).train()
    shared = copy.deepcopy(full)
    shared.shared_gate_conv = True
    skips = [torch.randn(2, c, *s) for c, s in zip((16, 16, 8, 8), pyramid_sizes(32, 48, 4))]
    masks = [torch.rand(2, 4, 32, 48) for _ in range(3)]
    memory = [torch.randn_like(m) for m in full.initial_memory(skips, 4)]
    run = torch.tensor([[True, False, True, False], [True, False, False, True]])
    results = []
    for dec in (full, shared):
        ins = [x.clone().requires_grad_() for x in skips + masks]
        out, mem = dec(ins[:4], ins[4:], run, memory)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().add(sum(m.sum() for m in mem)).backward()
        results.append((out, mem, [x.grad for x in ins], [p.grad for p in dec.parameters()]))
    (out_f, mem_f, in_f, par_f), (out_s, mem_s, in_s, par_s) = results
    torch.testing.assert_close(out_s, out_f, atol=1e-5, rtol=0)
    for a, b in zip(mem_s + in_s + par_s, mem_f + in_f + par_f):
        torch.testing.assert_close(a, b, atol=1e-5 * max(1.0, b.abs().max().item()), rtol=1e-4)
    assert torch.all(out_s[:, 1] == 0) and torch.equal(mem_s[0][:, 1], memory[0][:, 1])
