"""``fetch`` and ``check``: get released files into MODEL_ZOO.md's layout, verified.

A fetch, per release: the products already there are checked (and kept: nothing present is
overwritten); for the others the file is downloaded (``experiments/downloads/<file>``, through a
``.part`` that a second fetch continues) or taken from ``--from``, unpacked into a hidden
staging folder beside its destination, the README's follow-up run there (proposal archives:
``reduce_pth_size_by_videos.py``'s per-video store), each product checked by content in the
staging folder, and only then renamed into place. A failure removes the staging folder, so no
half-unpacked folder is left; a download whose archive is unusable is removed too.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from dmm.errors import DMMError, InputError, MissingInputError
from dmm.zoo.checks import PREDICTIONS, CheckFailed, Lock, Places, store_name, verify
from dmm.zoo.registry import Product, Release, Zoo
from dmm.zoo.transfer import DownloadError, TransferStopped, download, find_member, place, unpack

DOWNLOADS = "experiments/downloads"


class BadArchive(InputError):
    """The released file itself is unusable (truncated, another model, missing members)."""


def line(status: str, product: Product, detail: str) -> str:
    """One result line: ``OK  name  path: what was verified`` (or what is wrong)."""
    return f"{status:<7} {product.name:<30} {product.path}: {detail}"


def _blocking_file(target: Path, root: Path) -> Path | None:
    """An existing plain file among ``target``'s folders (below ``root``), which would block it."""
    for parent in reversed(target.relative_to(root).parents):
        path = root / parent
        if path.exists() and not path.is_dir():
            return path
    return None


def _split_reader_error(product: Product, places: Places) -> None:
    """Refuse early (before any download) a proposal product whose dataset split is not there."""
    from dmm.data import YouTubeVOS

    try:
        YouTubeVOS(places.data_root, product.check.split, split_dir=places.split_dir)
    except DMMError as e:
        raise MissingInputError(
            f"{product.name} is checked against split {product.check.split} of the dataset, which is not "
            f"readable ({e}): link YouTube-VOS (README step 1, make_splits.py) or pass --data-root / --split-dir; "
            "nothing was fetched") from None


@dataclass(frozen=True)
class Source:
    """Where the released file comes from: a local file (``downloaded`` False) or a download."""

    path: Path
    downloaded: bool


def _source_hint(release: Release) -> str:
    return (f"the 2019 addresses may no longer serve: with a copy of {release.file}, run python -m dmm.zoo fetch "
            f"{release.name} --from DIR_OR_URL (a folder holding {release.file}, or an address serving it)")


def obtain(release: Release, origin: str | None, places: Places) -> Source:
    """The released file: from ``origin`` (a folder or an address holding the same file name),
    else downloaded from the release's addresses in turn."""
    dest = places.root / DOWNLOADS / release.file
    if origin is not None and urllib.parse.urlsplit(origin).scheme not in ("http", "https"):
        path = Path(origin) / release.file
        if not path.is_file():
            raise MissingInputError(f"--from {origin}: {path} does not exist (it needs {release.file} for "
                                    f"{release.name})")
        return Source(path, False)
    if dest.is_file():  # a complete download kept from an earlier fetch
        return Source(dest, True)
    if origin is not None:
        url = origin.rstrip("/") + "/" + urllib.parse.quote(release.file)
        try:
            return Source(download(url, dest, places.progress), True)
        except TransferStopped as e:
            raise DownloadError(f"{release.file}: {e}") from None
        except DownloadError as e:
            raise DownloadError(f"could not download {release.file} from --from {origin} ({e})") from None
    failures = []
    for url in release.addresses:
        try:
            return Source(download(url, dest, places.progress), True)
        except TransferStopped as e:
            raise DownloadError(f"{release.file}: {e}") from None
        except DownloadError as e:
            failures.append(str(e))
    raise DownloadError(f"could not download {release.file} ({'; '.join(failures)}); {_source_hint(release)}")


def follow_up(product: Product, folder: Path, places: Places) -> None:
    """The README's command after unpacking: a proposal folder's per-video store
    (``reduce_pth_size_by_videos.py <folder>/predictions.pth SPLIT TOPK``)."""
    if product.check.kind != "proposals":
        return
    from dmm.data import YouTubeVOS, frame_index
    from dmm.proposals.reduce import load_split_predictions, reduce_by_videos

    check = product.check
    predictions = folder / PREDICTIONS
    if not predictions.is_file():
        raise BadArchive(f"{product.member} in the archive holds no {PREDICTIONS}")
    out = folder / store_name(check)
    if out.exists():
        return
    print(f"{product.name}: python src/tools/reduce_pth_size_by_videos.py {product.path}/{PREDICTIONS} "
          f"{check.split} {'all' if check.topk is None else check.topk}", flush=True)
    index = frame_index(YouTubeVOS(places.data_root, check.split, split_dir=places.split_dir))
    try:
        frames = load_split_predictions(predictions)
    except DMMError as e:
        raise BadArchive(str(e)) from None
    reduce_by_videos(frames, index, out, check.topk, progress=places.progress, source=f"{product.path}/{PREDICTIONS}")


