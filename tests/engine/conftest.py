"""Fixtures for the engine tests: the tiny synthetic set, its proposals, a small config."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmm.config import load_config
from dmm.proposals.synthetic import generate as generate_proposals


@pytest.fixture(scope="session")
def synthetic_proposals(synthetic_root, tmp_path_factory) -> Path:
    """``<dir>/{train,valid}/<video>.pth`` synthetic proposals of the tiny synthetic set."""
    out = tmp_path_factory.mktemp("proposals")
    for split in ("train", "valid"):
        generate_proposals(synthetic_root, split, out / split, seed=0, progress=False)
    return out


def small_config(root: Path, proposals: Path, out_dir: Path, *extra: str):
    """ResNet-18 at 64x112, batch 2, clips of 3: seconds per iteration on a CPU."""
    return load_config("synthetic", [
        "DATA.ROOT", str(root), "PROPOSALS.TRAIN_DIR", str(proposals / "train"),
        "PROPOSALS.EVAL_DIR", str(proposals / "valid"), "OUTPUT_DIR", str(out_dir),
        "DATA.INPUT_H", "64", "DATA.INPUT_W", "112", "SOLVER.BATCH_SIZE", "2",
        "DATA.NUM_WORKERS", "0", "VAL.ENABLED", "False", "DEVICE", "cpu",
        "MATCHING.TRAIN_MAX_ITER", "10", *extra,
    ])
