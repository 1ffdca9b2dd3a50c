"""Getting a released file: download with resume (HTTP Range), and unpacking safely.

:func:`download` writes ``<dest>.part`` and renames it to ``dest`` once every byte has come; a
``.part`` left by a dropped connection is continued from its last byte by the next call (the
server is asked for ``Range: bytes=<size>-``; one that ignores the range sends the file again).
:func:`unpack` extracts a ``.tar.gz`` / ``.tar`` / ``.zip`` into a folder, refusing members that
would land outside it (absolute paths, ``..``, links pointing out); :func:`find_member` finds
an expected path in what was unpacked.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

from tqdm import tqdm

from dmm.errors import DMMError, InputError

_CHUNK = 1 << 20
_TIMEOUT_S = 60


class DownloadError(DMMError):
    """An address did not give the file (HTTP error, no connection)."""


class TransferStopped(DownloadError):
    """The transfer began but stopped early; the ``.part`` file is kept to continue from."""


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return f"{type(error).__name__}: {error}"


def _resume_start(response, start: int, url: str) -> int:
    """The byte the response's body starts at: ``start`` for a 206 matching the range, else 0."""
    if start == 0 or response.status != 206:
        return 0
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    if not match or int(match.group(1)) != start:
        raise DownloadError(f"{url} answered the request for bytes {start}- with Content-Range "
                            f"{response.headers.get('Content-Range')!r}")
    return start


def download(url: str, dest: Path, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, continuing a ``.part`` already there.

    Raises:
        DownloadError: the address failed (named with its reason), or the transfer stopped early
            (the ``.part`` is kept: calling again continues from its last byte).
    """
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    start = part.stat().st_size if part.is_file() else 0
    headers = {"Range": f"bytes={start}-"} if start else {}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:  # the range is past the file: it changed; start again
            part.unlink()
            return download(url, dest, progress)
        raise DownloadError(f"{url}: {_reason(e)}") from None
    except (urllib.error.URLError, OSError) as e:
        raise DownloadError(f"{url}: {_reason(e)}") from None
    with response:
        start = _resume_start(response, start, url)
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        with open(part, "ab" if start else "wb") as f, tqdm(
                total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
                disable=not progress) as bar:
            try:
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                    bar.update(len(chunk))
            except OSError as e:  # http.client.IncompleteRead, a reset or timed-out connection
                got = f.tell()
                raise TransferStopped(f"{url}: the transfer stopped at byte {got} of {total or '?'} "
                                    f"({_reason(e)}); run the same command again to continue from there") from None
    got = part.stat().st_size
    if total is not None and got != total:
        raise TransferStopped(f"{url}: the transfer stopped at byte {got} of {total}; run the same command "
                            "again to continue from there")
    os.replace(part, dest)
    return dest


def _extract_tar(archive: Path, dest: Path, progress: bool) -> None:
    with tarfile.open(archive) as tar:
        for member in tqdm(tar, desc=f"unpack {archive.name}", unit="file", disable=not progress, leave=False):
            try:
                tar.extract(member, dest, filter="data")
            except tarfile.FilterError as e:
                raise InputError(f"archive {archive}: member {member.name!r} is refused ({e}): it would be "
                                 f"written outside the folder it is unpacked in") from None


def _extract_zip(archive: Path, dest: Path, progress: bool) -> None:
    base = dest.resolve()
    with zipfile.ZipFile(archive) as z:
        for info in tqdm(z.infolist(), desc=f"unpack {archive.name}", unit="file", disable=not progress,
                         leave=False):
            target = (base / info.filename).resolve()
            if Path(info.filename).is_absolute() or not target.is_relative_to(base):
                raise InputError(f"archive {archive}: member {info.filename!r} is refused: it would be "
                                 "written outside the folder it is unpacked in")
            z.extract(info, dest)


def unpack(archive: Path, dest: Path, progress: bool = True) -> None:
    """Extract ``archive`` (``.tar.gz``, ``.tgz``, ``.tar`` or ``.zip``) into the folder ``dest``."""
    name = archive.name
    kind = "zip" if name.endswith(".zip") else "tar.gz" if name.endswith((".gz", ".tgz")) else "tar"
    try:
        if kind == "zip":
            _extract_zip(archive, dest, progress)
        else:
            _extract_tar(archive, dest, progress)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as e:
        raise InputError(f"archive {archive} is truncated or not a {kind} file ({type(e).__name__}: {e}); "
                         "fetch it again") from None


def find_member(folder: Path, member: str, archive: str) -> Path:
    """``folder/member``, or the one path under ``folder`` ending in the most of ``member``'s
    trailing parts (an archive with one more or one fewer leading folder).

    Raises:
        InputError: nothing of that name, or several equally good candidates.
    """
    exact = folder / member
    if exact.exists():
        return exact
    parts = Path(member).parts

    def score(path: Path) -> int:
        rel = path.relative_to(folder).parts
        n = 0
        while n < min(len(rel), len(parts)) and rel[-1 - n] == parts[-1 - n]:
            n += 1
        return n

    candidates = list(folder.rglob(parts[-1]))
    if not candidates:
        top = sorted(p.name for p in folder.iterdir())[:10]
        raise InputError(f"archive {archive} holds no {member} (its top level: {', '.join(top) or 'nothing'})")
    best = max(score(p) for p in candidates)
    chosen = [p for p in candidates if score(p) == best]
    if len(chosen) > 1:
        names = ", ".join(str(p.relative_to(folder)) for p in chosen[:5])
        raise InputError(f"archive {archive} holds several candidates for {member}: {names}")
    return chosen[0]


def place(src: Path, target: Path) -> None:
    """Move ``src`` to ``target`` (absent) by a rename: a copy to a hidden sibling first when
    they are on different file systems, so ``target`` appears whole or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(src, target)
    except OSError as e:
        if e.errno != errno.EXDEV:  # another file system
            raise
        tmp = target.with_name(f".{target.name}.zoo.tmp")
        shutil.move(src, tmp)
        os.rename(tmp, target)
