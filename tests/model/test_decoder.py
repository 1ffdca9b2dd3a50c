import copy

import torch

from dmm.model.decoder import Decoder


def make_inputs(b=2, o=3, h=64, w=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    sizes = [(h // 32, w // 32), (h // 16, w // 16), (h // 8, w // 8), (h // 4, w // 4)]
    skips = [torch.randn(b, c, *s, generator=g) for c, s in zip((128, 128, 64, 32), sizes)]
    masks = [torch.rand(b, o, h, w, generator=g) for _ in range(3)]
    return skips, masks


def test_fast_decoder_equals_three_full_convolutions():
    torch.manual_seed(0)
    fast = Decoder()
    naive = copy.deepcopy(fast)
    naive.shared_gate_conv = False
    skips, masks = make_inputs()
    valid = torch.tensor([[True, False, True], [True, True, True]])
    out_f, state_f = fast(skips, masks, valid)
    out_n, state_n = naive(skips, masks, valid)
    torch.testing.assert_close(out_f, out_n, atol=1e-5, rtol=0)
    # second frame, with the temporal state
    out_f2, state_f2 = fast(skips, masks[::-1], valid, state_f)
    out_n2, _ = naive(skips, masks[::-1], valid, state_n)
    torch.testing.assert_close(out_f2, out_n2, atol=1e-5, rtol=0)
    for a, b in zip(state_f.hidden, state_n.hidden):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_invalid_objects_are_zero_and_leave_spatial_state_unchanged():
    torch.manual_seed(0)
    dec = Decoder().eval()
    skips, masks = make_inputs(b=1, o=3)
    all_valid = torch.ones(1, 3, dtype=torch.bool)
    middle_off = torch.tensor([[True, False, True]])
    out_all, _ = dec(skips, masks, all_valid)
    out_mid, state = dec(skips, masks, middle_off)
    assert torch.all(out_mid[:, 1] == 0) and all(torch.all(h[:, 1] == 0) for h in state.hidden)
    torch.testing.assert_close(out_mid[:, 0], out_all[:, 0])
    # object 2 sees object 0's spatial state, as if object 1 did not exist
    two = [m[:, [0, 2]] for m in masks]
    out_two, _ = dec(skips, two, torch.ones(1, 2, dtype=torch.bool))
    torch.testing.assert_close(out_mid[:, 2], out_two[:, 1])
    assert not torch.allclose(out_all[:, 2], out_two[:, 1])


def test_output_size_range_and_many_objects():
    dec = Decoder()
    skips, masks = make_inputs(b=1, o=7, h=65, w=97)
    skips = [torch.randn(1, c, *s) for c, s in zip((128, 128, 64, 32), [(3, 4), (5, 7), (9, 13), (17, 25)])]
    out, state = dec(skips, masks, torch.ones(1, 7, dtype=torch.bool))
    assert out.shape == (1, 7, 65, 97) and out.min() >= 0 and out.max() <= 1
    assert [tuple(h.shape) for h in state.hidden] == [(1, 7, 128, 3, 4), (1, 7, 64, 5, 7), (1, 7, 32, 9, 13), (1, 7, 16, 17, 25)]


def test_gradients_reach_every_gate_weight():
    dec = Decoder()
    skips, masks = make_inputs(b=1, o=2)
    out, _ = dec(skips, masks, torch.ones(1, 2, dtype=torch.bool))
    out.sum().backward()
    for cell in dec.clstm_list:
        g = cell.Gates.weight.grad
        assert g is not None and g[:, cell.carry_channels + cell.skip_channels].abs().sum() > 0
