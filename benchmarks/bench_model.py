"""Per-frame inference time and FLOPs of DMMNet against the backbone's forward alone.

ResNet-50 at 255x448, 1 and 5 objects, 50 proposals, eval mode. Prints the breakdown (backbone,
necks, ROI features, matching, decoder), the whole step (everything after the encoder) and the
frame (encoder + step), each as a ratio to the backbone measured in the same run, for the
faithful defaults (the decoder's shared gate work, the exact matching layer), the 2019 decoder
layout (three full gate convolutions per cell), and on CUDA the fast settings (the fused
matching kernel, bf16 autocast for the encoder); and checks that the layouts give the same
outputs. Runs on CPU, and on CUDA too when present. Target (issue 13, CUDA, 5 objects, fast
settings): frame <= 2.0x backbone; on the CPU: not slower than before.

    .venv/bin/python benchmarks/bench_model.py [--repeat 3] [--device all|cpu|cuda] [--json OUT] [--tiny]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from dmm.boxes import mask_boxes
from dmm.config import get_cfg_defaults
from dmm.model import DMMNet
from dmm.model.backbone import resnet_stages
from dmm.model.cost import cosine_similarity, similarity
from dmm.model.dmmnet import pad_proposals
from dmm.structures import Proposals, TrackState
from timing import best_time  # benchmarks/timing.py

H, W, M = 255, 448, 50
FULL, TINY = (H, W, M), (64, 112, 10)  # input height, width and proposals: the paper's, and --tiny's


def flops(fn):
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def inputs(objects, device, seed=0, H=H, W=W, M=M):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(1, 3, H, W, generator=g)
    masks = torch.zeros(1, objects, H, W)
    for o in range(objects):
        y, x = 20 + 40 * o, 30 + 70 * o
        masks[0, o, y:y + 80, x:x + 120] = 1
    prop_masks = torch.rand(M, H, W, generator=g) * (torch.rand(M, 1, 1, generator=g) > 0.5)
    props = Proposals(mask_boxes(prop_masks, 0.4, empty="legacy"), torch.rand(M, generator=g), prop_masks, (H, W),
                      "full")
    return images.to(device), masks.to(device), [props.to(device)]


def layouts(device: torch.device) -> dict[str, dict]:
    """name -> the settings it changes: decoder layout, matching implementation, autocast."""
    out = {"default": {"shared": True, "implementation": "exact", "amp": False},
           "2019 layout": {"shared": False, "implementation": "exact", "amp": False}}
    if device.type == "cuda":
        out["fast"] = {"shared": True, "implementation": "triton", "amp": True}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="all", choices=("all", "cpu", "cuda"),
                        help="all: the CPU, and CUDA when present (default)")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write {device: {objects: {layout: {part: ms}}}} here")
    parser.add_argument("--tiny", action="store_true", help="smoke run: ResNet-18, 64x112, 10 proposals")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    H, W, M = TINY if args.tiny else FULL
    cfg = get_cfg_defaults()
    cfg.MODEL.BACKBONE = "resnet18" if args.tiny else "resnet50"
    cfg.MODEL.PRETRAINED = "none"
    torch.manual_seed(0)
    devices = {"all": [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else []),
               "cpu": [torch.device("cpu")], "cuda": [torch.device("cuda")]}[args.device]
    record: dict[str, dict] = {}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {cfg.MODEL.BACKBONE}, {H}x{W}, "
          f"{M} proposals")
    for device in devices:
        model = DMMNet.from_config(cfg).to(device).eval()
        for objects in (1, 5):
            images, masks, props = inputs(objects, device, H=H, W=W, M=M)
            valid = torch.ones(1, objects, dtype=torch.bool, device=device)
            results = {}
            with torch.no_grad():
                for name, layout in layouts(device).items():
                    model.decoder.shared_gate_conv = layout["shared"]
                    model.amp = layout["amp"]
                    model.matcher = replace(model.matcher, implementation=layout["implementation"])
                    feats = model.encode(images)
                    templates = model.template_features(feats, masks)
                    state = TrackState(valid, masks, masks, templates, iou=masks)
                    stages = resnet_stages(model.encoder.base, images)
                    padded = pad_proposals(props, torch.tensor([objects], device=device), (H, W), device,
                                           images.dtype, objects)
                    sim = similarity(cosine_similarity(templates, model.proposal_features(feats, padded)),
                                     masks, padded.masks)
                    pair_valid = valid[:, :, None] & padded.columns[:, None, :]
                    matched = torch.rand(1, objects, H, W, device=device)

                    def necks():
                        enc = model.encoder
                        for lv, c in zip((2, 3, 4, 5), stages):
                            getattr(enc, f"bn{lv}")(getattr(enc, f"sk{lv}")(c))
                            getattr(enc, f"prop{lv}")(c)

                    parts = {
                        "backbone": lambda: resnet_stages(model.encoder.base, images),
                        "necks": necks,
                        "roi features": lambda: (model.template_features(feats, masks),
                                                 model.proposal_features(feats, padded)),
                        "matching": lambda: model.matcher.match(-sim, pair_valid, False),
                        "decoder": lambda: model.decoder(feats.skips, [masks, masks, matched], valid)[0],
                        "step": lambda: model.step(feats, props, state),
                        "frame": lambda: model.step(model.encode(images), props, state),
                    }
                    for part, fn in parts.items():
                        if name != "default" and part in ("backbone", "necks", "roi features"):
                            continue  # the same code in every layout
                        fn()  # warm-up
                        results[name, part] = (best_time(fn, device, args.repeat), flops(fn))
                    results[name, "out"] = model.step(feats, props, state)[0].refined
            model.decoder.shared_gate_conv, model.amp = True, False
            model.matcher = replace(model.matcher, implementation="exact")
            diff = (results["default", "out"] - results["2019 layout", "out"]).abs().max().item()
            base_t, base_f = results["default", "backbone"]
            names = list(layouts(device))
            print(f"\n{device.type}, {objects} object(s): backbone {base_t * 1e3:.1f} ms, {base_f / 1e9:.2f} GFLOP; "
                  f"max |default - 2019 layout| refined = {diff:.2e}")
            print("  " + f"{'part':14}" + "".join(f" {n + ' ms':>16} {'x backbone':>10}" for n in names))
            ms = record.setdefault(device.type, {})[str(objects)] = {n: {} for n in names}
            for part in ("backbone", "necks", "roi features", "matching", "decoder", "step", "frame"):
                line = f"  {part:14}"
                for n in names:
                    t = results.get((n, part), results.get(("default", part)))[0]
                    ms[n][part] = t * 1e3
                    line += f" {t * 1e3:16.1f} {t / base_t:10.2f}"
                print(line)
            ms["max |default - 2019 layout| refined"] = diff
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"torch": torch.__version__, "backbone": cfg.MODEL.BACKBONE, "input": [H, W],
                                         "proposals": M, "ms": record}, indent=2) + "\n")


if __name__ == "__main__":
    main()
