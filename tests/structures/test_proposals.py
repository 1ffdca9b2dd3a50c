import pytest
import torch

from dmm.structures import Proposals


def _props(n=3, mode="roi", size=(20, 40)):
    shape = (28, 28) if mode == "roi" else size
    return Proposals(torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 15], [1, 2, 3, 4]])[:n],
                     torch.tensor([0.5, 0.9, 0.1])[:n], torch.rand(n, *shape), size, mode)


def test_resize_roi_scales_boxes_keeps_masks():
    p = _props()
    r = p.resize((40, 20))  # h doubles, w halves
    assert r.image_size == (40, 20)
    assert torch.equal(r.boxes[1], torch.tensor([2.5, 10, 10, 30]))
    assert torch.equal(r.masks, p.masks)


def test_resize_full_interpolates_masks():
    p = _props(mode="full")
    r = p.resize((10, 20))
    assert r.masks.shape == (3, 10, 20)
    expected = torch.nn.functional.avg_pool2d(p.masks[:, None], 2)[:, 0]  # exact for x0.5 bilinear
    assert torch.allclose(r.masks, expected, atol=1e-6)
    assert Proposals.empty((20, 40)).resize((5, 6)).masks.shape == (0, 5, 6)


def test_indexing_topk_cat_and_validation():
    p = _props()
    assert len(p[1]) == 1 and p[1].scores.item() == pytest.approx(0.9)
    assert len(p[torch.tensor([True, False, True])]) == 2
    assert p.topk(2).scores.tolist() == pytest.approx([0.9, 0.5])
    assert len(p.topk(-1)) == 3
    assert len(Proposals.cat([p, p[0]])) == 4
    with pytest.raises(ValueError):
        Proposals.cat([p, _props(mode="full")])
    with pytest.raises(ValueError, match="scores"):
        Proposals(p.boxes, p.scores[:2], p.masks, (20, 40))
    assert p.to("cpu").device.type == "cpu"