def _install(release: Release, todo: list[Product], source: Source, places: Places, lock: Lock) -> list[str]:
    """Unpack ``source`` beside the destinations, run the follow-ups, check each product there,
    then rename them into place. Returns the result lines."""
    parent = places.root / release.unpack_under
    parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".zoo-{release.name}.", suffix=".tmp", dir=parent))
    try:
        if release.is_archive:
            try:
                unpack(source.path, stage, places.progress)
            except DMMError as e:
                raise BadArchive(str(e)) from None
        elif source.downloaded:
            shutil.move(source.path, stage / release.file)
        else:
            shutil.copyfile(source.path, stage / release.file)
        checked = []
        for product in todo:
            try:
                found = find_member(stage, product.member, release.file) if product.member else stage / release.file
            except DMMError as e:
                raise BadArchive(str(e)) from None
            follow_up(product, found, places)
            target = places.root / product.path
            try:
                what = verify(product, found, places, lock, final=target)
            except DMMError as e:
                if product.check.kind == "proposals":
                    raise
                raise BadArchive(f"it does not hold what {product.name} must be: {e}") from None
            checked.append((product, found, target, what))
        for product, found, target, _ in checked:
            place(found, target)
        return [line("OK", product, what) for product, _, _, what in checked]
    except DMMError as e:  # name the files by the archive, not by the staging folder
        raise type(e)(str(e).replace(str(stage), release.file)) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _manual_message(release: Release, todo: list[Product], places: Places) -> str:
    targets = ", ".join(str(places.root / p.path) for p in todo)
    if not release.file:
        return (f"{release.name} was shared for download by hand ({release.page}): {release.note}; put it at "
                f"{targets}, then run python -m dmm.zoo check {release.name}")
    return (f"{release.name} was shared for download by hand ({release.page}): download {release.file} from there, "
            f"then run python -m dmm.zoo fetch {release.name} --from DIR (the folder holding it)")


def _already_there(product: Product, target: Path, places: Places, lock: Lock) -> str:
    try:
        return line("OK", product, verify(product, target, places, lock) + " (already there)")
    except DMMError as e:
        raise InputError(f"{product.name}: {target} is already there but fails its check ({e}); nothing was "
                         "overwritten: move it away and fetch again") from None


def _precheck(product: Product, places: Places) -> None:
    target = places.root / product.path
    blocking = _blocking_file(target, places.root)
    if blocking is not None:
        raise InputError(f"{product.name}: {blocking} is a plain file where {target} needs a folder; nothing "
                         "was fetched")
    if product.check.kind == "proposals":
        _split_reader_error(product, places)


def fetch(zoo: Zoo, names: list[str], places: Places, origin: str | None = None) -> list[str]:
    """Fetch the named products (see the module docstring); returns the result lines, each
    printed as it comes. Raises naming the first file that could not be fetched or checked."""
    selected = zoo.select(names)
    lock = Lock(places.root)
    lines: list[str] = []
    manual: list[str] = []

    def report(text: str) -> None:
        lines.append(text)
        print(text, flush=True)

    for release in zoo.releases:
        products = [p for r, p in selected if r is release]
        if not products:
            continue
        for product in products:
            _precheck(product, places)
        todo = []
        for product in products:
            target = places.root / product.path
            if target.exists() or target.is_symlink():
                report(_already_there(product, target, places, lock))
            else:
                todo.append(product)
        lock.save()
        if not todo:
            continue
        if not release.file or (release.manual and origin is None):
            manual.append(_manual_message(release, todo, places))
            continue
        source = obtain(release, origin, places)
        size = source.path.stat().st_size
        try:
            for text in _install(release, todo, source, places, lock):
                report(text)
        except BadArchive as e:
            if source.downloaded:
                source.path.unlink(missing_ok=True)
            raise BadArchive(f"{release.file} ({release.name}): {e}; nothing was placed") from None
        lock.record_archive(release.file, size)
        lock.save()
        if source.downloaded and source.path.exists() and all(
                (places.root / p.path).exists() for p in release.products):
            source.path.unlink()
    if manual:
        raise MissingInputError("; ".join(manual))
    return lines


def check(zoo: Zoo, names: list[str], places: Places, relock: bool = False) -> list[str]:
    """Check the named products (all, without names) by content and against the lock; prints a
    line per product. Raises :class:`CheckFailed` when one fails (or, named, is absent)."""
    selected = zoo.select(names) if names else zoo.products()
    lock = Lock(places.root)
    lines: list[str] = []
    failed: list[tuple[str, str]] = []
    for _, product in selected:
        target = places.root / product.path
        if not (target.exists() or target.is_symlink()):
            detail = f"not there (python -m dmm.zoo fetch {product.name})"
            text = line("MISSING" if names else "absent", product, detail)
            if names:
                failed.append((product.name, f"{target} is {detail}"))
        else:
            try:
                text = line("OK", product, verify(product, target, places, lock, relock=relock))
            except DMMError as e:
                text = line("FAILED", product, str(e))
                failed.append((product.name, str(e)))
        lines.append(text)
        print(text, flush=True)
    lock.save()
    if len(failed) == 1:
        raise CheckFailed(f"{failed[0][0]} failed its check: {failed[0][1]}")
    if failed:
        raise CheckFailed(f"{len(failed)} of {len(selected)} files failed their check (see the lines above): "
                          f"{', '.join(name for name, _ in failed)}")
    return lines
