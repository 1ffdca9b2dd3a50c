import pytest
import torch

from dmm.model import DMMNet
from .model_helpers import small_cfg


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return DMMNet.from_config(small_cfg())
