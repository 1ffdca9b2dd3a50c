"""What a released file on disk is, by its content, and the lock of checked files' SHA-256.

:func:`check_product` loads a product as the code that uses it does: a DMM-Net checkpoint
strictly into the model of its config (``load_weights``; with the optimizer states online
training restores, ``load_optimizer_states``), the RVOS model as the ResNet-101 stage starts from
it (``load_rvos_weights``), a proposal net through ``load_propnet`` with its architecture and
class count, a proposal folder against its dataset split (its ``vidfid2index.json`` is the
split's frame index; every video's file reads, with every frame).

:class:`Lock` (``experiments/zoo.lock.json``) records the SHA-256 of each product's files after
its first successful check; a later check of a file whose digest differs reports it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from dmm.errors import DMMError, InputError
from dmm.io import write_json
from dmm.zoo.registry import Check, Product

LOCK_FILE = "experiments/zoo.lock.json"
LOCK_FORMAT = "dmm-zoo-lock"
PREDICTIONS = "predictions.pth"
INDEX_FILE = "vidfid2index.json"
_CHECKPOINT_FILES = ("trainer.pt", "encoder.pt", "decoder.pt", "enc_opt.pt", "dec_opt.pt")


@dataclass(frozen=True)
class Places:
    """Where things are: ``root`` holds ``experiments/``; the dataset (``data_root``) and its
    split files (``split_dir``) are read by proposal checks and follow-ups."""

    root: Path
    data_root: Path
    split_dir: Path
    progress: bool = True


def store_name(check: Check) -> str:
    """The per-video store folder of a proposal product: ``videos_top<K>`` or ``videos_all``."""
    from dmm.proposals.reduce import output_dir

    return output_dir(PREDICTIONS, check.topk).name


def _dmmnet(path: Path, check: Check) -> str:
    from dmm.checkpointing import load_optimizer_states, load_rvos_weights, load_weights
    from dmm.config import load_config
    from dmm.engine.build import build_optimizers
    from dmm.model import DMMNet

    if not path.is_dir():
        raise InputError(f"{path} is a plain file, not a checkpoint folder")
    cfg = load_config(check.config, ["MODEL.PRETRAINED", "none"])
    model = DMMNet.from_config(cfg)
    what = f"{cfg.MODEL.BACKBONE} DMM-Net of config {check.config}"
    if check.kind == "rvos":
        load_rvos_weights(model, path)
        return f"RVOS weights for the {what}"
    load_weights(model, path)
    if check.optimizers:
        source = load_optimizer_states(model, build_optimizers(model, cfg.SOLVER), path)
        files = " + ".join(Path(f).name for f in source.split(" + "))
        return f"{what}, optimizer states from {files}"
    return what


def _propnet(path: Path, check: Check) -> str:
    from dmm.proposals.model import load_propnet

    if not path.is_file():
        raise InputError(f"{path} is not a file")
    classes = load_propnet(path, check.arch).num_classes  # a maskrcnn-benchmark architecture: LegacyMaskRCNN
    if classes != check.classes:
        raise InputError(f"{path} is a proposal net with {classes} classes, not the {check.classes} "
                         f"of this release")
    return f"{check.arch}, {classes} classes"


def _proposals(path: Path, check: Check, places: Places) -> str:
    from dmm.data import YouTubeVOS, frame_index
    from dmm.proposals.store import read_video_proposals

    if not path.is_dir():
        raise InputError(f"{path} is not a folder")
    if not (path / PREDICTIONS).is_file():
        raise InputError(f"{path} holds no {PREDICTIONS}")
    store = path / store_name(check)
    index_file = store / INDEX_FILE
    if not index_file.is_file():
        raise InputError(f"{index_file} does not exist (the per-video store of {path / PREDICTIONS} was not "
                         "written)")
    want = frame_index(YouTubeVOS(places.data_root, check.split, split_dir=places.split_dir))
    try:
        have = json.loads(index_file.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{index_file} is not readable JSON ({e})") from None
    if have != want:
        lacking = sorted(set(want) - set(have))
        extra = sorted(set(have) - set(want))
        other = sorted(v for v in set(want) & set(have) if have[v] != want[v])
        raise InputError(f"{index_file} does not cover split {check.split} of {places.data_root}: "
                         f"{len(lacking)} videos missing {lacking[:5]}, {len(extra)} not in the split "
                         f"{extra[:5]}, {len(other)} with other frames {other[:5]}")
    for video in tqdm(sorted(want), desc=f"check {store.name}", unit="video", disable=not places.progress,
                      leave=False):
        frames = read_video_proposals(store / f"{video}.pth", video)
        missing = sorted(set(want[video]) - set(frames))
        if missing:
            raise InputError(f"{store / (video + '.pth')} lacks frames {missing[:5]} of video {video!r}")
    frames = sum(len(f) for f in want.values())
    return f"{store.name} covers split {check.split} ({len(want)} videos, {frames} frames)"


def check_product(product: Product, path: Path, places: Places) -> str:
    """Verify ``path`` (the product, here or in a staging folder) by its content.

    Returns what was verified, in a few words; raises a :class:`DMMError` naming what is wrong.
    """
    if not path.exists():
        raise InputError(f"{path} does not exist")
    kind = product.check.kind
    if kind in ("dmmnet", "rvos"):
        return _dmmnet(path, product.check)
    if kind == "propnet":
        return _propnet(path, product.check)
    return _proposals(path, product.check, places)


def locked_files(product: Product, path: Path) -> list[Path]:
    """The files whose digests the lock records: a checkpoint folder's weight files, a
    proposal-net file, a proposal folder's ``predictions.pth`` and store index."""
    kind = product.check.kind
    if kind == "propnet":
        return [path]
    if kind == "proposals":
        return [path / PREDICTIONS, path / store_name(product.check) / INDEX_FILE]
    return [path / name for name in _CHECKPOINT_FILES if (path / name).is_file()]


