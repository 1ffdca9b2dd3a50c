import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dmm.engine.distributed import DistInfo
from dmm.engine.trainer import Trainer, TrainingError, latest_checkpoint, own_prediction_flags

from .conftest import small_config

CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def losses_of(run_dir: Path) -> dict[int, float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {r["iteration"]: r["total"] for r in map(json.loads, lines) if "total" in r}


def test_loss_falls_over_30_iterations(synthetic_root, synthetic_proposals, tmp_path):
    torch.manual_seed(0)
    cfg = small_config(synthetic_root, synthetic_proposals, tmp_path / "run",
                       "SOLVER.EPOCHS", "100", "SOLVER.MAX_ITERS", "30", "SOLVER.LOG_PERIOD", "1",
                       "SOLVER.CHECKPOINT_PERIOD", "1000", "DATA.AUGMENT", "False")
    last = Trainer(cfg, CPU).train()
    losses = losses_of(tmp_path / "run")
    assert sorted(losses) == list(range(1, 31))
    first, final = sum(losses[i] for i in range(1, 6)) / 5, sum(losses[i] for i in range(26, 31)) / 5
    assert final < 0.9 * first, (first, final)
    assert last.name == "epo10_iter00030" and (last / "trainer.pt").is_file()
    assert (tmp_path / "run" / "config.yaml").is_file() and (tmp_path / "run" / "loss_curves.png").is_file()


def test_resumed_run_matches_uninterrupted_run(synthetic_root, synthetic_proposals, tmp_path):
    common = ["SOLVER.EPOCHS", "3", "SOLVER.LOG_PERIOD", "1", "SOLVER.CHECKPOINT_PERIOD", "2",
              "SOLVER.FINETUNE_AFTER", "1"]
    full = small_config(synthetic_root, synthetic_proposals, tmp_path / "full", *common, "SOLVER.MAX_ITERS", "6")
    Trainer(full, CPU).train()
    # the "killed" run stops after 4 iterations: mid-epoch (3 per epoch here), own predictions on
    part = small_config(synthetic_root, synthetic_proposals, tmp_path / "part", *common, "SOLVER.MAX_ITERS", "4")
    Trainer(part, CPU).train()
    resumed = small_config(synthetic_root, synthetic_proposals, tmp_path / "part", *common, "SOLVER.MAX_ITERS", "6")
    trainer = Trainer(resumed, CPU, resume=str(tmp_path / "part"))
    assert trainer.iteration == 4
    trainer.train()
    a, b = losses_of(tmp_path / "full"), losses_of(tmp_path / "part")
    assert sorted(a) == sorted(b) == list(range(1, 7))
    for it in range(1, 7):
        assert b[it] == pytest.approx(a[it], rel=1e-4, abs=1e-5), it


def test_latest_checkpoint_and_errors(tmp_path):
    with pytest.raises(TrainingError, match="no checkpoint"):
        latest_checkpoint(tmp_path)
    for name in ("epo01_iter00009", "epo02_iter00010", "epo00_iter00002"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "trainer.pt").write_bytes(b"")
    assert latest_checkpoint(tmp_path).name == "epo02_iter00010"
    assert own_prediction_flags(0, 5, 2, 0.0) == [False, False]
    assert own_prediction_flags(0, 5, 2, 1.0) == [True, True]
    assert own_prediction_flags(3, 7, 4, 0.5) == own_prediction_flags(3, 7, 4, 0.5)


def test_nan_loss_stops_with_message_and_keeps_last_checkpoint(synthetic_root, synthetic_proposals, tmp_path,
                                                              monkeypatch):
    cfg = small_config(synthetic_root, synthetic_proposals, tmp_path / "run", "SOLVER.EPOCHS", "5",
                       "SOLVER.CHECKPOINT_PERIOD", "1")
    trainer = Trainer(cfg, CPU)
    real_step = trainer.model.step
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        out = real_step(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] > 2:  # iteration 2 (two steps per clip of three frames) goes bad
            out.losses["refined_iou"] = out.losses["refined_iou"] * float("nan")
        return out

    monkeypatch.setattr(trainer.model, "step", poisoned)
    with pytest.raises(TrainingError, match="non-finite loss at epoch 0 iteration 1"):
        trainer.train()
    assert latest_checkpoint(tmp_path / "run").name == "epo00_iter00001"


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_two_process_gloo_ddp_run(synthetic_root, synthetic_proposals, tmp_path):
    out = tmp_path / "ddp"
    script = tmp_path / "check_ranks.py"
    script.write_text(
        "import sys, torch, torch.distributed as dist\n"
        "from dmm.config import load_config\n"
        "from dmm.engine.distributed import init_distributed\n"
        "from dmm.engine.trainer import Trainer\n"
        "cfg = load_config('synthetic', sys.argv[1:])\n"
        "info = init_distributed('cpu')\n"
        "trainer = Trainer(cfg, info)\n"
        "trainer.train()\n"
        "flat = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])\n"
        "gathered = [torch.zeros_like(flat) for _ in range(2)]\n"
        "dist.all_gather(gathered, flat)\n"
        "assert torch.equal(gathered[0], gathered[1]), 'ranks disagree'\n"
        "print('RANK', info.rank, 'OK', trainer.iteration)\n"
        "dist.destroy_process_group()\n"
    )
    opts = ["DATA.ROOT", str(synthetic_root), "PROPOSALS.TRAIN_DIR", str(synthetic_proposals / "train"),
            "PROPOSALS.EVAL_DIR", str(synthetic_proposals / "valid"), "OUTPUT_DIR", str(out),
            "DATA.INPUT_H", "64", "DATA.INPUT_W", "112", "SOLVER.BATCH_SIZE", "1", "DATA.NUM_WORKERS", "0",
            "VAL.ENABLED", "False", "SOLVER.MAX_ITERS", "2", "MATCHING.TRAIN_MAX_ITER", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29531",
         str(script), *opts],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "RANK 0 OK 2" in proc.stdout and "RANK 1 OK 2" in proc.stdout
    assert latest_checkpoint(out).name == "epo00_iter00002"
