"""Proposal-stage timings, as ratios against baselines measured in the same run.

    .venv/bin/python benchmarks/bench_proposals.py [--frames 8] [--size 256x448]

Prints, on the CPU and on CUDA when present:
- extraction frames per second (a randomly initialised resnet18-FPN Mask R-CNN, 2 classes:
  the pipeline's speed, not the paper's X-101 model's), and its cost in JPEG decodes;
- per-frame proposal-store read time (cold: the video's file loaded; warm: LRU hit) against
  decoding that frame's JPEG;
- the batched paste of 50 roi masks (boxes 20 to 180 pixels) into the input frame against
  pasting them one by one with F.interpolate (the reference algorithm). The batched paste
  costs N x H x W whatever the box sizes; the loop only touches each box, so on a CPU it wins
  and ``paste_roi_masks`` uses it there; on CUDA it uses the batched one (a few kernels
  instead of 150).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from dmm.data import YouTubeVOS
from dmm.data.synthetic import SyntheticConfig, generate
from dmm.proposals.extract import detect
from dmm.proposals.model import build_maskrcnn
from dmm.proposals.ops import _expand_boxes, _paste_batched, _paste_boxes, paste_roi_masks
from dmm.proposals.store import ProposalStore, write_video_proposals
from dmm.structures import Proposals


def timed(fn, repeat: int, sync=lambda: None) -> float:
    """Mean seconds per call after one warm-up call."""
    fn()
    sync()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync()
    return (time.perf_counter() - start) / repeat


def paste_one_by_one(masks: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    H, W = size
    out = masks.new_zeros(len(masks), H, W)
    ibox = torch.trunc(_expand_boxes(boxes, 30 / 28)).to(torch.int64).tolist()
    for i, (x0, y0, x1, y1) in enumerate(ibox):
        w, h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
        m = F.interpolate(F.pad(masks[i], (1, 1, 1, 1))[None, None], size=(h, w),
                          mode="bilinear", align_corners=False)[0, 0]
        a, b, c, d = max(x0, 0), min(x1 + 1, W), max(y0, 0), min(y1 + 1, H)
        if b > a and d > c:
            out[i, c:d, a:b] = m[c - y0:d - y0, a - x0:b - x0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=4, help="frames per video")
    parser.add_argument("--size", default="256x448", help="frame size HxW")
    args = parser.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synthetic"
        generate(root, SyntheticConfig(num_train=2, num_valid=0, num_frames=args.frames,
                                       height=h, width=w), progress=False)
        reader = YouTubeVOS(root, "train_all")
        video = reader.videos[0]
        frames = reader.frames(video)
        decode = timed(lambda: [reader.image(video, f) for f in frames], 3) / len(frames)
        print(f"frames {h}x{w}; JPEG decode baseline: {decode * 1e3:.2f} ms/frame")

        # store reads: 50 roi proposals per frame, as extraction writes them
        g = torch.Generator().manual_seed(0)
        xy = torch.rand(50, 2, generator=g) * torch.tensor([w * 0.8, h * 0.8])
        props = Proposals(torch.cat([xy, xy + 20 + torch.rand(50, 2, generator=g) * 160], 1),
                          torch.rand(50, generator=g), torch.rand(50, 28, 28, generator=g),
                          (h, w), "roi")
        store_dir = Path(tmp) / "store"
        write_video_proposals(store_dir / f"{video}.pth", {f: props for f in frames})
        cold = timed(lambda: [ProposalStore(store_dir).get(video, f) for f in frames[:1]], 5)
        store = ProposalStore(store_dir)
        warm = timed(lambda: [store.get(video, f) for f in frames], 20) / len(frames)
        per_frame_cold = cold / len(frames) + warm
        print(f"store read, video file loaded once per video: {per_frame_cold * 1e3:.3f} ms/frame "
              f"= {per_frame_cold / decode:.2f}x a JPEG decode; cache hit {warm * 1e6:.1f} us "
              f"= {warm / decode:.4f}x")

        for device in devices:
            sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
            m, b = props.masks.to(device), props.boxes.to(device)
            padded, ibox = F.pad(m, (1, 1, 1, 1)), _paste_boxes(b, 28, 1)
            loop = timed(lambda: paste_one_by_one(m, b, (255, 448)), 10, sync)
            used = timed(lambda: paste_roi_masks(m, b, (255, 448)), 10, sync)
            batched = timed(lambda: _paste_batched(padded, ibox, 255, 448), 10, sync)
            print(f"[{device}] paste 50 masks into 255x448: reference loop {loop * 1e3:.2f} ms; "
                  f"paste_roi_masks {used * 1e3:.2f} ms ({loop / used:.2f}x); batched matmul "
                  f"{batched * 1e3:.2f} ms ({loop / batched:.2f}x)")

            torch.manual_seed(0)
            model = build_maskrcnn("resnet18_fpn", 2, min_size=h, max_size=max(h, w)).to(device)
            images = [torch.from_numpy(reader.image(video, f)).permute(2, 0, 1).float()
                      .div(255).to(device) for f in frames]
            batch = 2
            run = lambda: [detect(model, images[i:i + batch]) for i in range(0, len(images), batch)]
            per_frame = timed(run, 1, sync) / len(images)
            print(f"[{device}] extraction (resnet18-FPN, random init, batch {batch}): "
                  f"{1 / per_frame:.2f} frames/s = {per_frame / decode:.1f}x a JPEG decode")


if __name__ == "__main__":
    main()
