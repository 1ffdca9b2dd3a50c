import pytest
import yaml

from dmm.config import (CHOICES, MATCHING_IMPLEMENTATIONS, config_value, flatten_config, get_cfg_defaults, load_config,
                        save_config, set_config_value, validate_config)
from dmm.errors import ConfigError, MissingInputError


def test_defaults_hold_design_numbers():
    cfg = load_config()
    assert (cfg.DATA.INPUT_H, cfg.DATA.INPUT_W) == (255, 448)
    assert cfg.DATA.LENGTH_CLIP == 3 and cfg.SOLVER.BATCH_SIZE == 4 and cfg.DATA.MAX_OBJECTS == 5
    assert cfg.MODEL.IOU_WEIGHT == pytest.approx(0.3)
    assert (cfg.MATCHING.TRAIN_MAX_ITER, cfg.MATCHING.TRAIN_PROJ_ITER) == (10, 5)
    assert (cfg.MATCHING.TEST_MAX_ITER, cfg.MATCHING.TEST_PROJ_ITER) == (40, 5)
    assert cfg.PROPOSALS.NMS_IOU == pytest.approx(0.4) and cfg.PROPOSALS.TOPK == 50


@pytest.mark.parametrize("name", ["train", "eval", "online", "eval_testdev", "synthetic"])
def test_package_yaml_files_load(name):
    cfg = load_config(name)
    assert cfg.OUTPUT_DIR


def test_overrides_and_saved_config_round_trip(tmp_path):
    cfg = load_config("online", ["SOLVER.EPOCHS", "7", "MODEL.BACKBONE", "resnet18"])
    assert cfg.SOLVER.EPOCHS == 7 and cfg.MODEL.BACKBONE == "resnet18"
    assert cfg.LOSS.MATCHED_IOU_WEIGHT == 18.0
    out = tmp_path / "run" / "config.yaml"
    save_config(cfg, out)
    again = load_config(out)
    assert again == cfg
    assert yaml.safe_load(out.read_text())["SOLVER"]["EPOCHS"] == 7
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_bad_overrides_are_errors():
    with pytest.raises(ConfigError, match=r"command-line override.*SOLVER\.NOT_A_KEY"):
        load_config(None, ["SOLVER.NOT_A_KEY", "1"])
    with pytest.raises(ConfigError, match=r"KEY VALUE.*SOLVER\.EPOCHS"):
        load_config(None, ["SOLVER.EPOCHS"])
    with pytest.raises(ConfigError, match=r"command-line override.*SOLVER\.EPOCHS"):
        load_config(None, ["SOLVER.EPOCHS", "many"])
    with pytest.raises(MissingInputError, match="no_such_config"):
        load_config("no_such_config")


@pytest.mark.parametrize("key, value, message", [
    ("SOLVER.EPOCHS", "many", "SOLVER.EPOCHS takes an integer, got many (a string)"),
    ("SOLVER.EPOCHS", "1.5", "SOLVER.EPOCHS takes an integer, got 1.5 (a number)"),
    ("DATA.MEAN", "3", "DATA.MEAN takes a list, got 3 (an integer)"),
    ("DEVICE", "3", "DEVICE takes a string, got 3 (an integer)"),
])
def test_a_value_of_the_wrong_type_names_key_type_and_value(key, value, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [key, value])
    assert str(err.value) == f"command-line override: {message}"
    assert "<class" not in str(err.value)


@pytest.mark.parametrize("text, needle", [
    ("SOLVER:\n  NOPE: 1\n", r"SOLVER\.NOPE"),
    ("SOLVER:\n  EPOCHS: abc\n", r"SOLVER\.EPOCHS"),
    ("SOLVER: [1,\n", "not valid yaml"),
    ("- 1\n- 2\n", "not a mapping of config keys"),
])
def test_bad_config_files_name_the_file_and_key(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=needle) as err:
        load_config(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("key, value", [
    ("SOLVER.BATCH_SIZE", "0"), ("DATA.INPUT_H", "16"), ("DATA.INPUT_W", "8"),
    ("DATA.LENGTH_CLIP", "0"), ("DATA.MAX_OBJECTS", "0"), ("SOLVER.NECK_LR", "-0.1"),
    ("SOLVER.BACKBONE_LR", "-1e-4"), ("SOLVER.DECODER_LR", "-1.0"), ("MATCHING.LR", "-0.1"),
    ("PROPOSALS.TOPK", "0"), ("MATCHING.TRAIN_MAX_ITER", "-1"), ("MATCHING.TEST_PROJ_ITER", "-2"),
    ("DATA.HFLIP_PROB", "1.5"), ("PROPOSALS.NMS_IOU", "2.0"), ("TEST.BATCH_VIDEOS", "0"),
    ("DATA.NUM_WORKERS", "-1"), ("DATA.STD", "[0.2, 0.0, 0.2]"), ("DATA.MEAN", "[0.5]"),
    ("DATA.SCALE", "[1.4, 0.7]"), ("SOLVER.WEIGHT_DECAY", "-1e-6"), ("SOLVER.CHECKPOINT_PERIOD", "0"),
])
def test_impossible_values_name_the_key(key, value):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [key, value])


def test_validate_config_accepts_every_package_config():
    validate_config(get_cfg_defaults())
    for name in ("train", "eval", "online", "eval_testdev", "synthetic"):
        validate_config(load_config(name))


