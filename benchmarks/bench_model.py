"""Per-frame time, counted GFLOP and achieved GFLOP/s of DMMNet's parts against the backbone.

ResNet-50 at 255x448, 1 and 5 objects, 50 proposals. For each part (backbone, necks, ROI
features, matching, decoder), the whole step (everything after the encoder) and the frame
(encoder + step) it prints the best time of ``--repeat`` rounds (each round times every part
once), the ratio to the backbone measured in the same run, the GFLOP counted by
``torch.utils.flop_counter.FlopCounterMode`` and the GFLOP/s achieved, so a part running far
below the backbone's rate stands out. Two modes: evaluation (``model.eval()``, forward under
``no_grad``) and training (``model.train()``, forward and backward of the part's outputs). The
step runs with the temporal state of an earlier frame, as every frame but a video's first does.

Layouts: the faithful defaults (the decoder's shared gate work, the exact matching layer), the
2019 decoder layout (three full gate convolutions per cell), and on CUDA the fast settings (the
fused matching kernel, bf16 autocast for the encoder); it checks that the layouts give the same
outputs. Targets (evaluation, faithful defaults): frame <= 2.0x the backbone with 5
objects and <= 1.5x with 1 object; printed as PASS/FAIL.

On the CPU the times are the process's CPU seconds of a one-thread run (``--threads 1``,
``--clock cpu``, the defaults there): on a shared machine wall time follows the other jobs' load,
CPU seconds far less. ``--clock wall --threads 0`` gives wall time with torch's default threads.
On CUDA the times are wall time, synchronised.

    .venv/bin/python benchmarks/bench_model.py [--repeat 5] [--device cpu|cuda] [--threads 1]
        [--clock cpu|wall] [--json OUT] [--no-train]
"""

from __future__ import annotations

import argparse
import json
import time
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
FULL, TINY = (H, W, M), (64, 112, 10)  # input height, width, proposals: the paper's, and --tiny's
PARTS = ("backbone", "necks", "roi features", "matching", "decoder", "step", "frame")
#: the same code in every layout: timed once, under the default layout
COMMON = ("backbone", "necks", "roi features")
TARGETS = {1: 1.5, 5: 2.0}  # objects -> frame / backbone, evaluation, faithful defaults


def cpu_best_time(fn, repeat: int) -> float:
    """Least CPU seconds of this process over ``repeat`` calls of ``fn``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def inputs(objects, device, size=FULL, seed=0):
    """Random frame, ``objects`` box masks and ``M`` random proposals at ``size`` = (H, W, M)."""
    H, W, M = size
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


def _backward(out) -> None:
    """Backward of the sum of every floating tensor that needs a gradient in ``out``."""
    tensors = [t for t in (out if isinstance(out, (list, tuple)) else [out])
               if isinstance(t, torch.Tensor) and t.requires_grad]
    if tensors:
        torch.autograd.backward([t.sum() for t in tensors])


def part_functions(model: DMMNet, images, masks, props, objects: int, device, training: bool) -> dict:
    """part name -> a call running it and returning its outputs (with inputs that need gradients
    when ``training``)."""
    valid = torch.ones(1, objects, dtype=torch.bool, device=device)
    with torch.no_grad():
        feats = model.encode(images)
        templates = model.template_features(feats, masks)
        size = tuple(images.shape[-2:])
        padded = pad_proposals(props, torch.tensor([objects], device=device), size, device, images.dtype, objects)
        sim = similarity(cosine_similarity(templates, model.proposal_features(feats, padded)), masks, padded.masks)
        matched = torch.rand(1, objects, *size, device=device)
        memory = model.decoder(feats.skips, [masks, masks, matched], valid)[1]  # an earlier frame's state
    if training:  # the step's inputs carry gradients, as behind the encoder in training
        feats = type(feats)([s.requires_grad_() for s in feats.skips], [p.requires_grad_() for p in feats.props])
        sim, matched = sim.requires_grad_(), matched.requires_grad_()
    state = TrackState(valid, masks, masks, templates, memory=memory)
    pair_valid = valid[:, :, None] & padded.columns[:, None, :]
    enc = model.encoder

    with torch.no_grad():
        stage_maps = resnet_stages(enc.base, images)

    def necks():
        stages = [c.detach().requires_grad_(training) for c in stage_maps]
        return [out for lv, c in zip((2, 3, 4, 5), stages)
                for out in (getattr(enc, f"bn{lv}")(getattr(enc, f"sk{lv}")(c)), getattr(enc, f"prop{lv}")(c))]

    calls = {
        "backbone": lambda: resnet_stages(enc.base, images),
        "necks": necks,
        "roi features": lambda: (model.template_features(feats, masks), model.proposal_features(feats, padded)),
        "matching": lambda: model.matcher.match(-sim, pair_valid, training),
        "decoder": lambda: model.decoder(feats.skips, [masks, masks, matched], valid, memory)[0],
        "step": lambda: model.step(feats, props, state)[0].refined,
        "frame": lambda: model.step(model.encode(images), props, state)[0].refined,
    }
    return calls


def timed_call(fn, training: bool):
    """``fn`` with its backward (training), or under ``no_grad`` (evaluation)."""
    if training:
        return lambda: _backward(fn())
    return torch.no_grad()(fn)


def measure(model: DMMNet, device, objects: int, training: bool, repeat: int, clock: str, size=FULL) -> dict:
    """(layout, part) -> (seconds, flops); (layout, "out") -> the step's refined masks."""
    images, masks, props = inputs(objects, device, size)
    model.train(training)
    results = {}
    for name, layout in layouts(device).items():
        model.decoder.shared_gate_conv = layout["shared"]
        model.amp = layout["amp"]
        model.matcher = replace(model.matcher, implementation=layout["implementation"])
        torch.manual_seed(0)
        calls = part_functions(model, images, masks, props, objects, device, training)
        fns = {part: timed_call(raw, training) for part, raw in calls.items()
               if name == "default" or part not in COMMON}
        for fn in fns.values():
            fn()  # warm-up
        # Rounds that time every part once, best per part: a burst of load from other jobs falls
        # on one round of all parts, not on all rounds of one part (the backbone the ratios divide by).
        best = dict.fromkeys(fns, float("inf"))
        for _ in range(repeat):
            for part, fn in fns.items():
                seconds = cpu_best_time(fn, 1) if clock == "cpu" else best_time(fn, device, 1)
                best[part] = min(best[part], seconds)
        for part, fn in fns.items():
            results[name, part] = (best[part], flops(fn))
        if not training:
            results[name, "out"] = timed_call(calls["step"], False)()
    model.decoder.shared_gate_conv, model.amp = True, False
    model.matcher = replace(model.matcher, implementation="exact")
    return results


