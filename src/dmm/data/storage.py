"""Where a split's files come from: a folder on disk, or an LMDB made by ``tools/make_lmdb.py``.

Both expose the same three calls on paths relative to the split folder
(``JPEGImages/<video>/<frame>.jpg``, ``Annotations/<video>/<frame>.png``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import DatasetError

#: LMDB key holding the JSON list of every stored relative path.
LMDB_INDEX_KEY = b"__index__"


class FolderSource:
    """Files under ``root`` on disk."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def describe(self, rel: str) -> str:
        return str(self.root / rel)

    def read(self, rel: str) -> bytes:
        try:
            return (self.root / rel).read_bytes()
        except FileNotFoundError:
            raise DatasetError(f"{self.root / rel}: file not found") from None

    def listdir(self, rel: str) -> list[str]:
        """Sorted names of the files in folder ``rel`` ([] when it does not exist)."""
        folder = self.root / rel
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists()


class LmdbSource:
    """Files packed as raw bytes keyed by their relative path in an LMDB.

    The environment is opened lazily in each process, so the source survives being pickled
    into DataLoader workers.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise DatasetError(
                f"{self.path}: LMDB frame cache not found (make it with src/tools/make_lmdb.py "
                "or unset DATA.LMDB)"
            )
        self._env = None
        self._pid = None
        self._folders: dict[str, list[str]] | None = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_env"] = None
        state["_pid"] = None
        return state

    def _open(self):
        if self._env is None or self._pid != os.getpid():
            import lmdb

            self._env = lmdb.open(
                str(self.path), readonly=True, lock=False, readahead=False, meminit=False,
                subdir=self.path.is_dir(),
            )
            self._pid = os.getpid()
        return self._env

    def _get(self, key: bytes) -> bytes | None:
        with self._open().begin(buffers=False) as txn:
            return txn.get(key)

    def describe(self, rel: str) -> str:
        return f"{self.path}:{rel}"

    def read(self, rel: str) -> bytes:
        data = self._get(rel.encode())
        if data is None:
            raise DatasetError(f"{self.describe(rel)}: file not found in the LMDB")
        return data

    def _index(self) -> dict[str, list[str]]:
        if self._folders is None:
            raw = self._get(LMDB_INDEX_KEY)
            if raw is None:
                raise DatasetError(f"{self.path}: not a frame cache made by make_lmdb.py (no index)")
            folders: dict[str, list[str]] = {}
            for rel in json.loads(raw):
                parent, _, name = rel.rpartition("/")
                folders.setdefault(parent, []).append(name)
            self._folders = {k: sorted(v) for k, v in folders.items()}
        return self._folders

    def listdir(self, rel: str) -> list[str]:
        rel = rel.rstrip("/")
        index = self._index()
        if rel in index:
            return list(index[rel])
        prefix = rel + "/"
        subfolders = {k[len(prefix):].split("/")[0] for k in index if k.startswith(prefix)}
        return sorted(subfolders)

    def exists(self, rel: str) -> bool:
        parent, _, name = rel.rstrip("/").rpartition("/")
        return name in self.listdir(parent)
