import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dmm.checkpointing import Checkpointer
from dmm.config import load_config
from dmm.engine.distributed import DistInfo
from dmm.engine.batching import StepBatches
from dmm.engine.hooks import read_records
from dmm.engine.trainer import Trainer, TrainingError, own_prediction_flags, reconcile_resumed_config, step_coins
from dmm.errors import ConfigError, InputError

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
        out, state = real_step(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] > 4:  # the third iteration (two steps after the start of a 3-frame clip) goes bad
            out.refined = out.refined * float("nan")
        return out, state

    monkeypatch.setattr(trainer.model, "step", poisoned)
    # the weights written after iteration 2 produced the NaN: the good ones are iteration 1's
    with pytest.raises(TrainingError, match=r"non-finite loss at epoch 0 iteration 2.*epo00_iter00001 "):
        trainer.train()


def test_own_prediction_flags():
    assert own_prediction_flags(0, 5, 2, 0.0) == [False, False]
    assert own_prediction_flags(0, 5, 2, 1.0) == [True, True]
    assert own_prediction_flags(3, 7, 4, 0.5) == own_prediction_flags(3, 7, 4, 0.5)


def all_groups_coins(world: int, iteration: int, coin: str, seed: int = 123) -> list[list[bool]]:
    """Every group's coins at ``iteration``, gathered over the ranks of a ``world``-process run
    of 4 batch-norm groups (each rank draws for the groups it runs)."""
    coins = []
    for rank in range(world):
        groups = StepBatches(batch=4, groups=4, world=world, rank=rank).my_groups()
        coins += step_coins(seed, iteration, 2, 0.5, groups, coin)
    return coins


def test_the_own_prediction_coin_of_a_step_is_shared_by_the_groups():
    """2019: one coin per frame for all 16 clips of a step, on any number of processes."""
    defaults = load_config(None)
    assert defaults.SOLVER.OWN_PRED_COIN == "step"
    runs = {world: [all_groups_coins(world, it, "step") for it in range(20)] for world in (1, 2, 4)}
    assert runs[1] == runs[2] == runs[4]
    for coins in runs[1]:
        assert len(coins) == 4 and all(c == coins[0] for c in coins)
    assert len({tuple(coins[0]) for coins in runs[1]}) > 1  # the coin changes from step to step


@pytest.mark.parametrize("coin", ["step", "group"])
def test_the_trainer_draws_the_configured_coin_for_its_groups(synthetic_root, synthetic_proposals, tmp_path, coin):
    cfg = small_config(synthetic_root, synthetic_proposals, tmp_path / "run", "SOLVER.BATCH_SIZE", "1",
                       "SOLVER.BN_GROUPS", "4", "SOLVER.OWN_PRED_COIN", coin)
    trainer = Trainer(cfg, CPU)
    for iteration in range(20):
        trainer.iteration = iteration
        assert trainer.own_prediction_flags(2, 0.5) == all_groups_coins(1, iteration, coin, cfg.SEED)


def test_the_per_group_coin_is_an_option():
    runs = {world: [all_groups_coins(world, it, "group") for it in range(20)] for world in (1, 2, 4)}
    assert runs[1] == runs[2] == runs[4]
    assert any(len({tuple(c) for c in coins}) > 1 for coins in runs[1])
    with pytest.raises(ConfigError, match="SOLVER.OWN_PRED_COIN"):
        step_coins(123, 0, 2, 0.5, [0], "clip")


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
        "sys.stdout.write(f'RANK {info.rank} OK {trainer.iteration}\\n')  # one write: the ranks share a pipe\n"
        "dist.destroy_process_group()\n"
    )
    opts = ["DATA.ROOT", str(synthetic_root), "PROPOSALS.TRAIN_DIR", str(synthetic_proposals / "train"),
            "PROPOSALS.EVAL_DIR", str(synthetic_proposals / "valid"), "OUTPUT_DIR", str(out),
            "DATA.INPUT_H", "64", "DATA.INPUT_W", "112", "SOLVER.BATCH_SIZE", "1", "SOLVER.BN_GROUPS", "2",
            "DATA.NUM_WORKERS", "0", "VAL.ENABLED", "False", "SOLVER.MAX_ITERS", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29531",
         str(script), *opts],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "RANK 0 OK 2" in proc.stdout and "RANK 1 OK 2" in proc.stdout
    assert Checkpointer(out).checkpoints()[-1].name == "epo00_iter00002"


