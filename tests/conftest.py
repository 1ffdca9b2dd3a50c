"""Shared fixtures."""

from __future__ import annotations

import json
import urllib.error

import pytest
import torch

from dmm.data.synthetic import SyntheticConfig, generate

#: The tiny synthetic set every test may reuse: 6 train + 4 valid videos of 8 frames, 72x128.
TINY_SYNTHETIC = SyntheticConfig(num_train=6, num_valid=4, num_frames=8, height=72, width=128,
                                 seed=0)


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Tests never download: torchvision's weights API fails as it does offline (tests that
    simulate a download patch it again)."""

    def fail(url, dst, *args, **kwargs):
        raise urllib.error.URLError(f"tests do not download ({url})")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """Root of a tiny synthetic YouTube-VOS-layout dataset (generated once per session).

    Read-only: tests that modify files must copy it first.
    """
    return generate(tmp_path_factory.mktemp("synthetic") / "root", TINY_SYNTHETIC, progress=False)


@pytest.fixture(scope="session")
def synthetic_record(synthetic_root):
    """The generator's record of what it drew (``synthetic_record.json``)."""
    return json.loads((synthetic_root / "synthetic_record.json").read_text())
