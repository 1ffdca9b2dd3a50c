import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

from dmm.proposals.ops import (_paste_batched, _paste_boxes, filter_for_matching, paste_masks, paste_roi_masks,
                               prepare_batch_for_matching, prepare_for_matching, tight_boxes)
from dmm.structures import Proposals


def _reference_paste(mask, box, H, W):
    """maskrcnn-benchmark's paste, one mask at a time, without thresholding."""
    padded = F.pad(mask, (1, 1, 1, 1))
    scale = 30 / 28
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw, hh = (box[2] - box[0]) / 2 * scale, (box[3] - box[1]) / 2 * scale
    b = [int(torch.trunc(v)) for v in (cx - hw, cy - hh, cx + hw, cy + hh)]
    w, h = max(b[2] - b[0] + 1, 1), max(b[3] - b[1] + 1, 1)
    m = F.interpolate(padded[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    out = torch.zeros(H, W)
    x0, x1, y0, y1 = max(b[0], 0), min(b[2] + 1, W), max(b[1], 0), min(b[3] + 1, H)
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = m[y0 - b[1]:y1 - b[1], x0 - b[0]:x1 - b[0]]
    return out


def test_paste_hand_worked():
    # ones over box (10, 10, 38, 38): expanded by 30/28 -> (9, 9, 39, 39), 31 pixels wide
    out = paste_roi_masks(torch.ones(1, 28, 28), torch.tensor([[10.0, 10, 38, 38]]), (50, 50))[0]
    assert out[:, :9].abs().max() == 0 and out[:, 40:].abs().max() == 0
    assert out[9, 20] == 0  # first row samples the zero padding (source clamps to cell 0)
    s = 1.5 * 30 / 31 - 0.5  # pixel 10 samples cell 0.9516: 0.9516 of cell 1 (=1)
    assert torch.isclose(out[10, 24], torch.tensor(s), atol=1e-6)
    assert out[24, 24] == 1  # interior: probability kept, not thresholded


def test_paste_matches_per_mask_interpolate():
    g = torch.Generator().manual_seed(0)
    n, H, W = 40, 30, 50
    masks = torch.rand(n, 28, 28, generator=g)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([W, H]) * 1.3 - 8
    boxes = torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 40], dim=1)
    boxes[0] = torch.tensor([-30.0, -30, 90, 90])  # larger than the frame
    boxes[1] = torch.tensor([3.0, 3, 3.2, 3.1])  # degenerate
    ref = torch.stack([_reference_paste(masks[i], boxes[i], H, W) for i in range(n)])
    assert torch.allclose(paste_roi_masks(masks, boxes, (H, W)), ref, atol=1e-5)
    # the batched path (used on CUDA) gives the same on the CPU
    ibox = _paste_boxes(boxes, 28, 1)
    assert torch.allclose(_paste_batched(F.pad(masks, (1,) * 4), ibox, H, W), ref, atol=1e-5)


def test_paste_masks_resizes_boxes_to_input_frame():
    p = Proposals(torch.tensor([[10.0, 10, 38, 38]]), torch.tensor([0.5]), torch.ones(1, 28, 28),
                  (50, 50), "roi")
    full = paste_masks(p, (100, 100))
    assert full.mask_mode == "full" and full.masks.shape == (1, 100, 100)
    assert torch.equal(full.boxes, torch.tensor([[20.0, 20, 76, 76]]))


def test_tight_boxes_hand_worked():
    m = torch.zeros(3, 6, 8)
    m[0, 1:3, 2:5] = 0.9
    m[1, 5, 7] = 0.5
    m[2] = 0.3  # all below threshold: the 2019 masker's [0, 0, H, W] (height and width swapped)
    assert tight_boxes(m, 0.4).tolist() == [[2, 1, 4, 2], [7, 5, 7, 5], [0, 0, 6, 8]]


