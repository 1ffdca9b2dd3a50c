"""The README's "Reproducing the paper" from its first command: ``python -m dmm.zoo fetch --for
eval-r50`` (served from 127.0.0.1), then ``sh scripts/eval/eval_r50.sh`` and
``sh scripts/metric/full_eval.sh`` on the tiny synthetic set."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dmm.config import load_config
from dmm.model import DMMNet

from .conftest import REPO, checkpoint_folder, tar_gz

SH = shutil.which("sh") or "/bin/sh"
MODELS = {"ytb_255_50_matchloss_epo13": "epo13_iter01640", "ytb_255_50": "epo08_iter01640"}


def released_checkpoints(folder: Path, served: Path) -> None:
    """Both ResNet-50 archives in the released layouts (trainer.pt; encoder.pt + decoder.pt),
    stored without compression to keep the test quick (still .tar.gz)."""
    cfg = load_config("eval", ["MODEL.PRETRAINED", "none"])
    for seed, (name, checkpoint) in enumerate(MODELS.items()):
        torch.manual_seed(seed)
        tree = folder / name
        checkpoint_folder(tree / name / checkpoint, DMMNet.from_config(cfg).state_dict(), pair=bool(seed))
        tar_gz(served / f"dmmnet_{name}.tar.gz", tree, level=0)


@pytest.mark.slow
def test_fetch_for_eval_r50_then_evaluate_and_score(synthetic_root, split_dir, proposals_archive, served, tmp_path):
    released_checkpoints(tmp_path / "build", served.folder)
    shutil.copy(proposals_archive, served.folder)
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "DATA_ROOT": str(synthetic_root), "SPLIT_DIR": str(split_dir), "CUDA_VISIBLE_DEVICES": ""}

    def sh(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(list(args), cwd=repo, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    fetched = sh(sys.executable, "-m", "dmm.zoo", "fetch", "--for", "eval-r50", "--from", served.url,
                 "--data-root", str(synthetic_root), "--split-dir", str(split_dir), "--no-progress")
    ok = [line.split()[1] for line in fetched.stdout.splitlines() if line.startswith("OK")]
    assert ok == ["ytb_255_50_matchloss_epo13", "ytb_255_50", "proposals_ytb_train"]
    assert sh(sys.executable, "-m", "dmm.zoo", "check", "--data-root", str(synthetic_root),
              "--split-dir", str(split_dir)).stdout.count("\nOK ") == 2  # 3 OK lines, the first at the start

    # the scripts read experiments/ of the repository they are in: point them at this one's
    env.update(CKPT_MATCHLOSS=str(repo / "experiments/dmmnet/ytb_255_50_matchloss_epo13/epo13_iter01640"),
               CKPT_NOMATCH=str(repo / "experiments/dmmnet/ytb_255_50/epo08_iter01640"),
               EVAL_PROPOSALS=str(repo / "experiments/proposals/ytb_train/inference/youtubevos_val200_meta/videos_all"),
               OUT_ROOT=str(repo / "experiments/dmmnet"))
    sh(SH, str(REPO / "scripts/eval/eval_r50.sh"), "DATA.SPLIT_DIR", str(split_dir), "DATA.INPUT_H", "64",
       "DATA.INPUT_W", "96")
    for name in MODELS:
        merged = repo / f"experiments/dmmnet/{name}/eval/trainval/merged"
        assert len(list(merged.iterdir())) == 2  # the tiny val200's videos
        scored = sh(SH, str(REPO / "scripts/metric/full_eval.sh"), str(merged)).stdout
        assert "J_mean" in scored and "dmm2019" in scored, scored
