"""Atomic writes (``dmm.io``): whole or nothing, and the permissions a plain open()/mkdir() gives."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dmm.io import atomic_dir, atomic_path, save_torch, write_json, write_text


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    """Run the test under this umask (restored afterwards)."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_get_the_umask_permissions(tmp_path: Path, umask: int):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert mode(plain) == 0o666 & ~umask
    write_text(tmp_path / "a.txt", "a")
    write_json(tmp_path / "sub" / "b.json", {"b": 1})
    save_torch({"c": 1}, tmp_path / "c.pth")
    with atomic_path(tmp_path / "d.bin") as tmp:
        tmp.write_bytes(b"d")
    for name in ("a.txt", "sub/b.json", "c.pth", "d.bin"):
        assert mode(tmp_path / name) == mode(plain), name
    assert mode(tmp_path / "sub") == 0o777 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "c.pth", "d.bin", "plain.txt", "sub"]


def test_folders_get_the_umask_permissions(tmp_path: Path, umask: int):
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "inner").mkdir()
        write_text(tmp / "inner" / "f.txt", "f")
    assert mode(tmp_path / "out") == 0o777 & ~umask
    assert mode(tmp_path / "out" / "inner") == 0o777 & ~umask
    assert mode(tmp_path / "out" / "inner" / "f.txt") == 0o666 & ~umask


def test_failed_writes_leave_nothing(tmp_path: Path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "f.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "x").write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_only_when_asked(tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(FileExistsError, match="out"):
        with atomic_dir(out):
            pass
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_load_torch_names_the_file_and_the_fault(tmp_path: Path):
    import argparse

    import torch

    from dmm.errors import InputError, MissingInputError, UnsafePickleError
    from dmm.io import load_torch

    save_torch({"w": torch.zeros(300)}, tmp_path / "ok.pth")
    assert load_torch(tmp_path / "ok.pth", "weights file", mmap=True)["w"].shape == (300,)
    with pytest.raises(MissingInputError, match=r"weights file .*none\.pth does not exist"):
        load_torch(tmp_path / "none.pth", "weights file")
    data = (tmp_path / "ok.pth").read_bytes()
    for n in (1, 10, len(data) // 2, len(data) - 20):
        (tmp_path / "cut.pth").write_bytes(data[:n])
        for mmap in (False, True):
            with pytest.raises(InputError, match=r"weights file .*cut\.pth is truncated or not a torch file"):
                load_torch(tmp_path / "cut.pth", "weights file", mmap=mmap)
    torch.save({"args": argparse.Namespace(lr=1)}, tmp_path / "pickled.pth")
    with pytest.raises(UnsafePickleError, match=r"pickled\.pth holds pickled Python objects other than "
                                                r"tensors \(argparse\.Namespace\), so it is refused for safety"):
        load_torch(tmp_path / "pickled.pth", "weights file")
