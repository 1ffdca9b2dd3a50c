import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dmm.checkpointing import Checkpointer
from dmm.engine.distributed import DistInfo
from dmm.engine.hooks import read_records
from dmm.engine.trainer import Trainer, TrainingError, own_prediction_flags
from dmm.errors import InputError

from .conftest import small_config

CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def losses_of(run_dir: Path) -> dict[int, float]:
    return {r["iteration"]: r["total"] for r in read_records(run_dir / "metrics.jsonl") if "total" in r}


def test_loss_falls_and_an_epoch_is_every_clip(synthetic_root, synthetic_proposals, tmp_path):
    torch.manual_seed(0)
    cfg = small_config(synthetic_root, synthetic_proposals, tmp_path / "run",
                       "SOLVER.EPOCHS", "100", "SOLVER.MAX_ITERS", "24", "SOLVER.LOG_PERIOD", "1",
                       "SOLVER.CHECKPOINT_PERIOD", "1000", "DATA.AUGMENT", "False", "SOLVER.KEEP_CHECKPOINTS", "2",
                       "SOLVER.KEEP_EPOCHS", "[0]")
    trainer = Trainer(cfg, CPU)
    assert len(trainer.dataset) == len(trainer.dataset.clips) > len(trainer.dataset.reader.videos)
    assert trainer.iters_per_epoch == len(trainer.dataset) // 2
    last = trainer.train()
    losses = losses_of(tmp_path / "run")
    assert sorted(losses) == list(range(1, 25))
    first, final = sum(losses[i] for i in range(1, 6)) / 5, sum(losses[i] for i in range(20, 25)) / 5
    assert final < 0.9 * first, (first, final)
    epochs = 24 // trainer.iters_per_epoch
    assert last.name == f"epo{epochs - 1:02d}_iter00024" and (last / "trainer.pt").is_file()
    kept = [p.name for p in Checkpointer(tmp_path / "run").checkpoints()]
    assert kept[0].startswith("epo00_") and len(kept) == 3  # the 2 newest and epoch 0's (KEEP_EPOCHS)
    assert (tmp_path / "run" / "config.yaml").is_file() and (tmp_path / "run" / "loss_curves.png").is_file()
    records = read_records(tmp_path / "run" / "metrics.jsonl")
    assert all(r["sec_per_iter"] > 0 for r in records if "sec_per_iter" in r)


def test_resumed_run_matches_uninterrupted_run(synthetic_root, synthetic_proposals, tmp_path):
    common = ["SOLVER.EPOCHS", "3", "SOLVER.LOG_PERIOD", "1", "SOLVER.CHECKPOINT_PERIOD", "2",
              "SOLVER.FINETUNE_AFTER", "1", "SOLVER.MAX_ITERS_PER_EPOCH", "3"]
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
    log_lines = (tmp_path / "part" / "log.txt").read_text().splitlines()
    assert len(log_lines) == len(set(log_lines)) == 6  # no record twice after the resume


def test_an_output_dir_holding_a_run_is_refused(synthetic_root, synthetic_proposals, tmp_path):
    cfg = small_config(synthetic_root, synthetic_proposals, tmp_path / "run", "SOLVER.MAX_ITERS", "1")
    Trainer(cfg, CPU).train()
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    with pytest.raises(InputError, match=r"already holds a training run.*--resume"):
        Trainer(cfg, CPU)
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before
    Trainer(cfg, CPU, overwrite=True)
    assert not (tmp_path / "run" / "metrics.jsonl").exists() and not Checkpointer(tmp_path / "run").checkpoints()


def test_resume_survives_a_truncated_checkpoint_torn_log_and_orphan_temporaries(synthetic_root, synthetic_proposals,
                                                                                tmp_path, caplog):
    opts = ["SOLVER.CHECKPOINT_PERIOD", "1", "SOLVER.LOG_PERIOD", "1", "SOLVER.KEEP_CHECKPOINTS", "5"]
    cfg = small_config(synthetic_root, synthetic_proposals, tmp_path / "run", *opts, "SOLVER.MAX_ITERS", "3")
    Trainer(cfg, CPU).train()
    run = tmp_path / "run"
    newest = Checkpointer(run).checkpoints()[-1]
    data = (newest / "trainer.pt").read_bytes()
    (newest / "trainer.pt").write_bytes(data[: len(data) // 2])  # killed mid-write, the old way
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"epoch": 0, "itera')
    (run / ".epo00_iter00009.1234abcd.tmp").mkdir()
    with caplog.at_level(logging.WARNING):
        trainer = Trainer(small_config(synthetic_root, synthetic_proposals, run, *opts, "SOLVER.MAX_ITERS", "4"), CPU,
                          resume=str(run))
    assert trainer.iteration == 2 and "cannot be read" in caplog.text
    assert not (run / ".epo00_iter00009.1234abcd.tmp").exists()
    trainer.train()
    assert sorted(losses_of(run)) == [1, 2, 3, 4]


def test_resume_keeps_the_saved_config_and_says_so(synthetic_root, synthetic_proposals, tmp_path, caplog):
    cfg = small_config(synthetic_root, synthetic_proposals, tmp_path / "run", "SOLVER.MAX_ITERS", "1")
    Trainer(cfg, CPU).train()
    changed = small_config(synthetic_root, synthetic_proposals, tmp_path / "run", "SOLVER.MAX_ITERS", "2",
                           "SOLVER.DECODER_LR", "0.5")
    with caplog.at_level(logging.WARNING):
        trainer = Trainer(changed, CPU, resume=str(tmp_path / "run"))
    assert "SOLVER.DECODER_LR" in caplog.text and trainer.cfg.SOLVER.DECODER_LR == cfg.SOLVER.DECODER_LR
    assert trainer.cfg.SOLVER.MAX_ITERS == 2  # the schedule may be extended


def test_nan_loss_names_the_last_checkpoint_with_good_weights(synthetic_root, synthetic_proposals, tmp_path,
                                                              monkeypatch):
    cfg = small_config(synthetic_root, synthetic_proposals, tmp_path / "run", "SOLVER.EPOCHS", "5",
                       "SOLVER.CHECKPOINT_PERIOD", "1")
    trainer = Trainer(cfg, CPU)
    real_step = trainer.model.step
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        out = real_step(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] > 6:  # the third iteration (three steps per clip of three frames) goes bad
            out.refined = out.refined * float("nan")
        return out

    monkeypatch.setattr(trainer.model, "step", poisoned)
    # the weights written after iteration 2 produced the NaN: the good ones are iteration 1's
    with pytest.raises(TrainingError, match=r"non-finite loss at epoch 0 iteration 2.*epo00_iter00001 "):
        trainer.train()


def test_own_prediction_flags():
    assert own_prediction_flags(0, 5, 2, 0.0) == [False, False]
    assert own_prediction_flags(0, 5, 2, 1.0) == [True, True]
    assert own_prediction_flags(3, 7, 4, 0.5) == own_prediction_flags(3, 7, 4, 0.5)


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
            "VAL.ENABLED", "False", "SOLVER.MAX_ITERS", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29531",
         str(script), *opts],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "RANK 0 OK 2" in proc.stdout and "RANK 1 OK 2" in proc.stdout
    assert Checkpointer(out).checkpoints()[-1].name == "epo00_iter00002"
