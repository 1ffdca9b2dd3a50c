"""Checkpoint files that are empty, random bytes or text: one clear error naming the file, the
same words as every other torch file (``dmm.io.load_torch``), never advice to turn the safety off;
resume skips such a checkpoint for the one before."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from torch import nn

from dmm.checkpointing import Checkpointer, load_checkpoint, load_weights, training_payload
from dmm.cli import run
from dmm.errors import InputError

BAD_FILES = {
    "empty": b"",
    "random": bytes(range(256)) * 3 + os.urandom(2000),
    "text": b"hello, this is not a checkpoint\n",
}


def _write_bad(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / kind / "trainer.pt"
    path.parent.mkdir()
    path.write_bytes(BAD_FILES[kind])
    return path


def _assert_plain(message: str, path: Path) -> None:
    assert f"checkpoint file {path} is truncated or not a torch file" in message
    assert "weights_only" not in message and "refused for safety" not in message


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_checkpoint_files_are_named_as_truncated(tmp_path, kind):
    path = _write_bad(tmp_path, kind)
    for load in (lambda p: load_weights(nn.Linear(2, 2), p), lambda p: load_checkpoint(p, nn.Linear(2, 2))):
        for target in (path, path.parent):
            with pytest.raises(InputError) as err:
                load(target)
            _assert_plain(str(err.value), path)


def test_resume_falls_back_over_an_empty_checkpoint(tmp_path, caplog):
    model = nn.Linear(2, 2)
    checkpointer = Checkpointer(tmp_path, keep_last=3)
    older = checkpointer.save(0, 10, training_payload(model.state_dict(), None, 0, 10))
    newer = checkpointer.save(0, 20, training_payload(model.state_dict(), None, 0, 20))
    (newer / "trainer.pt").write_bytes(b"")
    path, state = checkpointer.load_latest(lambda p: load_checkpoint(p, nn.Linear(2, 2)))
    assert path == older and state["iteration"] == 10
    assert "truncated or not a torch file" in caplog.text
    assert not checkpointer.is_finite(newer)


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_dmm_test_and_train_name_a_bad_checkpoint_in_one_line(tmp_path, kind, capsys):
    from dmm import test as dmm_test
    from dmm import train as dmm_train

    path = _write_bad(tmp_path, kind)
    small = ["DEVICE", "cpu", "MODEL.BACKBONE", "resnet18", "MODEL.PRETRAINED", "none"]
    assert run(dmm_test.main, ["--checkpoint", str(path), *small]) == 2
    assert run(dmm_train.main, ["--config", "synthetic", "--init", str(path),
                                "OUTPUT_DIR", str(tmp_path / "run"), *small]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("error: ") for line in lines)
    for line in lines:
        _assert_plain(line, path)