def report(results: dict, device, objects: int, training: bool) -> dict:
    """Print one table; return its rows for ``--json``."""
    names = list(layouts(device))
    base_t, base_f = results["default", "backbone"]
    mode = "training (forward + backward)" if training else "evaluation (forward)"
    line = f"\n{device.type}, {mode}, {objects} object(s): backbone {base_t * 1e3:.1f} ms, {base_f / 1e9:.2f} GFLOP"
    if not training:
        diff = (results["default", "out"] - results["2019 layout", "out"]).abs().max().item()
        line += f"; max |default - 2019 layout| refined = {diff:.2e}"
    print(line)
    print("  " + f"{'part':13}" + "".join(f" | {n:>11} ms {'x bb':>5} {'GFLOP':>6} {'GFLOP/s':>7}" for n in names))
    rows = {}
    for part in PARTS:
        text = f"  {part:13}"
        for n in names:
            t, f = results.get((n, part), results.get(("default", part)))
            text += f" | {t * 1e3:14.1f} {t / base_t:5.2f} {f / 1e9:6.2f} {f / 1e9 / t:7.1f}"
            rows.setdefault(n, {})[part] = {"ms": t * 1e3, "x_backbone": t / base_t, "gflop": f / 1e9,
                                            "gflop_per_s": f / 1e9 / t}
        print(text)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="rounds; each part's best round counts")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (0: torch's default; default 1 on the CPU, 0 on CUDA)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default=None,
                        help="CPU seconds of the process or wall time (default cpu on the CPU, wall on CUDA)")
    parser.add_argument("--no-train", action="store_true", help="evaluation only")
    parser.add_argument("--tiny", action="store_true", help="smoke run: ResNet-18, 64x112, 10 proposals")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but no CUDA device is available")
    clock = args.clock or ("cpu" if device.type == "cpu" else "wall")
    if clock == "cpu" and device.type == "cuda":
        raise SystemExit("error: --clock cpu times CPU work; use --clock wall on CUDA")
    threads = args.threads if args.threads is not None else (1 if device.type == "cpu" else 0)
    if threads:
        torch.set_num_threads(threads)
    cfg = get_cfg_defaults()
    size = TINY if args.tiny else FULL
    cfg.MODEL.BACKBONE = "resnet18" if args.tiny else "resnet50"
    cfg.MODEL.PRETRAINED = "none"
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {cfg.MODEL.BACKBONE}, {size[0]}x{size[1]}, {size[2]} proposals; "
          f"times: {'CPU seconds of this process' if clock == 'cpu' else 'wall'}, best of {args.repeat}")
    model = DMMNet.from_config(cfg).to(device)
    out, verdicts = {"device": device.type, "clock": clock, "threads": torch.get_num_threads(), "tables": {}}, []
    for training in (False,) if args.no_train else (False, True):
        for objects in (1, 5):
            rows = report(measure(model, device, objects, training, args.repeat, clock, size), device, objects, training)
            out["tables"][f"{'train' if training else 'eval'}_{objects}"] = rows
            if not training:
                ratio = rows["default"]["frame"]["x_backbone"]
                verdicts.append(f"frame <= {TARGETS[objects]}x backbone, evaluation, {objects} object(s): "
                                f"{ratio:.2f}x {'PASS' if ratio <= TARGETS[objects] else 'FAIL'}")
    print("\ntargets (evaluation, faithful defaults, " + device.type + "):")
    for v in verdicts:
        print("  " + v)
    out["targets"] = verdicts
    # benchmarks/gpu_check.py reads {device: {objects: {layout: {part: ms}}}}
    out.update(backbone=cfg.MODEL.BACKBONE, input=list(size[:2]), proposals=size[2], ms={device.type: {
        str(objects): {layout: {part: cell["ms"] for part, cell in parts.items()}
                       for layout, parts in out["tables"][f"eval_{objects}"].items()} for objects in (1, 5)}})
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
