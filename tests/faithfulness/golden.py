"""The golden fixtures of the 2019 code (``tests/faithfulness/golden/``, see its README.md) and
the deterministic weights they use.

The fixtures live in the repository. ``golden/MANIFEST.json`` records each file's size and
SHA-256; :func:`load` checks a file against it before reading it, so a damaged or replaced
fixture fails loudly instead of silently moving the numbers. ``python -m
tests.faithfulness.golden --write-manifest`` (from the repository root) rewrites the manifest
after a fixture is added or regenerated.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from functools import lru_cache
from pathlib import Path

import torch

from dmm.config import load_config
from dmm.checkpointing import load_weights
from dmm.model.dmmnet import DMMNet

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
MANIFEST = GOLDEN_DIR / "MANIFEST.json"
INPUT_SIZE = (127, 224)


class FixtureError(RuntimeError):
    """A fixture file that is missing or does not match its manifest entry."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=None)
def fixture_path(name: str) -> Path:
    """``golden/<name>.pt``, checked against the manifest (size and SHA-256)."""
    path = GOLDEN_DIR / f"{name}.pt"
    entries = json.loads(MANIFEST.read_text())["files"]
    entry = entries.get(path.name)
    if entry is None:
        raise FixtureError(f"{path.name} is not listed in {MANIFEST} (listed: {sorted(entries)})")
    if not path.is_file():
        raise FixtureError(f"golden fixture {path} is missing (git checkout should have it)")
    if path.stat().st_size != entry["bytes"] or sha256(path) != entry["sha256"]:
        raise FixtureError(f"golden fixture {path} does not match {MANIFEST}: size {path.stat().st_size} "
                           f"(manifest {entry['bytes']}); a damaged checkout or an unrecorded regeneration")
    return path


@lru_cache(maxsize=None)
def load(name: str) -> dict:
    """``eval``, ``train``, ``resize``, ``propnet`` or ``metric2019``: the fixture's contents
    (checked against the manifest; cached, do not modify them)."""
    return torch.load(fixture_path(name), weights_only=True)


def write_manifest() -> None:
    """Rewrite ``golden/MANIFEST.json`` from the ``*.pt`` files present, keeping each entry's
    recorded origin."""
    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {}
    old = manifest.get("files", {})
    files = {}
    for path in sorted(GOLDEN_DIR.glob("*.pt")):
        entry = dict(old.get(path.name, {}))
        entry.update(bytes=path.stat().st_size, sha256=sha256(path))
        files[path.name] = entry
    manifest["files"] = files
    MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")


def golden_state_dict(reference: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The fixtures' weight rule (golden README, "The weight rule") over ``reference``'s keys and shapes."""
    prime = 2**31 - 1
    out = {}
    for i, key in enumerate(sorted(reference)):
        shape = tuple(reference[key].shape)
        n = math.prod(shape)
        if key.endswith(".num_batches_tracked"):
            out[key] = torch.zeros(shape, dtype=torch.int64)
            continue
        k = torch.arange(n, dtype=torch.int64)
        a = (1103515245 + 2654435761 * i) % prime
        b = (12345 + 1013904223 * (i + 1)) % prime
        x = 2.0 * ((((k * k) % prime) * a + k * b + i) % prime).double().add(0.5) / prime - 1.0
        if key.endswith(".running_var"):
            v = 1.0 + 0.5 * x
        elif key.endswith(".running_mean"):
            v = 0.1 * x
        elif len(shape) == 1:
            v = 1.0 + 0.2 * x if key.endswith(".weight") else 0.1 * x
        else:
            gain = 12.0 if key == "decoder.conv_out.weight" else 1.0
            v = (x * (math.sqrt(3.0) * gain / math.sqrt(n // shape[0]))).reshape(shape)
            if key.startswith("decoder.clstm_list.") and key.endswith(".Gates.weight"):
                v[:, shape[1] - 2 * (shape[0] // 4) - 1] *= 30.0
        out[key] = v.reshape(shape).float()
    return out


def golden_config(*opts: str):
    """The fixtures' settings: ResNet-50, 127x224 input, the 2019 defaults otherwise.

    The proposals' order after NMS is the default (``PROPOSALS.KEEP_ORDER stored``): the fixtures
    were made with an NMS stand-in that returns the survivors in ascending index order, as both
    of maskrcnn-benchmark's kernels do (``keep`` lists are ascending).
    """
    return load_config(None, ["MODEL.BACKBONE", "resnet50", "MODEL.PRETRAINED", "none",
                              "DATA.INPUT_H", str(INPUT_SIZE[0]), "DATA.INPUT_W", str(INPUT_SIZE[1]), *opts])


def golden_model(directory: Path, *opts: str) -> DMMNet:
    """A DMMNet with the rule's weights, written as a released ``trainer.pt`` and read back
    through the public checkpoint loader. Eval mode."""
    model = DMMNet.from_config(golden_config(*opts))
    file = Path(directory) / "trainer.pt"
    if not file.exists():
        torch.save(golden_state_dict(model.state_dict()), file)
    load_weights(model, file)
    return model.eval()


class StopSteps:
    """Record, or pin, the outer steps of every relaxed-matching problem solved while active.

    The 2019 layer stops when two consecutive float32 norms are equal, so a cost that differs in
    its last bit (another CPU's rounding) can stop at another step. With ``pinned`` (the
    fixture's steps, in solving order) each problem runs exactly its pinned number of steps (the
    equal-norm exit off, ``max_iter`` set to it).
    """

    def __init__(self, pinned: list[int] | None = None):
        import dmm.model.matching as matching

        self.matching = matching
        self.original = matching.relax_problem
        while isinstance(self.original, StopSteps):  # installed over another recorder
            self.original = self.original.original
        self.pinned = None if pinned is None else list(pinned)
        self.steps: list[int] = []

    def __call__(self, cost, max_iter, proj_iter, lr):
        if self.pinned is not None:
            want = self.pinned[len(self.steps)]
            out = self.original(cost, want, proj_iter, lr, stop_on_equal_norms=False)
        else:
            out = self.original(cost, max_iter, proj_iter, lr)
        self.steps.append(out[1])
        return out

    def install(self, monkeypatch) -> "StopSteps":
        monkeypatch.setattr(self.matching, "relax_problem", self)
        return self


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="golden fixture manifest")
    parser.add_argument("--write-manifest", action="store_true", help="rewrite golden/MANIFEST.json")
    if parser.parse_args().write_manifest:
        write_manifest()
        print(f"wrote {MANIFEST}")
