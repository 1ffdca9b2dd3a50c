"""The training / evaluation shell entry points, run with ``sh`` (dash here) as the README does.

Every run sets DRY_RUN=1, so nothing trains even if a check were missing: the scripts print
the command (``+ ...``) instead of running it; CUDA_VISIBLE_DEVICES is empty, so no GPU is seen.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SH = shutil.which("sh") or "/bin/sh"
SCRIPTS = [
    "scripts/train/train_load_prop.sh",
    "scripts/train/train_online.sh",
    "scripts/eval/eval_r50.sh",
    "scripts/eval/eval_testdev.sh",
]


def run(script: str, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``sh <repo>/<script> ARGS`` from ``cwd`` with extra environment ``env``."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("NGPUS", "DATA_ROOT", "MODEL", "CHECKPOINT")}
    full_env.update(DRY_RUN="1", CUDA_VISIBLE_DEVICES="", **env)  # the same on a machine with GPUs
    return subprocess.run(
        [SH, str(REPO / script), *args], cwd=cwd, env=full_env, capture_output=True, text=True,
        timeout=300,
    )


def make_split(folder: Path, meta: Path | None = None) -> None:
    """A split folder with one video and its meta file (``folder/meta.json`` by default)."""
    (folder / "JPEGImages" / "v1").mkdir(parents=True, exist_ok=True)
    meta = meta or folder / "meta.json"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"videos": {"v1": {"objects": {}}}}))


def make_proposals(folder: Path) -> Path:
    """A proposal folder with the file of make_split's video (never read: the runs are dry)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "v1.pth").write_bytes(b"")
    return folder


def make_checkpoint(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "trainer.pt").write_bytes(b"")
    return folder


def assert_failed(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)
    assert "+ " not in proc.stdout  # no command was started


@pytest.mark.parametrize("script", SCRIPTS)
def test_missing_dataset_root_is_named(script: str, tmp_path: Path):
    missing = tmp_path / "no_dataset"
    proc = run(script, tmp_path, DATA_ROOT=str(missing))
    assert_failed(proc, f"dataset root (DATA.ROOT) not found: {missing}")


def test_bad_override_is_reported(tmp_path: Path):
    proc = run(SCRIPTS[0], tmp_path, "SOLVER.NO_SUCH_KEY", "1")
    assert_failed(proc, "SOLVER.NO_SUCH_KEY")


@pytest.fixture()
def train_data(tmp_path: Path) -> dict[str, Path]:
    """Dataset root with train/ and the train3k / val200 split files, plus proposal dirs."""
    root, splits = tmp_path / "ytb", tmp_path / "splits"
    make_split(root / "train", splits / "train3k_meta.json")
    make_split(root / "train", splits / "val200_meta.json")
    props = {"train": tmp_path / "props_train", "eval": tmp_path / "props_eval"}
    for p in props.values():
        make_proposals(p)
    return {"root": root, "splits": splits, **{f"props_{k}": v for k, v in props.items()}}


def _train_env(d: dict[str, Path]) -> dict[str, str]:
    return {
        "DATA_ROOT": str(d["root"]),
        "TRAIN_PROPOSALS": str(d["props_train"]),
        "EVAL_PROPOSALS": str(d["props_eval"]),
    }


def test_train_checks_split_meta_and_proposals(train_data, tmp_path: Path):
    d = train_data
    split_args = ("DATA.SPLIT_DIR", str(d["splits"]))
    (d["splits"] / "val200_meta.json").unlink()
    proc = run(SCRIPTS[0], tmp_path, *split_args, **_train_env(d))
    assert_failed(proc, "validation (trainval) split meta not found", str(d["splits"] / "val200_meta.json"))
    make_split(d["root"] / "train", d["splits"] / "val200_meta.json")

    shutil.rmtree(d["props_train"])
    proc = run(SCRIPTS[0], tmp_path, *split_args, **_train_env(d))
    assert_failed(proc, f"train proposals not found: {d['props_train']}")
    # with validation off, the eval proposals are not needed; the train ones still are
    make_proposals(d["props_train"])
    shutil.rmtree(d["props_eval"])
    proc = run(SCRIPTS[0], tmp_path, *split_args, "VAL.ENABLED", "False", **_train_env(d))
    assert proc.returncode == 0, proc.stderr

    proc = run(SCRIPTS[0], tmp_path, "--resume", str(tmp_path / "no_ckpt"), *split_args,
               "VAL.ENABLED", "False", **_train_env(d))
    assert_failed(proc, f"run or checkpoint to resume (--resume) not found: {tmp_path / 'no_ckpt'}")


