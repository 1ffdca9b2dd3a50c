"""Bad input along the README's chain, run for real (no DRY_RUN): one ``error:`` line naming the
file or option, and nothing lost. The runs stop before any training or evaluation starts."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from .test_train_eval_scripts import REPO, SH, make_checkpoint, make_proposals, make_split


def run(script: str, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("DRY_RUN", "NGPUS", "DATA_ROOT", "CHECKPOINT", "MODEL")}
    full.update(CUDA_VISIBLE_DEVICES="", DMM_PYTHON=sys.executable, **env)
    return subprocess.run([SH, str(REPO / script), *args], cwd=cwd, env=full, capture_output=True, text=True,
                          timeout=300)


def one_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def online_env(tmp: Path) -> dict[str, str]:
    root = tmp / "ytb"
    make_split(root / "train_testdev_ot")
    init = make_checkpoint(tmp / "r101" / "epo01_iter01640")
    return {"DATA_ROOT": str(root), "TRAIN_PROPOSALS": str(make_proposals(tmp / "props")), "INIT_CKPT": str(init.parent)}


def test_a_released_folder_in_the_online_runs_way_is_refused_and_kept(tmp_path: Path):
    """The released online_ytb/ given as the online run's OUTPUT_DIR: refused, with or without
    --overwrite (the flag reaches dmm.train), and the released checkpoint is kept."""
    released = tmp_path / "online_ytb"
    (released / "epo90_iter00088").mkdir(parents=True)
    (released / "epo90_iter00088" / "trainer.pt").write_bytes(b"released weights")
    before = digest(released)
    env = {**online_env(tmp_path), "OUTPUT_DIR": str(released)}
    for flags in ((), ("--overwrite",)):
        proc = run("scripts/train/train_online.sh", tmp_path, *flags, **env)
        one_error(proc, f"OUTPUT_DIR {released} holds {released / 'epo90_iter00088'}", "no training run of this project wrote")
        assert f"-m dmm.train --config online --init {tmp_path / 'r101/epo01_iter01640'} {' '.join(flags)}" in proc.stdout
        assert digest(released) == before


def test_overwrite_removes_nothing_from_a_folder_holding_foreign_files(tmp_path: Path):
    """``--overwrite`` on a run folder that also holds a file no run wrote: refused, all kept."""
    root, splits = tmp_path / "ytb", tmp_path / "splits"
    make_split(root / "train", splits / "train3k_meta.json")
    run_dir = tmp_path / "run"
    make_checkpoint(run_dir / "epo00_iter00001")
    (run_dir / "epo00_iter00001" / "config.yaml").write_text("SEED: 0\n")
    (run_dir / "metrics.jsonl").write_text("{}\n")
    (run_dir / "notes.txt").write_text("mine")
    before = digest(run_dir)
    proc = run("scripts/train/train_load_prop.sh", tmp_path, "--overwrite", "DATA.SPLIT_DIR", str(splits),
               "VAL.ENABLED", "False", DATA_ROOT=str(root), TRAIN_PROPOSALS=str(make_proposals(tmp_path / "props")),
               OUTPUT_DIR=str(run_dir))
    one_error(proc, f"holds {run_dir / 'notes.txt'} (1 entries in all)")
    assert digest(run_dir) == before


def test_a_missing_initial_checkpoint_is_named(tmp_path: Path):
    """train_online.sh's default INIT_CKPT is the ResNet-101 stage's run (R101_CONFIG's OUTPUT_DIR):
    without a checkpoint there, one error names it."""
    env = online_env(tmp_path)
    del env["INIT_CKPT"]
    r101 = tmp_path / "r101_run"
    config = tmp_path / "r101.yaml"
    config.write_text(f"OUTPUT_DIR: {r101}\n")
    one_error(run("scripts/train/train_online.sh", tmp_path, R101_CONFIG=str(config), **env),
              f"initial checkpoint (INIT_CKPT / --init) not found: {r101}")
    r101.mkdir()
    one_error(run("scripts/train/train_online.sh", tmp_path, R101_CONFIG=str(config), **env),
              f"initial checkpoint (INIT_CKPT / --init) {r101} holds no trainer.pt")


def test_a_split_whose_proposals_are_missing_is_named(tmp_path: Path):
    """``eval_r50.sh --split valid`` with the val200 proposals: the first video without its file is named."""
    root = tmp_path / "ytb"
    make_split(root / "valid")
    props = make_proposals(tmp_path / "props_val200")
    (props / "v1.pth").rename(props / "val200_video.pth")
    ckpt = make_checkpoint(tmp_path / "mine" / "epo00_iter00001")
    proc = run("scripts/eval/eval_r50.sh", tmp_path, "--split", "valid", DATA_ROOT=str(root),
               EVAL_PROPOSALS=str(props), CHECKPOINT=str(ckpt))
    one_error(proc, f"evaluation (valid) proposals {props} hold no <video>.pth for video v1 (1 of 1 videos)")
    assert not (tmp_path / "mine" / "eval").exists()
