import pytest
import torch

from .golden import golden_model


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    """The fixtures were made with one thread; other counts move float32 results in the last bits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="package")
def golden_weights_dir(tmp_path_factory):
    """A folder holding the rule's weights as a released ``trainer.pt``."""
    return tmp_path_factory.mktemp("golden_weights")


@pytest.fixture(scope="package")
def model(golden_weights_dir):
    """The 2019 model with the fixtures' weights, loaded through the public checkpoint loader (eval mode)."""
    return golden_model(golden_weights_dir)
