"""Data-layer throughput: frame reads from folders vs the LMDB cache, training clips, and the
proposals' paste and warp that the training step does on its device.

Generates a small synthetic set and its proposals in a temp folder, then prints milliseconds
per item and ratios against the folder reader measured in the same run, on one CPU thread (as
in a DataLoader worker). Target: an augmented 3-frame clip at 255x448 <= 50 ms on
one core, proposals included.

    .venv/bin/python benchmarks/bench_data_loading.py [--videos 10] [--frames 20]
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import torch

from dmm.data import YouTubeVOS
from dmm.data.clips import ClipDataset
from dmm.data.synthetic import SyntheticConfig, generate
from dmm.data.transforms import AffineParams
from dmm.engine.proposal_source import TrainingProposals
from dmm.proposals.ops import prepare_training_proposals
from dmm.proposals.synthetic import generate as generate_proposals

TOOL = Path(__file__).resolve().parents[1] / "src" / "tools" / "make_lmdb.py"


def _load_tool():
    spec = importlib.util.spec_from_file_location("make_lmdb_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read_all(reader) -> float:
    start, n = time.perf_counter(), 0
    for video in reader.videos:
        for frame in reader.frames(video):
            reader.image(video, frame)
            reader.annotation(video, frame)
            n += 1
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=10)
    parser.add_argument("--frames", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in a DataLoader worker
    with tempfile.TemporaryDirectory() as tmp:
        root = generate(Path(tmp) / "syn", SyntheticConfig(args.videos, 0, args.frames),
                        progress=False)
        _load_tool().make_lmdb(YouTubeVOS(root, "train_all"), Path(tmp) / "train.lmdb",
                               map_size=1 << 30, progress=False)
        folder = YouTubeVOS(root, "train_all")
        cached = YouTubeVOS(root, "train_all", lmdb_path=Path(tmp) / "train.lmdb")
        base = _read_all(folder)
        lmdb_t = _read_all(cached)
        print(f"frame+annotation read, folder: {base * 1e3:.2f} ms  (1.00x)")
        print(f"frame+annotation read, lmdb:   {lmdb_t * 1e3:.2f} ms  ({lmdb_t / base:.2f}x)")
        generate_proposals(root, "train", Path(tmp) / "props", seed=0, progress=False)
        source = TrainingProposals(Path(tmp) / "props")
        for name, augment in (("plain", None), ("augmented", AffineParams())):
            ds = ClipDataset(folder, input_size=(255, 448), augment=augment, proposals=source,
                             proposal_counts=source.counts)
            ds[0]
            start = time.perf_counter()
            items = [ds[i] for i in range(len(ds))]
            per_clip = (time.perf_counter() - start) / len(ds)
            print(f"3-frame clip at 255x448 with its proposals, {name}: {per_clip * 1e3:.1f} ms "
                  f"({per_clip / (3 * base):.1f}x three folder frame reads; target <= 50 ms)")
        # what the training step then does with them, here on the CPU (on CUDA in training on a GPU)
        start = time.perf_counter()
        for item in items:
            for t in range(len(item["frames"])):
                prepare_training_proposals([item["proposals"][t]], (255, 448), [item["flip"]], [item["affines"][t]])
        per_clip = (time.perf_counter() - start) / len(items)
        props = sum(len(p) for it in items for p in it["proposals"]) / (3 * len(items))
        print(f"the training step's paste, flip, warp and NMS of a clip's proposals ({props:.0f} per frame), "
              f"CPU: {per_clip * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
