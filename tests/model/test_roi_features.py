import pytest
import torch

from dmm.model.roi_features import PROP_SCALES, roi_features


def random_boxes(k: int, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
    """Boxes of all sizes, some reaching past the image border."""
    xy = torch.rand(k, 2, generator=gen, dtype=torch.float64) * torch.tensor([w * 1.2, h * 1.2]) - 10
    wh = torch.rand(k, 2, generator=gen, dtype=torch.float64) * torch.tensor([w / 1.5, h / 1.5])
    return torch.cat([xy, xy + wh], dim=1)


@pytest.mark.parametrize("aligned", [False, True])
def test_separable_pooling_equals_torchvision_roi_align_mean(aligned):
    gen = torch.Generator().manual_seed(0)
    h, w = 96, 160
    props = [torch.randn(3, 8, int(h * s), int(w * s), generator=gen, dtype=torch.float64).requires_grad_()
             for s in PROP_SCALES]
    boxes = [random_boxes(9, h, w, gen), random_boxes(0, h, w, gen), random_boxes(4, h, w, gen)]
    boxes[0][0] = torch.tensor([0.0, 0.0, w - 1.0, h - 1.0])  # the whole image
    boxes[0][1] = torch.tensor([150.0, 90.0, 170.0, 100.0])  # partly outside
    boxes[0][2] = torch.tensor([20.0, 30.0, 20.0, 30.0])  # a single pixel
    fast = roi_features(props, boxes, aligned=aligned, method="separable")
    ref = roi_features(props, boxes, aligned=aligned, method="torchvision")
    assert fast.shape == (13, 4 * 8)
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-12)
    weights = torch.randn(fast.shape, generator=gen, dtype=torch.float64)
    g_fast = torch.autograd.grad((fast * weights).sum(), props)
    g_ref = torch.autograd.grad((ref * weights).sum(), props)
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_unknown_method_is_an_error():
    props = [torch.zeros(1, 2, 8, 8) for _ in PROP_SCALES]
    with pytest.raises(ValueError, match="MODEL.ROI_POOL = .bogus. is not a choice: it must be one of auto, separable, torchvision"):
        roi_features(props, [torch.zeros(1, 4)], method="bogus")


def test_auto_picks_the_separable_op_on_the_cpu_and_equals_torchvision():
    g = torch.Generator().manual_seed(3)
    props = [torch.randn(2, 4, 32 // (2 ** k), 48 // (2 ** k), generator=g) for k in range(len(PROP_SCALES))]
    boxes = [torch.tensor([[1.0, 2.0, 60.0, 90.0]]), torch.tensor([[10.0, 0.0, 30.0, 127.0], [0.0, 0.0, 191.0, 127.0]])]
    auto = roi_features(props, boxes, method="auto")
    torch.testing.assert_close(auto, roi_features(props, boxes, method="separable"), rtol=0, atol=0)
    torch.testing.assert_close(auto, roi_features(props, boxes, method="torchvision"), rtol=1e-5, atol=1e-6)