def test_train_commands(train_data, tmp_path: Path):
    d = train_data
    args = ("DATA.SPLIT_DIR", str(d["splits"]), "SOLVER.EPOCHS", "1")
    one = run(SCRIPTS[0], tmp_path, *args, **_train_env(d))
    assert one.returncode == 0, one.stderr
    line = [l for l in one.stdout.splitlines() if l.startswith("+ ")]
    assert len(line) == 1
    # the caller's arguments first, then the variables' overrides (options never follow them)
    assert line[0] == (
        f"+ {REPO}/.venv/bin/python -m dmm.train --config train DATA.SPLIT_DIR {d['splits']} "
        f"SOLVER.EPOCHS 1 DATA.ROOT {d['root']} PROPOSALS.TRAIN_DIR {d['props_train']} "
        f"PROPOSALS.EVAL_DIR {d['props_eval']}"
    )
    assert "GPU(s)" not in one.stdout and "1 process on the CPU (no CUDA GPU visible)" in one.stdout
    four = run(SCRIPTS[0], tmp_path, *args, NGPUS="4", **_train_env(d))
    assert four.returncode == 0, four.stderr
    assert "/torchrun --nproc_per_node=4 -m dmm.train --config train DATA.SPLIT_DIR" in four.stdout
    assert "4 processes on the CPU (no CUDA GPU visible)" in four.stdout
    cuda = run(SCRIPTS[0], tmp_path, *args, "DEVICE", "cuda", **_train_env(d))
    assert_failed(cuda, "DEVICE cuda", "no CUDA GPU")
    bad = run(SCRIPTS[0], tmp_path, *args, NGPUS="two", **_train_env(d))
    assert_failed(bad, "NGPUS must be a positive integer")


