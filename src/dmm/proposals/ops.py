"""The pre-matching pipeline: paste roi masks into the input frame, tighten boxes, NMS, top-k.

``prepare_for_matching`` = ``paste_masks`` + ``filter_for_matching``: the masks are pasted into
the network input frame (bilinear, 1-pixel zero padding, probabilities kept), each box becomes
the tight box of its pasted mask > threshold (a mask with nothing above the threshold gets the
2019 masker's box ``[0, 0, H, W]``), NMS runs on those boxes, and ``topk`` of the survivors are
kept (2019 ``masker.py``, ``model_encoder.py`` and ``boxlist_ops.filter_results``).

Which survivors, in which order (``order``, ``PROPOSALS.KEEP_ORDER``):

- ``"stored"`` (2019): maskrcnn-benchmark's NMS kernel returns the kept indices in ascending
  index order (``csrc/cuda/nms.cu`` sorts them; the CPU kernel returns ``nonzero``), and
  ``filter_results`` cuts that list, so the first ``topk`` survivors *in the stored order* are
  kept, in that order (the matching layer's columns). A maskrcnn-benchmark ``predictions.pth``
  is stored in class, then RPN-proposal order, not by score: from such a file this keeps other
  proposals than the best-scored ones.
- ``"score"``: the ``topk`` best-scored survivors, by decreasing score (torchvision's order).
  On files sorted by score (the 2019 reduce tool's training
  files, this project's extraction) the two are the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms

from dmm.boxes import mask_boxes
from dmm.config.keys import check_choice
from dmm.data.transforms import affine_source_index, warp_nearest
from dmm.structures import Proposals


def _expand_boxes(boxes: torch.Tensor, scale: float) -> torch.Tensor:
    """Scale (N, 4) xyxy boxes about their centres by ``scale``."""
    half_w = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale
    half_h = (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    cx = (boxes[:, 2] + boxes[:, 0]) * 0.5
    cy = (boxes[:, 3] + boxes[:, 1]) * 0.5
    return torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=1)


def _interpolation_matrix(start: torch.Tensor, end: torch.Tensor, out_size: int,
                          in_size: int) -> torch.Tensor:
    """Bilinear resize of ``in_size`` cells onto the integer span [start, end] of an axis.

    Reproduces ``F.interpolate(mode="bilinear", align_corners=False)`` from ``in_size`` to
    ``length = max(end - start + 1, 1)`` cells, placed at ``start`` on an axis of
    ``out_size`` pixels and clipped to it; pixels outside [start, end] get zero weight.

    Args:
        start, end: (N,) int64 first and last covered pixel.
    Returns:
        (N, out_size, in_size) float32 weights.
    """
    n = start.shape[0]
    device = start.device
    length = (end - start + 1).clamp(min=1)
    pos = torch.arange(out_size, device=device)[None, :] - start[:, None]  # (N, out)
    scale = in_size / length.to(torch.float32)
    src = ((pos.to(torch.float32) + 0.5) * scale[:, None] - 0.5).clamp(min=0)
    i0 = src.floor().to(torch.int64).clamp(max=in_size - 1)
    frac = src - i0.to(torch.float32)
    i1 = (i0 + 1).clamp(max=in_size - 1)
    inside = ((pos >= 0) & (pos <= (end - start)[:, None])).to(torch.float32)
    weights = torch.zeros(n, out_size, in_size, device=device)
    weights.scatter_add_(2, i0[..., None], ((1 - frac) * inside)[..., None])
    weights.scatter_add_(2, i1[..., None], (frac * inside)[..., None])
    return weights


def _paste_boxes(boxes: torch.Tensor, mask_size: int, padding: int) -> torch.Tensor:
    """(N, 4) int64 boxes of the padded masks: scaled by (R + 2 padding) / R, truncated."""
    cells = mask_size + 2 * padding
    return torch.trunc(_expand_boxes(boxes.to(torch.float32), cells / mask_size)).to(torch.int64)


def _paste_batched(padded: torch.Tensor, ibox: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """All masks at once as ``Wy @ mask @ Wx^T`` (bilinear is separable): a few kernels."""
    cells = padded.shape[-1]
    wy = _interpolation_matrix(ibox[:, 1], ibox[:, 3], H, cells)  # (N, H, cells)
    wx = _interpolation_matrix(ibox[:, 0], ibox[:, 2], W, cells)  # (N, W, cells)
    return torch.bmm(torch.bmm(wy, padded), wx.transpose(1, 2))


def _paste_per_mask(padded: torch.Tensor, ibox: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """One ``F.interpolate`` per mask over its own box only (cheaper on a CPU)."""
    out = padded.new_zeros(padded.shape[0], H, W)
    for i, (x0, y0, x1, y1) in enumerate(ibox.tolist()):
        a, b, c, d = max(x0, 0), min(x1 + 1, W), max(y0, 0), min(y1 + 1, H)
        if b <= a or d <= c:
            continue
        size = (max(y1 - y0 + 1, 1), max(x1 - x0 + 1, 1))
        m = F.interpolate(padded[i][None, None], size=size, mode="bilinear",
                          align_corners=False)[0, 0]
        out[i, c:d, a:b] = m[c - y0:d - y0, a - x0:b - x0]
    return out


def paste_roi_masks(masks: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int],
                    padding: int = 1) -> torch.Tensor:
    """Paste box-relative masks into an (H, W) frame, keeping probabilities.

    Each (R, R) mask is padded with ``padding`` pixels of zeros, its box is scaled about its
    centre by (R + 2 padding) / R and truncated to integers, the padded mask is resized
    bilinearly (``align_corners=False``) to the integer box size (x1 - x0 + 1, y1 - y0 + 1) and
    placed there, clipped to the frame. On CUDA all masks go at once (separable bilinear weights,
    two batched matmuls); on a CPU one ``F.interpolate`` per mask over its box is cheaper. Both
    give maskrcnn-benchmark's paste without the threshold.

    Args:
        masks: (N, R, R) probabilities.
        boxes: (N, 4) xyxy in pixels of the (H, W) frame.
        size: (H, W).
    Returns:
        (N, H, W) float32 probabilities.
    """
    H, W = int(size[0]), int(size[1])
    if masks.shape[0] == 0:
        return masks.new_zeros(0, H, W, dtype=torch.float32)
    padded = F.pad(masks.to(torch.float32), (padding,) * 4)
    ibox = _paste_boxes(boxes, masks.shape[-1], padding)
    paste = _paste_batched if masks.is_cuda else _paste_per_mask
    return paste(padded, ibox, H, W)


def paste_masks(proposals: Proposals, size: tuple[int, int]) -> Proposals:
    """Proposals in full mode at ``size = (H, W)``: boxes scaled, masks pasted or resized."""
    resized = proposals.resize(size)
    if proposals.mask_mode == "full":
        return resized
    masks = paste_roi_masks(resized.masks, resized.boxes, resized.image_size)
    return Proposals(resized.boxes, resized.scores, masks, resized.image_size, "full")


def tight_boxes(masks: torch.Tensor, threshold: float) -> torch.Tensor:
    """(N, H, W) -> (N, 4) tight inclusive boxes of ``masks > threshold``; ``[0, 0, H, W]`` for an
    empty mask, as the 2019 masker gives it."""
    return mask_boxes(masks, threshold, empty="legacy")


def _nms_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """Inclusive pixel boxes as half-open ones, so IoU counts pixels (a 1-pixel box has area 1)."""
    return boxes + boxes.new_tensor([0.0, 0.0, 1.0, 1.0])


def _cut(keep: torch.Tensor, topk: int, order: str) -> torch.Tensor:
    """NMS survivors of one frame (``keep``: indices by decreasing score) in ``order``, cut to
    ``topk`` (all when ``topk < 0``)."""
    if check_choice("PROPOSALS.KEEP_ORDER", order) == "stored":
        keep = keep.sort().values
    return keep if topk < 0 else keep[:topk]


def filter_masks_batched(masks: torch.Tensor, scores: torch.Tensor, frame_ids: torch.Tensor,
                         num_frames: int, threshold: float = 0.4, nms_iou: float = 0.4,
                         topk: int = 50, order: str = "stored") -> list[torch.Tensor]:
    """Indices kept per frame by the tight-box / NMS / top-k filter, for masks of many frames.

    Args:
        masks: (N, H, W) probabilities of all frames' proposals.
        scores: (N,).
        frame_ids: (N,) int64 frame of each proposal, in [0, num_frames), in stored order.
        order: "stored" or "score" (module docstring).
    Returns:
        ``num_frames`` int64 tensors of indices into the N proposals, in ``order``.
    """
    boxes = tight_boxes(masks, threshold)
    keep = batched_nms(_nms_boxes(boxes), scores.float(), frame_ids, nms_iou)
    kept_frames = frame_ids[keep]
    return [_cut(keep[kept_frames == f], topk, order) for f in range(num_frames)]


def filter_for_matching(masks: torch.Tensor, scores: torch.Tensor, threshold: float = 0.4,
                        nms_iou: float = 0.4, topk: int = 50, order: str = "stored") -> Proposals:
    """One frame's full-size masks filtered for matching.

    Each proposal gets the tight box of mask > ``threshold`` (:func:`tight_boxes`); NMS at
    ``nms_iou`` runs on those boxes (pixel-count IoU, areas with maskrcnn-benchmark's ``+1``;
    a box is suppressed at IoU > ``nms_iou``, the CUDA kernel's rule); ``topk`` survivors are
    kept in ``order`` (module docstring).

    Args:
        masks: (N, H, W) probabilities, in stored order.
        scores: (N,).
    Returns:
        full-mode Proposals at (H, W) with the tight boxes.
    """
    n, H, W = masks.shape
    frame_ids = torch.zeros(n, dtype=torch.int64, device=masks.device)
    keep = filter_masks_batched(masks, scores, frame_ids, 1, threshold, nms_iou, topk, order)[0]
    return Proposals(tight_boxes(masks[keep], threshold), scores[keep], masks[keep], (H, W),
                     "full")


def prepare_batch_for_matching(proposals: list[Proposals], size: tuple[int, int],
                               threshold: float = 0.4, nms_iou: float = 0.4,
                               topk: int = 50, order: str = "stored") -> list[Proposals]:
    """``prepare_for_matching`` over the frames of a batch, pasting and NMS in one go.

    Each frame keeps its own proposals (a frame with none stays empty).
    """
    H, W = int(size[0]), int(size[1])
    if not proposals:
        return []
    device = proposals[0].device
    full = [p.resize((H, W)) for p in proposals]
    roi = [i for i, p in enumerate(full) if p.mask_mode == "roi"]
    masks_per_frame: list[torch.Tensor] = [p.masks.to(torch.float32) for p in full]
    if roi:
        pasted = paste_roi_masks(torch.cat([full[i].masks for i in roi]),
                                 torch.cat([full[i].boxes for i in roi]), (H, W))
        for i, m in zip(roi, pasted.split([len(full[i]) for i in roi])):
            masks_per_frame[i] = m
    counts = [len(p) for p in full]
    masks = torch.cat(masks_per_frame) if sum(counts) else torch.zeros(0, H, W, device=device)
    scores = torch.cat([p.scores for p in full]).to(torch.float32)
    frame_ids = torch.repeat_interleave(torch.arange(len(full), device=device),
                                        torch.tensor(counts, device=device))
    keeps = filter_masks_batched(masks, scores, frame_ids, len(full), threshold, nms_iou, topk, order)
    return [
        Proposals(tight_boxes(masks[k], threshold), scores[k], masks[k], (H, W), "full")
        for k in keeps
    ]


def prepare_for_matching(proposals: Proposals, size: tuple[int, int], threshold: float = 0.4,
                         nms_iou: float = 0.4, topk: int = 50, order: str = "stored") -> Proposals:
    """Paste into the (H, W) input frame, then :func:`filter_for_matching`."""
    return prepare_batch_for_matching([proposals], size, threshold, nms_iou, topk, order)[0]


def prepare_training_proposals(proposals: list[Proposals], size: tuple[int, int], flips: list[bool],
                               affines: list[torch.Tensor | None], threshold: float = 0.4,
                               warp_threshold: float = 0.5, nms_iou: float = 0.4, topk: int = 50,
                               flip_proposals: bool = True, order: str = "stored") -> list[Proposals]:
    """One time step of a training batch: each frame's stored proposals made to match its augmented image.

    Per frame (2019 ``dataset.py`` and ``model_encoder.py``): masks pasted into the input frame
    and boxed (:func:`tight_boxes` at ``threshold``); flipped with the image when
    ``flip_proposals`` (the 2019 code forgot to: ``DATA.FLIP_PROPOSALS False`` reproduces that);
    warped with the frame's affine (:func:`~dmm.data.transforms.affine_source_index`), each box
    becoming the tight box of the warped mask > ``warp_threshold`` (the old box when that is
    empty); then NMS at ``nms_iou`` and ``topk`` survivors in ``order`` (module docstring).

    Args:
        proposals: B frames' stored proposals.
        flips: B flags; affines: B (3, 3) affines or None (no augmentation).
    Returns:
        B full-mode :class:`Proposals` at ``size``, ready for the model.
    """
    H, W = int(size[0]), int(size[1])
    out = []
    for p, flip, affine in zip(proposals, flips, affines):
        full = p.resize((H, W))
        masks = paste_roi_masks(full.masks, full.boxes, (H, W)) if full.mask_mode == "roi" else full.masks.float()
        if flip and flip_proposals:
            masks = masks.flip(-1)
        boxes = tight_boxes(masks, threshold)
        if affine is not None and len(p):
            masks = warp_nearest(masks, affine_source_index(affine.to(masks.device), (H, W)))
            nonempty = (masks > warp_threshold).flatten(1).any(1)
            boxes = torch.where(nonempty[:, None], mask_boxes(masks, warp_threshold), boxes)
        keep = _cut(batched_nms(_nms_boxes(boxes), full.scores.float(),
                                torch.zeros_like(full.scores, dtype=torch.int64), nms_iou), topk, order)
        out.append(Proposals(boxes[keep], full.scores[keep], masks[keep], (H, W), "full"))
    return out
