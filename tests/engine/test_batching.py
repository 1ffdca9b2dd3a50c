"""The training step's batch: 2019's 4 GPUs x 4 clips, on any number of processes."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch
from torch.utils.data import DistributedSampler

from dmm.engine.batching import StepBatches, micro_batches, running_stats_kept
from dmm.errors import ConfigError


def test_steps_per_epoch_follow_the_2019_sampler_rule():
    # train3k's 2019 run: checkpoints up to epoXX_iter01640, i.e. 1641 steps an epoch, which the
    # rule floor(ceil(N / 4) / 4) gives exactly for N in 26253 .. 26268 clips
    for world in (1, 2, 4):
        batches = StepBatches(batch=4, groups=4, world=world)
        assert batches.steps_per_epoch(26252) == 1640
        assert batches.steps_per_epoch(26253) == 1641
        assert batches.steps_per_epoch(26268) == 1641
        assert batches.steps_per_epoch(26269) == 1642
    # one group (the synthetic config): plain floor(N / batch)
    assert StepBatches(batch=4, groups=1).steps_per_epoch(243) == 60


def test_every_process_count_deals_the_2019_gpus_clips():
    n, seed, epoch = 103, 7, 2
    reference = []
    for gpu in range(4):  # what 2019's DistributedSampler gave GPU `gpu`
        sampler = DistributedSampler(range(n), num_replicas=4, rank=gpu, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        reference.append(list(sampler))
    steps = StepBatches(3, 4).steps_per_epoch(n)
    assert steps == math.ceil(n / 4) // 3 == 8
    for world in (1, 2, 4):
        per_step = {}
        for rank in range(world):
            b = StepBatches(batch=3, groups=4, world=world, rank=rank)
            flat = b.indices(n, seed, epoch, 2, steps)  # steps 2.. (a resumed epoch)
            chunks = [flat[i:i + 3] for i in range(0, len(flat), 3)]
            assert len(chunks) == (steps - 2) * b.accumulation
            for k, chunk in enumerate(chunks):
                step, group = 2 + k // b.accumulation, b.my_groups()[k % b.accumulation]
                per_step[step, group] = chunk
        assert per_step == {(s, g): reference[g][s * 3:(s + 1) * 3] for s in range(2, steps) for g in range(4)}


def test_a_process_count_that_does_not_divide_the_groups_is_refused():
    with pytest.raises(ConfigError, match="SOLVER.BN_GROUPS = 4 .* 3 processes"):
        StepBatches(batch=4, groups=4, world=3)


def test_micro_batches_group_a_loader_by_step():
    assert list(micro_batches(range(7), 3)) == [[0, 1, 2], [3, 4, 5]]


def test_running_stats_kept_only_when_asked():
    bn = torch.nn.BatchNorm2d(3).train()
    x = torch.randn(4, 3, 5, 5)
    with running_stats_kept(bn, keep=True):
        y = bn(x)
    assert torch.equal(bn.running_mean, torch.zeros(3)) and int(bn.num_batches_tracked) == 0
    assert torch.allclose(y.mean((0, 2, 3)), torch.zeros(3), atol=1e-6)  # batch statistics were used
    with running_stats_kept(bn, keep=False):
        bn(x)
    assert not torch.equal(bn.running_mean, torch.zeros(3)) and int(bn.num_batches_tracked) == 1


STEP_SCRIPT = """
import sys, torch
from dmm.config import load_config
from dmm.engine.distributed import cleanup, init_distributed
from dmm.engine.trainer import Trainer
out = sys.argv[1]
cfg = load_config("synthetic", sys.argv[2:])
info = init_distributed("cpu")
trainer = Trainer(cfg, info)
trainer.train()
if info.is_main:
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    buffers = {n: b.clone() for n, b in trainer.model.named_buffers()}
    torch.save({"grads": grads, "buffers": buffers, "steps": trainer.iters_per_epoch}, out)
cleanup(info)
"""


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_one_process_with_accumulation_makes_the_step_of_four_processes(synthetic_root, synthetic_proposals,
                                                                        tmp_path):
    """16 clips a step in 2019 = 4 groups here (of 1 clip, to stay fast): one process accumulating
    the 4 groups gets the gradient and batch-norm statistics of 4 gloo processes with one each."""
    script = tmp_path / "one_step.py"
    script.write_text(STEP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def opts(name: str) -> list[str]:
        return ["DATA.ROOT", str(synthetic_root), "PROPOSALS.TRAIN_DIR", str(synthetic_proposals / "train"),
                "PROPOSALS.EVAL_DIR", str(synthetic_proposals / "valid"), "OUTPUT_DIR", str(tmp_path / name),
                "DATA.INPUT_H", "64", "DATA.INPUT_W", "112", "SOLVER.BATCH_SIZE", "1", "SOLVER.BN_GROUPS", "4",
                "DATA.NUM_WORKERS", "0", "VAL.ENABLED", "False", "SOLVER.MAX_ITERS", "1", "DEVICE", "cpu",
                "SOLVER.GRAD_CLIP", "0.0"]

    one = subprocess.run([sys.executable, str(script), str(tmp_path / "one.pt"), *opts("one")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    four = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=4",
                           "--master_port=29533", str(script), str(tmp_path / "four.pt"), *opts("four")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert four.returncode == 0, four.stdout[-3000:] + four.stderr[-3000:]
    a, b = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "four.pt")
    assert a["steps"] == b["steps"] > 0
    assert a["grads"].keys() == b["grads"].keys()
    for name, grad in a["grads"].items():
        scale = max(float(grad.abs().max()), float(b["grads"][name].abs().max()), 1e-3)
        torch.testing.assert_close(grad, b["grads"][name], rtol=1e-4, atol=1e-5 * scale, msg=lambda m: f"{name}: {m}")
    for name, buf in a["buffers"].items():
        torch.testing.assert_close(buf, b["buffers"][name], rtol=1e-5, atol=1e-6, msg=name)
