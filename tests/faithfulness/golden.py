"""The golden fixtures of the 2019 code (``shared/reference/golden``, see its README) and the
deterministic weights they use."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import torch

from dmm.config import load_config
from dmm.model.checkpoint import load_weights
from dmm.model.dmmnet import DMMNet

from ..shared_reference import reference_path

GOLDEN_DIR = reference_path("golden")  # None: not on this machine, the tests here skip
INPUT_SIZE = (127, 224)


@lru_cache(maxsize=None)
def load(name: str) -> dict:
    """``eval``, ``train`` or ``resize``: the fixture's contents (cached; do not modify them)."""
    return torch.load(GOLDEN_DIR / f"{name}.pt", weights_only=True)


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
    """The fixtures' settings: ResNet-50, 127x224 input, the 2019 defaults otherwise."""
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
