"""scripts/submit.sh end to end on a tiny valid split, run with ``sh`` as the README does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SH = shutil.which("sh") or "/bin/sh"
FRAMES = {"a1": ["00000", "00005"], "b2": ["00000", "00005", "00010"]}


def make_tree(tmp: Path) -> tuple[Path, Path]:
    """``tmp/ytb/valid`` (meta + JPEGImages) and ``tmp/res/merged`` (a PNG per frame)."""
    split, results = tmp / "ytb" / "valid", tmp / "res" / "merged"
    for video, frames in FRAMES.items():
        (split / "JPEGImages" / video).mkdir(parents=True)
        (results / video).mkdir(parents=True)
        for f in frames:
            Image.new("RGB", (8, 6)).save(split / "JPEGImages" / video / f"{f}.jpg")
            Image.fromarray(np.ones((6, 8), np.uint8), mode="L").save(results / video / f"{f}.png")
    meta = {"videos": {v: {"objects": {"1": {"category": None, "frames": f[:1]}}} for v, f in FRAMES.items()}}
    (split / "meta.json").write_text(json.dumps(meta))
    return split, results


def submit(tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("RESULTS_DIR", "OUT_ZIP", "SPLIT")}
    full_env.update(DATA_ROOT=str(tmp / "ytb"), **env)
    return subprocess.run([SH, str(REPO / "scripts/submit.sh"), *args], cwd=tmp, env=full_env,
                          capture_output=True, text=True, timeout=60)


def test_submit_writes_the_codalab_zip(tmp_path: Path):
    _, results = make_tree(tmp_path)
    out = tmp_path / "sub.zip"
    proc = submit(tmp_path, str(results), str(out))
    assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == sorted(
            f"Annotations/{v}/{f}.png" for v, frames in FRAMES.items() for f in frames
        )
    # relative arguments are read from the caller's folder; default zip: beside the results
    proc = submit(tmp_path, "res/merged")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "res" / "submission_valid.zip").is_file()


def test_submit_fails_on_missing_frames(tmp_path: Path):
    _, results = make_tree(tmp_path)
    (results / "b2" / "00010.png").unlink()
    out = tmp_path / "sub.zip"
    proc = submit(tmp_path, str(results), str(out))
    assert proc.returncode != 0
    assert "b2: 1 missing: 00010" in proc.stderr
    assert not out.exists()


def test_submit_names_missing_inputs(tmp_path: Path):
    _, results = make_tree(tmp_path)
    proc = submit(tmp_path, str(tmp_path / "nope"))
    assert proc.returncode != 0 and f"results folder not found: {tmp_path / 'nope'}" in proc.stderr
    proc = submit(tmp_path, str(results), SPLIT="test")
    assert proc.returncode != 0
    assert f"test split meta not found: {tmp_path / 'ytb/test/meta.json'}" in proc.stderr