def test_online_start_restores_adam_moments_and_learning_rates(synthetic_root, synthetic_proposals, tmp_path):
    """2019's online training resumed the offline run's optimizers (train.py --resume), not only
    its weights: SOLVER.INIT_OPTIMIZERS."""
    offline = small_config(synthetic_root, synthetic_proposals, tmp_path / "offline", "SOLVER.MAX_ITERS", "1",
                           "SOLVER.NECK_LR", "2e-4")
    checkpoint = Trainer(offline, CPU).train()
    online = small_config(synthetic_root, synthetic_proposals, tmp_path / "online", "SOLVER.INIT_OPTIMIZERS", "True",
                          "SOLVER.NECK_LR", "1e-4", "SOLVER.MAX_ITERS", "1")
    trainer = Trainer(online, CPU, init=str(checkpoint))
    saved = torch.load(checkpoint / "trainer.pt", weights_only=True)["optimizers"]
    assert trainer.iteration == 0
    for name, opt in trainer.optimizers.items():
        state = opt.state_dict()
        assert [g["lr"] for g in state["param_groups"]] == [g["lr"] for g in saved[name]["param_groups"]]
        assert state["state"].keys() == saved[name]["state"].keys()
        for index, entry in state["state"].items():
            assert torch.equal(entry["exp_avg_sq"], saved[name]["state"][index]["exp_avg_sq"])
    assert trainer.optimizers["encoder"].param_groups[0]["lr"] == pytest.approx(2e-4)  # the checkpoint's
    # without the flag only the weights come along
    fresh = Trainer(small_config(synthetic_root, synthetic_proposals, tmp_path / "fresh"), CPU, init=str(checkpoint))
    assert not fresh.optimizers["decoder"].state


