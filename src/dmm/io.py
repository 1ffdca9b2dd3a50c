"""Atomic file writes: every file this project writes appears whole or not at all.

Temporary files and folders are created beside their target with a plain ``open``/``mkdir``
(mode 0o666 / 0o777 less the umask), so what is renamed into place carries the permissions
a direct write would have given, not ``tempfile``'s owner-only ones.

A leaf module: it imports nothing of ours but the error types, and torch only in
:func:`save_torch` and :func:`load_torch`.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import secrets
import shutil
import struct
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .errors import InputError, MissingInputError, OutputExistsError, UnsafePickleError

_TRIES = 100


def _sibling(path: Path, create: Callable[[Path], None]) -> Path:
    """Create (with ``create``) a new hidden path ``.<name>.<random>.tmp`` beside ``path``."""
    for _ in range(_TRIES):
        candidate = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            create(candidate)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free temporary name beside {path} after {_TRIES} tries")


def _create_file(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file is removed when the block raises, so a failed write leaves nothing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, _create_file)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; rename it onto ``path`` if the block succeeds.

    An existing ``path`` is an error unless ``overwrite``; then it is swapped out and removed
    only after the new folder is complete. On failure the temporary folder is removed.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, lambda p: p.mkdir())
    try:
        yield tmp
        if path.exists():
            old = _sibling(path, lambda p: p.mkdir())
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> None:
    write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through a temporary file and a rename."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _refused_global(message: str) -> str | None:
    """The global that ``torch.load(weights_only=True)`` refused, from its message (or None)."""
    match = re.search(r"Unsupported global: GLOBAL (\S+)", message)
    return match.group(1) if match else None


#: what ``torch.load`` raises on a file that is not a whole torch file (truncated, random bytes,
#: text, a zip without torch's records), besides ``UnpicklingError``
_UNREADABLE = (RuntimeError, OSError, EOFError, LookupError, ValueError, struct.error)
_DETAIL_CHARS = 120


def _detail(error: Exception) -> str:
    """The first line of ``error``'s message (with its type name when it is one word or none),
    at most _DETAIL_CHARS."""
    line = (str(error).strip().splitlines() or [""])[0]
    if " " not in line:  # no message, or a bare key or number
        line = f"{type(error).__name__}: {line}" if line else type(error).__name__
    return line if len(line) <= _DETAIL_CHARS else line[: _DETAIL_CHARS - 3] + "..."


def load_torch(path: str | os.PathLike, what: str, mmap: bool = False, allowed: Sequence[type] = ()) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, every failure named.

    Args:
        what: what the file is, for messages ("proposal file", "checkpoint file", ...).
        mmap: memory-map the tensors (they stay on disk until used).
        allowed: classes the file may hold besides tensors and plain values
            (``torch.serialization.safe_globals``), e.g. the ``argparse.Namespace`` of a 2019 checkpoint.
    Raises:
        MissingInputError: no such file.
        UnsafePickleError: the file holds pickled Python objects other than tensors,
            containers, numbers and strings (refused for safety: loading them could run code).
        InputError: the file is truncated or not a torch file.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{what} {path} does not exist")
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        refused = _refused_global(str(e))
        if refused is None:
            raise InputError(f"{what} {path} is truncated or not a torch file (unreadable pickle)"
                             ) from None
        raise UnsafePickleError(
            f"{what} {path} holds pickled Python objects other than tensors ({refused}), so it "
            "is refused for safety: loading them could run code; save it again holding only "
            "tensors, numbers, strings and lists or dicts of them (a plain state dict)") from None
    except _UNREADABLE as e:
        raise InputError(f"{what} {path} is truncated or not a torch file ({_detail(e)})") from None
