import importlib.util
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dmm.errors import InputError
from dmm.proposals.legacy import load_legacy_predictions
from dmm.proposals.reduce import load_split_predictions

WRITER = Path(__file__).with_name("legacy_writer.py")


def write_legacy(path: Path, n: int, kind: str, seed: int = 0) -> None:
    subprocess.run([sys.executable, str(WRITER), str(path), str(n), str(seed), kind], check=True)


@pytest.mark.parametrize("kind", ["legacy", "zip"])
def test_reads_boxlists_without_maskrcnn_benchmark(tmp_path, kind):
    assert importlib.util.find_spec("maskrcnn_benchmark") is None
    path = tmp_path / "predictions.pth"
    write_legacy(path, 5, kind)
    with pytest.raises(pickle.UnpicklingError):  # really needs the unpickler
        torch.load(path, weights_only=True)
    frames = load_legacy_predictions(path)
    assert [len(f) for f in frames] == [0, 3, 6, 9, 0]
    f = frames[3]
    assert f.image_size == (64, 96) and f.mask_mode == "roi" and f.masks.shape == (9, 28, 28)
    assert f.boxes.shape == (9, 4) and f.scores.dtype == torch.float32


@pytest.mark.parametrize("kind", ["evil"])
def test_refuses_code_execution(tmp_path, kind):
    path = tmp_path / "predictions.pth"
    write_legacy(path, 1, kind)
    with pytest.raises(pickle.UnpicklingError, match=r"posix\.system|os\.system"):
        load_legacy_predictions(path)
    assert not Path(f"{path}.pwned").exists()


def test_missing_file_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_legacy_predictions(tmp_path / "nothing.pth")


@pytest.mark.parametrize("kind", ["legacy", "zip"])
def test_truncated_file_is_named(tmp_path, kind):
    path = tmp_path / "predictions.pth"
    write_legacy(path, 5, kind)
    data = path.read_bytes()
    for n in (len(data) // 3, len(data) - 10):
        path.write_bytes(data[:n])
        with pytest.raises(InputError, match=r"predictions\.pth is truncated or not a torch file"):
            load_legacy_predictions(path)
        with pytest.raises(InputError, match=r"predictions\.pth is truncated or not a torch file"):
            load_split_predictions(path)
