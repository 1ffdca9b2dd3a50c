import json

import pytest
import torch

from dmm.errors import InputError
from dmm.model import DMMNet
from dmm.model.checkpoint import load_checkpoint, load_weights, save_checkpoint

from ..shared_reference import missing_reason, reference_path
from .model_helpers import small_cfg

KEYS_FILE = reference_path("original_checkpoint_keys.json")
AUTHORS_KEYS = json.loads(KEYS_FILE.read_text()) if KEYS_FILE is not None else None
needs_keys = pytest.mark.skipif(AUTHORS_KEYS is None, reason=missing_reason("original_checkpoint_keys.json"))


def random_state(keys: dict[str, list[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.randint(0, 100, (), generator=g) if k.endswith("num_batches_tracked")
                else torch.rand(shape, generator=g)) for k, shape in keys.items()}


@pytest.fixture(scope="module", params=["resnet34", "resnet50", "resnet101"])
def authors_case(request):
    if AUTHORS_KEYS is None:
        pytest.skip(missing_reason("original_checkpoint_keys.json"))
    return request.param, DMMNet.from_config(small_cfg(request.param)), AUTHORS_KEYS[request.param]


@needs_keys
def test_model_keys_and_shapes_are_the_authors(authors_case):
    _, model, keys = authors_case
    own = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert own == keys


WRAPS = {"resnet34": None, "resnet50": "model", "resnet101": "state_dict"}


@needs_keys
def test_load_authors_trainer_pt(authors_case, tmp_path):
    name, model, keys = authors_case
    state = random_state(keys)
    wrap = WRAPS[name]  # bare, or under a top-level key, one form per backbone
    torch.save(state if wrap is None else {wrap: state, "epoch": 13}, tmp_path / "trainer.pt")
    load_weights(model, tmp_path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


@needs_keys
def test_load_authors_encoder_decoder_pair(authors_case, tmp_path):
    _, model, keys = authors_case
    state = random_state(keys, seed=1)
    torch.save({k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}, tmp_path / "encoder.pt")
    torch.save({k[len("decoder."):]: v for k, v in state.items() if k.startswith("decoder.")}, tmp_path / "decoder.pt")
    load_weights(model, tmp_path)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


@needs_keys
def test_wrong_backbone_names_key_and_shapes(tmp_path):
    model = DMMNet.from_config(small_cfg("resnet34"))
    torch.save(random_state(AUTHORS_KEYS["resnet50"]), tmp_path / "trainer.pt")
    with pytest.raises(InputError) as err:
        load_weights(model, tmp_path / "trainer.pt")
    assert "unexpected keys" in str(err.value) and "encoder.base.layer1.0.conv3.weight" in str(err.value)


def test_wrong_shape_and_missing_keys_are_named(small_model, tmp_path):
    state = {k: v.clone() for k, v in small_model.state_dict().items()}
    state["decoder.conv_out.weight"] = torch.zeros(1, 16, 5, 5)
    torch.save(state, tmp_path / "trainer.pt")
    with pytest.raises(InputError, match=r"decoder\.conv_out\.weight.*\(1, 16, 5, 5\).*\(1, 16, 3, 3\)"):
        load_weights(small_model, tmp_path / "trainer.pt")
    del state["decoder.conv_out.weight"]
    state["decoder.extra"] = torch.zeros(1)
    torch.save(state, tmp_path / "trainer.pt")
    with pytest.raises(InputError, match=r"decoder\.conv_out\.weight.*decoder\.extra"):
        load_weights(small_model, tmp_path / "trainer.pt")


def test_save_and_load_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = DMMNet.from_config(small_cfg())
    opts = {"encoder": torch.optim.Adam(model.encoder.parameters(), lr=1e-3),
            "decoder": torch.optim.Adam(model.decoder.parameters(), lr=1e-3)}
    model.decoder.conv_out.weight.grad = torch.ones_like(model.decoder.conv_out.weight)
    opts["decoder"].step()
    save_checkpoint(tmp_path / "ckpt", model, opts, small_cfg(), epoch=3, iteration=120)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.yaml", "trainer.pt"]
    expected_next = torch.rand(3)

    torch.manual_seed(1)
    other = DMMNet.from_config(small_cfg())
    other_opts = {"encoder": torch.optim.Adam(other.encoder.parameters(), lr=1e-3),
                  "decoder": torch.optim.Adam(other.decoder.parameters(), lr=1e-3)}
    info = load_checkpoint(tmp_path / "ckpt", other, other_opts, restore_rng=True)
    assert info["epoch"] == 3 and info["iteration"] == 120 and "resnet18" in info["config"]
    assert torch.equal(torch.rand(3), expected_next)
    for k, v in model.state_dict().items():
        assert torch.equal(v, other.state_dict()[k]), k
    assert opts["decoder"].state_dict()["state"][len(list(model.decoder.parameters())) - 2]["step"] == \
        other_opts["decoder"].state_dict()["state"][len(list(other.decoder.parameters())) - 2]["step"]
    load_weights(other, tmp_path / "ckpt")  # the project's own trainer.pt loads as weights too
