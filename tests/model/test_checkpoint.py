import json
from pathlib import Path

import pytest
import torch

from dmm.engine.build import build_optimizers
from dmm.errors import InputError, MissingInputError
from dmm.model import DMMNet
from dmm.checkpointing import (legacy_optimizer_layout, load_checkpoint, load_optimizer_states, load_rvos_weights,
                               load_weights, save_checkpoint)

from .model_helpers import small_cfg

#: the authors' released checkpoint keys and shapes per backbone (DESIGN "Checkpoints")
AUTHORS_KEYS = json.loads((Path(__file__).with_name("original_checkpoint_keys.json")).read_text())


def random_state(keys: dict[str, list[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.randint(0, 100, (), generator=g) if k.endswith("num_batches_tracked")
                else torch.rand(shape, generator=g)) for k, shape in keys.items()}


@pytest.fixture(scope="module", params=["resnet34", "resnet50", "resnet101"])
def authors_case(request):
    return request.param, DMMNet.from_config(small_cfg(request.param)), AUTHORS_KEYS[request.param]


def test_model_keys_and_shapes_are_the_authors(authors_case):
    _, model, keys = authors_case
    own = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert own == keys


WRAPS = {"resnet34": None, "resnet50": "model", "resnet101": "state_dict"}


def test_load_authors_trainer_pt(authors_case, tmp_path):
    name, model, keys = authors_case
    state = random_state(keys)
    wrap = WRAPS[name]  # bare, or under a top-level key, one form per backbone
    torch.save(state if wrap is None else {wrap: state, "epoch": 13}, tmp_path / "trainer.pt")
    load_weights(model, tmp_path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_load_authors_encoder_decoder_pair(authors_case, tmp_path):
    _, model, keys = authors_case
    state = random_state(keys, seed=1)
    torch.save({k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}, tmp_path / "encoder.pt")
    torch.save({k[len("decoder."):]: v for k, v in state.items() if k.startswith("decoder.")}, tmp_path / "decoder.pt")
    load_weights(model, tmp_path)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


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


def write_rvos_model(model: DMMNet, folder, prefix: str = "") -> dict[str, torch.Tensor]:
    """``folder/encoder.pt`` + ``decoder.pt`` in the RVOS one-shot model's layout (no prop necks;
    an extra RVOS-only key), from ``model``'s weights scrambled; returns the written tensors by
    this project's names."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(5)
    state = {k: (v if k.endswith("num_batches_tracked") else torch.rand(v.shape, generator=g))
             for k, v in model.state_dict().items() if ".prop" not in k}
    encoder = {prefix + k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    decoder = {prefix + k[len("decoder."):]: v for k, v in state.items() if k.startswith("decoder.")}
    decoder[prefix + "fc_rvos_only.weight"] = torch.zeros(2, 2)
    torch.save(encoder, folder / "encoder.pt")
    torch.save(decoder, folder / "decoder.pt")
    (folder / "args.pkl").write_bytes(b"not read")
    return state


@pytest.mark.parametrize("prefix", ["", "module."])
def test_rvos_model_starts_the_resnet101_stage(tmp_path, prefix):
    torch.manual_seed(0)
    model = DMMNet.from_config(small_cfg())
    written = write_rvos_model(DMMNet.from_config(small_cfg()), tmp_path / "rvos", prefix)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    kept = load_rvos_weights(model, tmp_path / "rvos")
    assert kept and all(".prop" in k for k in kept)
    for key, value in model.state_dict().items():
        want = before[key] if key in kept else written[key]
        assert torch.equal(value, want), key


def test_rvos_model_of_another_shape_is_named(tmp_path):
    model = DMMNet.from_config(small_cfg())
    write_rvos_model(DMMNet.from_config(small_cfg()), tmp_path / "rvos")
    encoder = torch.load(tmp_path / "rvos" / "encoder.pt")
    encoder["sk5.weight"] = torch.zeros(128, 2048, 3, 3)  # a ResNet-101's C5 channels
    torch.save(encoder, tmp_path / "rvos" / "encoder.pt")
    with pytest.raises(InputError, match=r"encoder\.pt: key sk5\.weight has shape \(128, 2048, 3, 3\) but the "
                                         r"model's encoder\.sk5\.weight is \(128, 512, 3, 3\)"):
        load_rvos_weights(model, tmp_path / "rvos")
    (tmp_path / "rvos" / "decoder.pt").unlink()
    with pytest.raises(MissingInputError, match=r"decoder\.pt not found"):
        load_rvos_weights(model, tmp_path / "rvos")


def legacy_optimizers(model: DMMNet) -> dict[str, torch.optim.Adam]:
    """Adam optimizers laid out as the 2019 train.py built them, each after one step on random
    gradients, with the learning rates of 2019's ResNet-101 stage."""
    layout = legacy_optimizer_layout(model)
    params = dict(model.named_parameters())
    g = torch.Generator().manual_seed(3)
    for p in params.values():
        p.grad = torch.rand(p.shape, generator=g)
    opts = {
        "encoder": torch.optim.Adam([{"params": [params[n] for n in layout["encoder"][0]], "lr": 1e-4},
                                     {"params": [params[n] for n in layout["encoder"][1]], "lr": 1e-5}],
                                    weight_decay=1e-6),
        "decoder": torch.optim.Adam([params[n] for n in layout["decoder"][0]], lr=1e-3, weight_decay=1e-6),
    }
    for opt in opts.values():
        opt.step()
    for p in params.values():
        p.grad = None
    return opts


def test_2019_optimizer_files_are_restored_by_parameter_name(tmp_path):
    torch.manual_seed(0)
    model = DMMNet.from_config(small_cfg())
    old = legacy_optimizers(model)
    for name, file in (("encoder", "enc_opt.pt"), ("decoder", "dec_opt.pt")):
        state = old[name].state_dict()
        for entry in state["state"].values():
            entry["step"] = int(entry["step"])  # torch 1.1 kept the step as a plain int
        torch.save(state, tmp_path / file)
    torch.save(model.state_dict(), tmp_path / "trainer.pt")  # 2019: weights only in trainer.pt
    cfg = small_cfg()
    ours = build_optimizers(model, cfg.SOLVER)
    source = load_optimizer_states(model, ours, tmp_path)
    assert source.endswith("enc_opt.pt + " + str(tmp_path / "dec_opt.pt"))
    assert [g["lr"] for g in ours["encoder"].param_groups] == [1e-4, 1e-5]  # the file's, not the config's
    assert [g["name"] for g in ours["encoder"].param_groups] == ["necks", "backbone"]
    assert ours["decoder"].param_groups[0]["lr"] == 1e-3
    for opt_name in ("encoder", "decoder"):
        for p in (p for g in ours[opt_name].param_groups for p in g["params"]):
            torch.testing.assert_close(ours[opt_name].state[p]["exp_avg"], old[opt_name].state[p]["exp_avg"])
            assert float(ours[opt_name].state[p]["step"]) == 1.0
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    for opt in ours.values():
        opt.step()  # the restored state is usable


def test_a_checkpoint_without_optimizer_state_is_named(tmp_path):
    model = DMMNet.from_config(small_cfg())
    torch.save(model.state_dict(), tmp_path / "trainer.pt")
    with pytest.raises(InputError, match=r"holds no optimizer state .*enc_opt\.pt \+ dec_opt\.pt.*"
                                         r"SOLVER\.INIT_OPTIMIZERS False"):
        load_optimizer_states(model, build_optimizers(model, small_cfg().SOLVER), tmp_path)
    torch.save(torch.load(tmp_path / "trainer.pt"), tmp_path / "enc_opt.pt")  # not an optimizer state
    torch.save({"state": {}, "param_groups": [{"params": [0], "lr": 1.0}]}, tmp_path / "dec_opt.pt")
    with pytest.raises(InputError, match=r"enc_opt\.pt: expected an optimizer state with 2 parameter groups"):
        load_optimizer_states(model, build_optimizers(model, small_cfg().SOLVER), tmp_path)