def sha256(path: Path, progress: bool = False) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True, leave=False,
                                      desc=f"sha256 {path.name}", disable=not progress) as bar:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


class Lock:
    """``experiments/zoo.lock.json``: ``{"format", "version", "files": {path: {"sha256", "size",
    "name", "checked"}}, "archives": {file: {"size"}}}`` with paths relative to the root (the
    sizes of the released files fetched here, for ``list``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / LOCK_FILE
        self.files: dict[str, dict[str, Any]] = {}
        self.archives: dict[str, dict[str, Any]] = {}
        self.changed = False
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
                if data.get("format") == LOCK_FORMAT:
                    self.files = dict(data["files"])
                    self.archives = dict(data.get("archives", {}))
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                raise InputError(f"{self.path} is not a dmm.zoo lock file; move it away and run "
                                 "python -m dmm.zoo check again") from None

    def key(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path.resolve())

    def recorded(self, product: Product, path: Path) -> bool:
        """Whether every locked file of the product is recorded with its current size."""
        files = locked_files(product, path)
        return bool(files) and all(
            f.is_file() and self.files.get(self.key(f), {}).get("size") == f.stat().st_size for f in files)

    def compare(self, files: list[Path], digests: dict[Path, str]) -> None:
        """Raise naming the first file whose digest differs from the recorded one."""
        for f in files:
            entry = self.files.get(self.key(f))
            if entry and entry.get("sha256") != digests[f]:
                raise InputError(
                    f"{f} changed since {self.path} recorded it on {entry.get('checked', '?')} (sha256 "
                    f"{digests[f][:12]}..., recorded {str(entry.get('sha256'))[:12]}...): it was modified or is "
                    "another copy; if this copy is the one you want, record it with python -m dmm.zoo check "
                    "--relock NAME")

    def record(self, name: str, digests: dict[Path, str], paths: dict[Path, Path] | None = None) -> None:
        """Record ``digests``; ``paths`` maps a file to where it will be (a staging copy's target)."""
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        for f, digest in digests.items():
            final = (paths or {}).get(f, f)
            entry = self.files.get(self.key(final), {})
            if entry.get("sha256") != digest or entry.get("name") != name:
                self.files[self.key(final)] = {"sha256": digest, "size": f.stat().st_size, "name": name,
                                               "checked": now}
                self.changed = True

    def record_archive(self, file: str, size: int) -> None:
        if self.archives.get(file, {}).get("size") != size:
            self.archives[file] = {"size": size}
            self.changed = True

    def save(self) -> None:
        """Write the lock file when something was recorded."""
        if not self.changed:
            return
        self.changed = False
        write_json(self.path, {"format": LOCK_FORMAT, "version": 1, "files": dict(sorted(self.files.items())),
                               "archives": dict(sorted(self.archives.items()))})


def verify(product: Product, path: Path, places: Places, lock: Lock, relock: bool = False,
           final: Path | None = None) -> str:
    """Check ``path`` by content and against the lock; record its digests when it passes.

    ``final``: where a staged ``path`` will be placed (the lock records that path). The lock is
    updated in memory; the caller saves it.
    """
    files = locked_files(product, path)
    digests = {f: sha256(f, places.progress) for f in files if f.is_file()}
    target = final or path
    mapped = {f: target / f.relative_to(path) if f != path else target for f in digests}
    if not relock:
        lock.compare([mapped[f] for f in digests], {mapped[f]: d for f, d in digests.items()})
    what = check_product(product, path, places)
    lock.record(product.name, digests, mapped)
    return what


class CheckFailed(DMMError):
    """One or more products failed their check (each named on its own line before)."""