def test_multi_machine_launch_lines(train_data, tmp_path: Path):
    """Two machines: every machine runs the script with NNODES, its NODE_RANK and machine 0's
    address (or a rendezvous endpoint); the variables reach torchrun."""
    d = train_data
    args = ("DATA.SPLIT_DIR", str(d["splits"]))
    env = {**_train_env(d), "NGPUS": "2", "NNODES": "2", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29600"}
    for rank in ("0", "1"):
        proc = run(SCRIPTS[0], tmp_path, *args, NODE_RANK=rank, **env)
        assert proc.returncode == 0, proc.stderr
        assert (f"/torchrun --nnodes=2 --node_rank={rank} --master_addr=10.0.0.1 --master_port=29600 "
                f"--nproc_per_node=2 -m dmm.train --config train DATA.SPLIT_DIR") in proc.stdout
        assert f"machine {rank} of 2, 2 processes on the CPU" in proc.stdout
    rdzv = run(SCRIPTS[0], tmp_path, *args, **{**env, "MASTER_ADDR": "", "RDZV_ENDPOINT": "head:29400", "RDZV_ID": "r7"})
    assert rdzv.returncode == 0, rdzv.stderr
    assert ("/torchrun --nnodes=2 --rdzv_backend=c10d --rdzv_endpoint=head:29400 --rdzv_id=r7 "
            "--nproc_per_node=2 -m dmm.train") in rdzv.stdout
    assert_failed(run(SCRIPTS[0], tmp_path, *args, **{**env, "MASTER_ADDR": ""}), "NNODES=2: set MASTER_ADDR")
    assert_failed(run(SCRIPTS[0], tmp_path, *args, NODE_RANK="2", **env), "NODE_RANK must be 0 .. NNODES-1 (1)")
    assert_failed(run(SCRIPTS[0], tmp_path, *args, **{**env, "NNODES": "x"}), "NNODES must be a positive integer")


def test_two_machines_train_for_real_through_the_script(synthetic_root, tmp_path: Path):
    """Two "machines" on this one (NNODES=2, one CPU process each, gloo) run the script's own launch
    line and train one step together; machine 0 writes the checkpoint."""
    from dmm.proposals.synthetic import generate as generate_proposals

    props = tmp_path / "props"
    generate_proposals(synthetic_root, "train", props / "train", seed=0, progress=False)
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("NGPUS", "DATA_ROOT", "MODEL", "CHECKPOINT", "DRY_RUN")}
    env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", NGPUS="1", NNODES="2", MASTER_ADDR="127.0.0.1",
               MASTER_PORT="29547", CONFIG="synthetic", DATA_ROOT=str(synthetic_root),
               TRAIN_PROPOSALS=str(props / "train"), OUTPUT_DIR=str(out))
    args = ["DATA.INPUT_H", "64", "DATA.INPUT_W", "112", "SOLVER.BATCH_SIZE", "1", "SOLVER.BN_GROUPS", "2",
            "SOLVER.MAX_ITERS", "1", "DATA.NUM_WORKERS", "0", "VAL.ENABLED", "False", "DEVICE", "cpu"]
    procs = [subprocess.Popen([SH, str(REPO / SCRIPTS[0]), *args], cwd=tmp_path, env={**env, "NODE_RANK": rank},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in ("0", "1")]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (stdout, stderr) in zip(procs, outputs):
        assert p.returncode == 0, stdout[-2000:] + stderr[-3000:]
    assert "--nnodes=2 --node_rank=0 --master_addr=127.0.0.1" in outputs[0][0]
    assert (out / "epo00_iter00001" / "trainer.pt").is_file()


def test_online_checks_data_and_init(tmp_path: Path):
    root = tmp_path / "ytb"
    (root / "train_testdev_ot").mkdir(parents=True)
    props = tmp_path / "props"
    env = {"DATA_ROOT": str(root), "TRAIN_PROPOSALS": str(props), "INIT_CKPT": str(tmp_path / "init")}
    proc = run(SCRIPTS[1], tmp_path, **env)
    assert_failed(proc, f"online-training split images not found: {root / 'train_testdev_ot/JPEGImages'}",
                  "make_train_online_dataset.py")
    make_split(root / "train_testdev_ot")
    assert_failed(run(SCRIPTS[1], tmp_path, **env), f"online-training proposals not found: {props}")
    props.mkdir()
    assert_failed(run(SCRIPTS[1], tmp_path, **env), f"online-training proposals {props} hold no <video>.pth for "
                                                    "video v1 (1 of 1 videos) of the split")
    make_proposals(props)
    assert_failed(run(SCRIPTS[1], tmp_path, **env), f"initial checkpoint (INIT_CKPT / --init) not found: {tmp_path / 'init'}")
    (tmp_path / "init").mkdir()
    assert_failed(run(SCRIPTS[1], tmp_path, **env), "holds no trainer.pt")
    (tmp_path / "init/trainer.pt").write_bytes(b"")
    proc = run(SCRIPTS[1], tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    assert f"-m dmm.train --config online --init {tmp_path / 'init'} DATA.ROOT {root}" in proc.stdout
    # a released trainer.pt file is a valid --init too
    proc = run(SCRIPTS[1], tmp_path, **{**env, "INIT_CKPT": str(tmp_path / "init/trainer.pt")})
    assert proc.returncode == 0, proc.stderr


def test_eval_r50_checks_every_checkpoint_first(tmp_path: Path):
    root, splits = tmp_path / "ytb", tmp_path / "splits"
    make_split(root / "train", splits / "val200_meta.json")
    props = make_proposals(tmp_path / "props")
    match = make_checkpoint(tmp_path / "m/epo13_iter01640")
    env = {"DATA_ROOT": str(root), "EVAL_PROPOSALS": str(props), "CKPT_MATCHLOSS": str(match),
           "CKPT_NOMATCH": str(tmp_path / "n/epo08_iter01640"), "OUT_ROOT": str(tmp_path / "out")}
    args = ("DATA.SPLIT_DIR", str(splits))
    proc = run(SCRIPTS[2], tmp_path, *args, **env)
    assert_failed(proc, f"checkpoint of ytb_255_50 not found: {tmp_path / 'n/epo08_iter01640'}")

    proc = run(SCRIPTS[2], tmp_path, *args, MODEL="ytb_255_50_matchloss_epo13", **env)
    assert proc.returncode == 0, proc.stderr
    cmds = [l for l in proc.stdout.splitlines() if l.startswith("+ ")]
    assert len(cmds) == 1
    out = tmp_path / "out/ytb_255_50_matchloss_epo13/eval/trainval/merged"
    assert cmds[0].endswith(
        f"-m dmm.test --config eval --checkpoint {match} --out {out} --split trainval "
        f"DATA.SPLIT_DIR {splits} DATA.ROOT {root} PROPOSALS.EVAL_DIR {props}"
    )
    assert f"sh scripts/metric/full_eval.sh {out}\n" in proc.stdout

    make_checkpoint(tmp_path / "n/epo08_iter01640")
    proc = run(SCRIPTS[2], tmp_path, *args, **env)
    assert proc.returncode == 0, proc.stderr
    assert len([l for l in proc.stdout.splitlines() if l.startswith("+ ")]) == 2
    assert f"full_eval.sh {tmp_path / 'out/ytb_255_50/eval/trainval/merged'}\n" in proc.stdout
    assert_failed(run(SCRIPTS[2], tmp_path, *args, MODEL="r101", **env), "MODEL must be")


def test_eval_testdev(tmp_path: Path):
    root = tmp_path / "ytb"
    make_split(root / "valid")
    props = tmp_path / "props"
    env = {"DATA_ROOT": str(root), "EVAL_PROPOSALS": str(props), "CHECKPOINT": str(tmp_path / "ckpt"),
           "OUT": str(tmp_path / "res")}
    assert_failed(run(SCRIPTS[3], tmp_path, **env), f"evaluation (valid) proposals not found: {props}")
    make_proposals(props)
    assert_failed(run(SCRIPTS[3], tmp_path, **env), f"checkpoint (TEST.CHECKPOINT / CHECKPOINT) not found: {tmp_path / 'ckpt'}")
    make_checkpoint(tmp_path / "ckpt")
    proc = run(SCRIPTS[3], tmp_path, "--videos", "2", **env)
    assert proc.returncode == 0, proc.stderr
    assert (f"-m dmm.test --config eval_testdev --checkpoint {tmp_path / 'ckpt'} --split valid "
            f"--out {tmp_path / 'res/merged'} --videos 2 DATA.ROOT {root}") in proc.stdout
    assert f"[eval] checkpoint {tmp_path / 'ckpt'}: CHECKPOINT" in proc.stdout
    assert f"sh scripts/submit.sh {tmp_path / 'res/merged'}\n" in proc.stdout


def test_eval_testdev_takes_the_released_epo101_when_the_evaluated_checkpoint_is_absent(tmp_path: Path):
    """2019's eval_testdev.sh evaluated online_ytb/epo90_iter00088 (the config's checkpoint); the 2019
    README lays the download out as online_ytb/epo101: the script takes that one when alone."""
    root = tmp_path / "ytb"
    make_split(root / "valid")
    make_proposals(tmp_path / "props")
    config = tmp_path / "testdev.yaml"
    config.write_text(f"DATA:\n  EVAL_SPLIT: valid\nMODEL:\n  BACKBONE: resnet101\n  PRETRAINED: none\n"
                      f"TEST:\n  CHECKPOINT: {tmp_path / 'online_ytb/epo90_iter00088'}\n")
    online = tmp_path / "online.yaml"
    online.write_text(f"OUTPUT_DIR: {tmp_path / 'online_run'}\nSOLVER:\n  KEEP_EPOCHS: [88]\n")
    env = {"DATA_ROOT": str(root), "EVAL_PROPOSALS": str(tmp_path / "props"), "CONFIG": str(config),
           "OUT": str(tmp_path / "res"), "ONLINE_CONFIG": str(online)}
    assert_failed(run(SCRIPTS[3], tmp_path, **env),
                  f"checkpoint (TEST.CHECKPOINT / CHECKPOINT) not found: {tmp_path / 'online_ytb/epo90_iter00088'}")
    released = make_checkpoint(tmp_path / "online_ytb/epo101")
    proc = run(SCRIPTS[3], tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    assert f"[eval] checkpoint {released}: the released model: no online run in {tmp_path / 'online_run'}" in proc.stdout
    assert f"--checkpoint {released} --split valid --out {tmp_path / 'res/merged'} DATA.ROOT {root}" in proc.stdout
    evaluated = make_checkpoint(tmp_path / "online_ytb/epo90_iter00088")  # when present, the one 2019 evaluated
    proc = run(SCRIPTS[3], tmp_path, **env)
    assert proc.returncode == 0 and f"--checkpoint {evaluated} --split" in proc.stdout, proc.stdout

    # the online run's own, once scripts/train/train_online.sh wrote one: its epoch-88 checkpoint, else its newest
    for name in ("epo87_iter00088", "epo88_iter00089", "epo88_iter00178", "epo89_iter00179"):
        make_checkpoint(tmp_path / "online_run" / name)
    proc = run(SCRIPTS[3], tmp_path, **{**env, "OUT": ""})
    own = tmp_path / "online_run/epo88_iter00178"
    assert f"[eval] checkpoint {own}: the online run's own" in proc.stdout and "epoch-88" in proc.stdout
    assert f"--checkpoint {own} --split valid --out {tmp_path / 'online_run/eval/epo88_iter00178/valid/merged'}" in proc.stdout
    shutil.rmtree(own.parent / "epo88_iter00089")
    shutil.rmtree(own)
    proc = run(SCRIPTS[3], tmp_path, **env)
    assert f"[eval] checkpoint {tmp_path / 'online_run/epo89_iter00179'}: the online run's own" in proc.stdout
    assert "its newest checkpoint (none of epoch 88)" in proc.stdout


def test_train_r101_starts_from_the_rvos_model(train_data, tmp_path: Path):
    d = train_data
    rvos = tmp_path / "rvos"
    rvos.mkdir()
    for name in ("encoder.pt", "decoder.pt"):
        (rvos / name).write_bytes(b"")
    proc = run("scripts/train/train_r101.sh", tmp_path, "DATA.SPLIT_DIR", str(d["splits"]), RVOS=str(rvos),
               **_train_env(d))
    assert proc.returncode == 0, proc.stderr
    (cmd,) = [line for line in proc.stdout.splitlines() if line.startswith("+ ")]
    assert f"-m dmm.train --config train_r101 --init {rvos} DATA.SPLIT_DIR" in cmd
    assert_failed(run("scripts/train/train_r101.sh", tmp_path, "DATA.SPLIT_DIR", str(d["splits"]),
                      RVOS=str(tmp_path / "none"), **_train_env(d)),
                  f"initial checkpoint (--init) not found: {tmp_path / 'none'}")


def test_eval_r50_files_your_own_checkpoint_under_its_run(tmp_path: Path):
    root, splits = tmp_path / "ytb", tmp_path / "splits"
    make_split(root / "train", splits / "val200_meta.json")
    props = make_proposals(tmp_path / "props")
    env = {"DATA_ROOT": str(root), "EVAL_PROPOSALS": str(props), "OUT_ROOT": str(tmp_path / "out")}
    args = ("DATA.SPLIT_DIR", str(splits))
    mine = make_checkpoint(tmp_path / "runs/mine/epo05_iter00100")
    proc = run(SCRIPTS[2], tmp_path, *args, CHECKPOINT=str(mine), **env)
    assert proc.returncode == 0, proc.stderr
    (cmd,) = [l for l in proc.stdout.splitlines() if l.startswith("+ ")]
    out = tmp_path / "runs/mine/eval/epo05_iter00100/trainval/merged"
    assert cmd.endswith(f"-m dmm.test --config eval --checkpoint {mine} --out {out} --split trainval "
                        f"DATA.SPLIT_DIR {splits} DATA.ROOT {root} PROPOSALS.EVAL_DIR {props}")
    assert f"sh scripts/metric/full_eval.sh {out}\n" in proc.stdout
    assert "ytb_255_50" not in proc.stdout
    # a checkpoint file (trainer.pt) is filed under its folder's name
    proc = run(SCRIPTS[2], tmp_path, *args, CHECKPOINT=str(mine / "trainer.pt"), **env)
    assert proc.returncode == 0 and f"--out {out} " in proc.stdout, proc.stderr
    assert_failed(run(SCRIPTS[2], tmp_path, *args, CHECKPOINT=str(tmp_path / "runs/none"), **env),
                  f"checkpoint not found: {tmp_path / 'runs/none'}")
    assert_failed(run(SCRIPTS[2], tmp_path, *args, MODEL="my_model", **env), "CHECKPOINT=")