@pytest.mark.parametrize("key, allowed", sorted(CHOICES.items()))
def test_an_unknown_choice_is_named_with_its_allowed_values(key, allowed):
    with pytest.raises(ConfigError) as err:
        load_config(None, [key, "no_such_choice"])
    assert str(err.value) == (f"config key {key} = 'no_such_choice' is not a choice: it must be one of "
                              f"{', '.join(allowed)}")
    for value in allowed:  # every allowed value is accepted (with a matching implementation that runs it)
        pair = ["MATCHING.IMPLEMENTATION", MATCHING_IMPLEMENTATIONS[value][0]] if key == "MATCHING.METHOD" else []
        assert config_value(load_config(None, [key, value, *pair]), key) == value


def test_a_choice_from_a_config_file_is_checked_too(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("MODEL:\n  ROI_POOL: fastest\n")
    with pytest.raises(ConfigError, match=r"MODEL\.ROI_POOL = 'fastest' is not a choice: it must be one of "
                                          r"auto, separable, torchvision$"):
        load_config(path)


def test_choice_table_covers_every_string_key_with_a_fixed_set_of_values():
    """A string key is either a choice (CHOICES) or free text: paths, split names, the device."""
    free = {"OUTPUT_DIR", "DEVICE", "DATA.ROOT", "DATA.SPLIT_DIR", "DATA.TRAIN_SPLIT", "DATA.EVAL_SPLIT", "DATA.LMDB",
            "PROPOSALS.TRAIN_DIR", "PROPOSALS.EVAL_DIR", "MODEL.PRETRAINED", "MODEL.WEIGHTS_DIR", "TEST.CHECKPOINT",
            "TEST.OUTPUT_DIR"}
    strings = {k for k, v in flatten_config(get_cfg_defaults()).items() if isinstance(v, str)}
    assert strings - free == set(CHOICES)
    assert all(config_value(get_cfg_defaults(), key) in allowed for key, allowed in CHOICES.items())


@pytest.mark.parametrize("value", ["cpu", "cuda", "cuda:1", "auto"])
def test_device_values(value):
    assert load_config(None, ["DEVICE", value]).DEVICE == value


def test_an_unknown_device_is_named_with_the_allowed_forms():
    with pytest.raises(ConfigError, match=r"DEVICE = 'gpu0' is impossible: it must be auto, cpu, cuda or cuda:<index>"):
        load_config(None, ["DEVICE", "gpu0"])


@pytest.mark.parametrize("key, value, shown", [
    ("SOLVER.BACKBONE_LR", "1e39", "1e+39"), ("SOLVER.NECK_LR", "1e999", "inf"), ("MATCHING.LR", "-1e999", "-inf"),
    ("LOSS.MATCH_WEIGHT", "3.5e38", "3.5e+38"), ("DATA.MEAN", "[0.5, 1e40, 0.5]", "[0.5, 1e+40, 0.5]"),
])
def test_floats_beyond_float32_name_the_key_and_value(key, value, shown):
    with pytest.raises(ConfigError) as err:
        load_config(None, [key, value])
    assert str(err.value) == (f"config key {key} = {shown} is impossible: it must be finite and within float32's "
                              f"range (|x| <= 3.4028234663852886e+38)")


def test_nan_and_inf_in_a_config_file_name_the_key(tmp_path):
    path = tmp_path / "run.yaml"
    for text, key in (("SOLVER:\n  WEIGHT_DECAY: .nan\n", "SOLVER.WEIGHT_DECAY"), ("LOSS:\n  MATCHED_IOU_WEIGHT: -.inf\n",
                                                                                   "LOSS.MATCHED_IOU_WEIGHT")):
        path.write_text(text)
        with pytest.raises(ConfigError, match=rf"{key.replace('.', '[.]')} = .* must be finite"):
            load_config(path)
    assert load_config(None, ["SOLVER.BACKBONE_LR", "3.4028234663852886e38"]).SOLVER.BACKBONE_LR == 3.4028234663852886e38


def test_a_config_saved_with_solver_amp_still_loads(tmp_path):
    """MODEL.AMP is the one autocast switch; run configs saved with SOLVER.AMP (resumed runs read
    them) load: False is dropped, True turns MODEL.AMP on."""
    saved = get_cfg_defaults()
    text = yaml.safe_load(saved.dump())
    assert "AMP" not in text["SOLVER"]
    path = tmp_path / "config.yaml"
    for old, model_amp, expected in ((False, False, False), (True, False, True), (False, True, True)):
        text["SOLVER"]["AMP"] = old
        text["MODEL"]["AMP"] = model_amp
        path.write_text(yaml.safe_dump(text))
        assert load_config(path).MODEL.AMP is expected
    assert load_config(None, ["SOLVER.AMP", "True"]).MODEL.AMP is True
    assert load_config(None, ["SOLVER.AMP", "False"]) == load_config()
    with pytest.raises(ConfigError, match="SOLVER.AMP = 'maybe' must be True or False"):
        load_config(None, ["SOLVER.AMP", "maybe"])


def test_dotted_keys_read_and_set():
    cfg = get_cfg_defaults()
    assert config_value(cfg, "SOLVER.EPOCHS") == 15 and config_value(cfg, "MODEL") is cfg.MODEL
    set_config_value(cfg, "SOLVER.EPOCHS", 3)
    assert cfg.SOLVER.EPOCHS == 3
    for key in ("SOLVER.NO_SUCH_KEY", "NOPE.EPOCHS", "SOLVER.EPOCHS.DEEPER"):
        with pytest.raises(ConfigError, match=f"unknown config key {key}"):
            config_value(cfg, key)
    cfg.freeze()
    with pytest.raises(AttributeError):
        set_config_value(cfg, "SOLVER.EPOCHS", 4)