def test_online_start_from_weights_only_is_one_error_line(synthetic_root, synthetic_proposals, tmp_path, capsys):
    from dmm.cli import run
    from dmm.train import main

    weights = tmp_path / "released"
    weights.mkdir()
    cfg = small_config(synthetic_root, synthetic_proposals, tmp_path / "unused")
    from dmm.model import DMMNet
    torch.save(DMMNet.from_config(cfg).state_dict(), weights / "trainer.pt")
    out = tmp_path / "online"
    code = run(main, ["--config", "synthetic", "--init", str(weights), "DATA.ROOT", str(synthetic_root),
                      "PROPOSALS.TRAIN_DIR", str(synthetic_proposals / "train"), "OUTPUT_DIR", str(out),
                      "VAL.ENABLED", "False", "DATA.NUM_WORKERS", "0", "SOLVER.INIT_OPTIMIZERS", "True"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: {weights} holds no optimizer state")
    assert not out.exists()


def _train_cli(root: Path, proposals: Path, out: Path, workers: int) -> tuple[int, list[str]]:
    """``python -m dmm.train`` in this process on ``root``: (exit status, its ``error:`` lines; the
    progress bar shares stderr)."""
    import contextlib
    import io

    from dmm.cli import run
    from dmm.train import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = run(main, ["--config", "synthetic", "DATA.ROOT", str(root), "PROPOSALS.TRAIN_DIR", str(proposals / "train"),
                          "OUTPUT_DIR", str(out), "VAL.ENABLED", "False", "DEVICE", "cpu", "DATA.INPUT_H", "64",
                          "DATA.INPUT_W", "112", "SOLVER.BATCH_SIZE", "2", "DATA.NUM_WORKERS", str(workers)])
    lines = err.getvalue().replace("\r", "\n").splitlines()
    return code, [line[line.index("error: "):] for line in lines if "error: " in line]


def test_an_undecodable_frame_in_a_loader_worker_is_the_same_error_line(synthetic_root, synthetic_proposals, tmp_path):
    """A DatasetError raised in a DataLoader worker reaches the user as the one ``error:`` line it
    gives without workers, not as torch's re-raised traceback."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    for jpg in (root / "train" / "JPEGImages").rglob("*.jpg"):  # the header stays readable, the pixels do not
        jpg.write_bytes(jpg.read_bytes()[:-400])
    without = _train_cli(root, synthetic_proposals, tmp_path / "run0", workers=0)
    assert without[0] == 2 and len(without[1]) == 1, without
    assert without[1][0].startswith(f"error: {root / 'train' / 'JPEGImages'}") and "corrupt" in without[1][0]
    assert _train_cli(root, synthetic_proposals, tmp_path / "run1", workers=1) == without


def test_a_run_config_saved_with_solver_amp_resumes_with_its_values(tmp_path):
    """Run configs written before MODEL.AMP became the one autocast switch hold SOLVER.AMP; a
    resumed run reads its saved config (Trainer: reconcile_resumed_config(load_config(saved), ...))."""
    import yaml

    from dmm.config import get_cfg_defaults, load_config

    text = yaml.safe_load(get_cfg_defaults().dump())
    text["SOLVER"]["AMP"], text["SOLVER"]["EPOCHS"] = False, 2
    saved = tmp_path / "config.yaml"
    saved.write_text(yaml.safe_dump(text))
    resumed = reconcile_resumed_config(load_config(saved), load_config(None, ["SOLVER.EPOCHS", "5"]))
    assert resumed.SOLVER.EPOCHS == 5 and resumed.MODEL.AMP is False  # a RESUMABLE key set through its dotted name
    assert "AMP" not in resumed.SOLVER and resumed.is_frozen()


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of a run's TensorBoard event files as (step, value) in reading order, read back
    with tensorboard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_events_match_metrics_after_a_kill_and_resume(synthetic_root, synthetic_proposals, tmp_path):
    common = ["SOLVER.LOG_PERIOD", "1", "SOLVER.CHECKPOINT_PERIOD", "2", "SOLVER.MAX_ITERS_PER_EPOCH", "2",
              "SOLVER.EPOCHS", "2"]
    run_dir = tmp_path / "run"
    Trainer(small_config(synthetic_root, synthetic_proposals, run_dir, *common, "SOLVER.MAX_ITERS", "3"), CPU).train()
    # "killed" after iteration 3 was logged but before it was saved: only the checkpoint of iteration 2 is left
    newest = Checkpointer(run_dir).checkpoints()[-1]
    assert newest.name.endswith("_iter00003")
    shutil.rmtree(newest)
    trainer = Trainer(small_config(synthetic_root, synthetic_proposals, run_dir, *common), CPU, resume=str(run_dir))
    assert trainer.iteration == 2
    trainer.train()
    records = [r for r in read_records(run_dir / "metrics.jsonl") if "total" in r]
    assert [r["iteration"] for r in records] == [1, 2, 3, 4]  # iteration 3 once: the resumed run's
    events = scalars(run_dir / "tensorboard")
    for key, tag in (("total", "total/train"), ("match", "match/train"), ("matched_iou", "matched_iou/train"),
                     ("refined_iou", "refined_iou/train"), ("lr_necks", "lr/necks"), ("lr_backbone", "lr/backbone"),
                     ("lr_decoder", "lr/decoder"), ("sec_per_iter", "time/sec_per_iter"),
                     ("data_time", "time/data_time")):
        assert [step for step, _ in events[tag]] == [1, 2, 3, 4], tag  # no step twice
        for (step, value), r in zip(events[tag], records):
            assert value == pytest.approx(r[key], rel=1e-6), (tag, step)


def test_tensorboard_can_be_switched_off(synthetic_root, synthetic_proposals, tmp_path):
    cfg = small_config(synthetic_root, synthetic_proposals, tmp_path / "run", "SOLVER.MAX_ITERS", "1",
                       "SOLVER.TENSORBOARD", "False")
    Trainer(cfg, CPU).train()
    assert not (tmp_path / "run" / "tensorboard").exists() and (tmp_path / "run" / "metrics.jsonl").is_file()


def test_an_optimizer_step_that_breaks_the_weights_is_the_nan_stop(synthetic_root, synthetic_proposals, tmp_path,
                                                                   capsys):
    """A learning rate float32 can hold but the weights cannot (1e30) ends with the NaN stop's one line."""
    from dmm.cli import run
    from dmm.train import main

    code = run(main, ["--config", "synthetic", "DATA.ROOT", str(synthetic_root), "PROPOSALS.TRAIN_DIR",
                      str(synthetic_proposals / "train"), "OUTPUT_DIR", str(tmp_path / "run"), "VAL.ENABLED", "False",
                      "DATA.NUM_WORKERS", "0", "DATA.INPUT_H", "64", "DATA.INPUT_W", "112", "SOLVER.BATCH_SIZE", "2",
                      "SOLVER.GRAD_CLIP", "0.0", "SOLVER.BACKBONE_LR", "1e30", "SOLVER.MAX_ITERS", "3"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "it/s" not in line
           and "s/it" not in line]
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith("error: non-finite loss at epoch 0 iteration 1 "), err
