import pytest
import yaml

from dmm.config import load_config, save_config


def test_defaults_hold_design_numbers():
    cfg = load_config()
    assert (cfg.DATA.INPUT_H, cfg.DATA.INPUT_W) == (255, 448)
    assert cfg.DATA.LENGTH_CLIP == 3 and cfg.SOLVER.BATCH_SIZE == 4 and cfg.DATA.MAX_OBJECTS == 5
    assert cfg.MODEL.IOU_WEIGHT == pytest.approx(0.3)
    assert (cfg.MATCHING.TRAIN_MAX_ITER, cfg.MATCHING.TRAIN_PROJ_ITER) == (40, 5)
    assert (cfg.MATCHING.TEST_MAX_ITER, cfg.MATCHING.TEST_PROJ_ITER) == (10, 5)
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
    with pytest.raises(KeyError):
        load_config(None, ["SOLVER.NOT_A_KEY", "1"])
    with pytest.raises(ValueError, match="KEY VALUE"):
        load_config(None, ["SOLVER.EPOCHS"])
    with pytest.raises(FileNotFoundError, match="no_such_config"):
        load_config("no_such_config")