def test_filter_keeps_empty_masks_with_the_2019_box_nms_and_topk():
    m = torch.zeros(5, 20, 20)
    m[0, 0:10, 0:10] = 0.9  # A, score 0.8
    m[1, 0:10, 1:10] = 0.9  # overlaps A (IoU 0.9) with a higher score: suppresses A
    m[2, 12:20, 12:20] = 0.6  # C
    m[3] = 0.39  # empty at 0.4: kept, boxed [0, 0, H, W] as the 2019 masker does
    m[4, 0:10, 5:15] = 0.8  # IoU with B = 50/140 < 0.4: kept
    scores = torch.tensor([0.8, 0.85, 0.7, 0.99, 0.3])
    out = filter_for_matching(m, scores, threshold=0.4, nms_iou=0.4, topk=50, order="score")
    assert out.scores.tolist() == torch.tensor([0.99, 0.85, 0.7, 0.3]).tolist()
    assert out.boxes.tolist() == [[0, 0, 20, 20], [1, 0, 9, 9], [12, 12, 19, 19], [5, 0, 14, 9]]
    assert out.mask_mode == "full" and out.image_size == (20, 20)
    # the 2019 kernel's order (the default): the same survivors in their stored order, cut after 2
    stored = filter_for_matching(m, scores, threshold=0.4, nms_iou=0.4, topk=50)
    assert stored.scores.tolist() == torch.tensor([0.85, 0.7, 0.99, 0.3]).tolist()
    assert filter_for_matching(m, scores, topk=2).scores.tolist() == torch.tensor([0.85, 0.7]).tolist()
    assert filter_for_matching(m, scores, topk=2, order="score").scores.tolist() == torch.tensor([0.99, 0.85]).tolist()
    # pixel-count IoU: two 1-pixel-wide columns side by side do not overlap
    m2 = torch.zeros(2, 5, 5)
    m2[0, :, 0] = 1
    m2[1, :, 1] = 1
    assert len(filter_for_matching(m2, torch.tensor([0.9, 0.8]), nms_iou=0.1)) == 2


def test_nms_iou_threshold_boundary():
    m = torch.zeros(2, 10, 10)
    m[0, :, 0:5] = 1
    m[1, :, 2:7] = 1  # IoU = 30 / 70 = 0.43
    assert len(filter_for_matching(m, torch.tensor([0.9, 0.8]), nms_iou=0.4)) == 1
    assert len(filter_for_matching(m, torch.tensor([0.9, 0.8]), nms_iou=0.5)) == 2


def test_prepare_batch_keeps_frames_apart_and_handles_empty():
    g = torch.Generator().manual_seed(1)
    def frame(n, size):
        xy = torch.rand(n, 2, generator=g) * 40
        boxes = torch.cat([xy, xy + 5 + torch.rand(n, 2, generator=g) * 30], dim=1)
        return Proposals(boxes, torch.rand(n, generator=g), torch.rand(n, 28, 28, generator=g),
                         size, "roi")
    frames = [frame(12, (60, 80)), Proposals.empty((60, 80), "roi"), frame(7, (30, 40))]
    batch = prepare_batch_for_matching(frames, (32, 48), topk=5)
    assert len(batch[1]) == 0 and batch[1].masks.shape == (0, 32, 48)
    for p, b in zip(frames, batch):
        single = prepare_for_matching(p, (32, 48), topk=5)
        assert torch.equal(single.scores, b.scores) and torch.allclose(single.masks, b.masks)
        assert len(b) <= 5
        if len(b) > 1:
            iou = box_iou(b.boxes + torch.tensor([0, 0, 1, 1]), b.boxes + torch.tensor([0, 0, 1, 1]))
            assert (iou.triu(1) <= 0.4 + 1e-6).all()
        stored_at = [p.scores.tolist().index(x) for x in b.scores.tolist()]
        assert stored_at == sorted(stored_at)  # kept in the stored order (PROPOSALS.KEEP_ORDER stored)
        by_score = prepare_for_matching(p, (32, 48), topk=5, order="score")
        assert (by_score.scores[:-1] >= by_score.scores[1:]).all()
    assert len(prepare_for_matching(Proposals.empty((10, 10), "roi"), (8, 8))) == 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_paste_and_filter_match_cpu():
    g = torch.Generator().manual_seed(2)
    xy = torch.rand(30, 2, generator=g) * 200
    p = Proposals(torch.cat([xy, xy + 10 + torch.rand(30, 2, generator=g) * 150], 1),
                  torch.rand(30, generator=g), torch.rand(30, 28, 28, generator=g), (240, 400), "roi")
    cpu = prepare_for_matching(p, (255, 448))
    gpu = prepare_for_matching(p.to("cuda"), (255, 448)).to("cpu")
    assert torch.equal(cpu.scores, gpu.scores)
    assert torch.allclose(cpu.masks, gpu.masks, atol=1e-5)
