import pytest
import yaml

from dmm.config import get_cfg_defaults, load_config, save_config, validate_config
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
