import pytest

from dmm.data.synthetic import SyntheticConfig, generate


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A tiny synthetic YouTube-VOS-layout dataset (train: 3 videos, valid: 2, 4 frames, 64x96)."""
    root = tmp_path_factory.mktemp("synthetic") / "data"
    generate(root, SyntheticConfig(num_train=3, num_valid=2, num_frames=4, height=64, width=96,
                                   seed=1, max_targets=3), progress=False)
    return root


@pytest.fixture(autouse=True)
def one_thread():
    """Small CPU workloads on a shared machine: extra intra-op threads only add contention."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
