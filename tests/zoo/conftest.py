"""Fixtures of the zoo tests: a local server (127.0.0.1) and archives in the released layouts,
written by the project's own legacy writers (maskrcnn-benchmark's ``predictions.pth``, the
authors' checkpoint folders, a maskrcnn-benchmark checkpoint)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from dmm.cli import run
from dmm.data import YouTubeVOS, frame_index
from dmm.zoo.__main__ import main

from .server import Served

REPO = Path(__file__).resolve().parents[2]
LEGACY_WRITER = REPO / "tests" / "proposals" / "legacy_writer.py"


@pytest.fixture
def served(tmp_path):
    """A server of the files in ``tmp_path/served`` (stopped after the test)."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = Served(folder)
    yield server
    server.close()


@pytest.fixture(scope="session")
def split_dir(synthetic_root, tmp_path_factory) -> Path:
    """train3k / val200 / test271 metas of the tiny synthetic set (3 / 2 / 1 videos), by the
    README's command."""
    out = tmp_path_factory.mktemp("splits")
    subprocess.run([sys.executable, str(REPO / "src/tools/make_splits.py"), "--root", str(synthetic_root),
                    "--split-dir", str(out), "--counts", "3", "2"], check=True, capture_output=True)
    return out


def tar_gz(archive: Path, folder: Path, level: int = 1) -> Path:
    """``archive`` (.tar.gz) holding ``folder``'s contents at its top level."""
    with tarfile.open(archive, "w:gz", compresslevel=level) as tar:
        for item in sorted(folder.iterdir()):
            tar.add(item, arcname=item.name)
    return archive


def legacy_predictions(path: Path, frames: int, seed: int = 0) -> Path:
    """maskrcnn-benchmark's ``predictions.pth`` (pickled BoxLists) with one entry per frame."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(LEGACY_WRITER), str(path), str(frames), str(seed), "legacy"], check=True)
    return path


def split_frames(data_root: Path, split: str, split_dir: Path) -> int:
    return sum(len(f) for f in frame_index(YouTubeVOS(data_root, split, split_dir=split_dir)).values())


@pytest.fixture(scope="session")
def proposals_archive(synthetic_root, split_dir, tmp_path_factory) -> Path:
    """``proposals_ytb_train.tar.gz`` as released: ``ytb_train/inference/youtubevos_val200_meta/
    predictions.pth`` for the tiny val200 (trainval) split."""
    work = tmp_path_factory.mktemp("proposals_archive")
    legacy_predictions(work / "tree/ytb_train/inference/youtubevos_val200_meta/predictions.pth",
                       split_frames(synthetic_root, "trainval", split_dir))
    return tar_gz(work / "proposals_ytb_train.tar.gz", work / "tree")


def checkpoint_folder(folder: Path, state: dict[str, torch.Tensor], pair: bool = False) -> Path:
    """A released checkpoint folder: ``trainer.pt`` (a state dict under ``model`` with the 2019
    training arguments beside it) or, with ``pair``, the older ``encoder.pt`` + ``decoder.pt``."""
    folder.mkdir(parents=True)
    if pair:
        for part in ("encoder", "decoder"):
            torch.save({k[len(part) + 1:]: v for k, v in state.items() if k.startswith(part + ".")},
                       folder / f"{part}.pt")
    else:
        torch.save({"model": state, "epoch": 13}, folder / "trainer.pt")
    return folder


def zoo(root: Path, *args: str, data: tuple[Path, Path] | None = None) -> int:
    """``python -m dmm.zoo COMMAND --root ROOT [--data-root D --split-dir S --no-progress] ARGS``,
    in this process (as ``dmm.cli.run`` runs it): the exit status."""
    extra = ["--data-root", str(data[0]), "--split-dir", str(data[1]), "--no-progress"] if data else []
    return run(main, [args[0], "--root", str(root), *extra, *args[1:]])


def leftovers(root: Path) -> list[str]:
    """Hidden staging folders or temporary files anywhere under ``root``."""
    return [str(p) for p in root.rglob(".*") if p.name.endswith(".tmp")]


def error_line(capsys) -> str:
    """The one line the command wrote on stderr, checked to be an ``error:`` line."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]
