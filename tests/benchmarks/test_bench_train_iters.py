"""bench_train_iters.py end to end: two trees timed side by side on generated data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "bench_train_iters.py"


@pytest.mark.slow  # two trainer builds and four training steps
def test_two_trees_side_by_side_give_times_ratios_and_equal_losses(tmp_path):
    out = tmp_path / "result.json"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--tree", str(REPO), "--tree", str(REPO),
                           "--work", str(tmp_path / "work"), "--json", str(out)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert len(rows) == 2 and rows[0]["ratio"] == 1.0 and rows[0]["cpu_ratio"] == 1.0
    assert all(len(r["times"]) == len(r["cpu"]) == 2 and min(r["cpu"]) > 0 for r in rows)
    assert rows[0]["losses"] == rows[1]["losses"]  # the same code on the same batches
    assert "median wall" in proc.stdout and "round 2" in proc.stdout


def test_a_folder_without_a_source_tree_is_one_error_line(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tree", str(tmp_path)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src")}, timeout=300)
    assert proc.returncode == 1 and proc.stderr.strip() == f"error: --tree {tmp_path} holds no src/dmm"
