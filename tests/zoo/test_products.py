"""What ``dmm.zoo`` checks for each kind of release: the COCO proposals archive (several
products, fetched as the workflows need them), a proposal net (architecture and class count
through ``load_propnet``), the 1-epoch ResNet-101 model (shared by hand; its optimizer states)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

from dmm.checkpointing import save_checkpoint
from dmm.config import load_config
from dmm.engine.build import build_optimizers
from dmm.errors import DMMError
from dmm.model import DMMNet
from dmm.zoo import Zoo
from dmm.zoo.checks import Places
from dmm.zoo.fetch import check, fetch

from .conftest import error_line, legacy_predictions, leftovers, split_frames, tar_gz, zoo

COCO = Path("experiments/proposals/coco81/inference")


def test_the_coco_archive_gives_the_products_a_workflow_asks_for(served, synthetic_root, split_dir, tmp_path, capsys):
    tree = tmp_path / "tree/coco81/inference"
    for seed, (meta, split) in enumerate([("youtubevos_train3k_meta", "train"), ("youtubevos_val200_meta", "trainval")]):
        legacy_predictions(tree / meta / "predictions.pth", split_frames(synthetic_root, split, split_dir), seed)
    online = tree / "youtubevos_testdev_online_meta"  # never converted here (its split is refused first)
    online.mkdir()
    shutil.copy(tree / "youtubevos_val200_meta/predictions.pth", online)
    tar_gz(served.folder / "feature_coco81.tar.gz", tmp_path / "tree")
    root, data = tmp_path / "repo", (synthetic_root, split_dir)

    assert zoo(root, "fetch", "--for", "train", "--from", served.url, data=data) == 0
    out = capsys.readouterr().out
    assert "train3k_meta/predictions.pth train 50" in out and "val200_meta/predictions.pth trainval 50" in out
    assert sorted(p.name for p in (root / COCO).iterdir()) == ["youtubevos_train3k_meta", "youtubevos_val200_meta"]
    assert (root / COCO / "youtubevos_train3k_meta/videos_top50/vidfid2index.json").is_file()
    # the online set's part is not there yet: the download is kept for it
    assert (root / "experiments/downloads/feature_coco81.tar.gz").is_file() and not leftovers(root)
    # its split is not in this dataset: refused before anything is unpacked
    assert zoo(root, "fetch", "feature_coco81/testdev_online", "--from", served.url, data=data) == 2
    line = error_line(capsys)
    assert "feature_coco81/testdev_online is checked against split train_testdev_ot" in line
    assert "nothing was fetched" in line and len(served.log) == 1


@pytest.fixture(scope="module")
def r50_propnet(tmp_path_factory) -> Path:
    """A maskrcnn-benchmark checkpoint (``{"model": ...}``, ``module.`` names) of a 2-class
    R-50-FPN proposal net, named as the released join_ytb_bin file."""
    from dmm.proposals.legacy_net import LegacyMaskRCNN
    from dmm.proposals.legacy_net.weights import benchmark_state_dict

    torch.manual_seed(0)
    state = benchmark_state_dict(LegacyMaskRCNN("legacy_r50_fpn", 2))
    path = tmp_path_factory.mktemp("propnet") / "model_0172500.pth"
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "iteration": 172500}, path)
    return path


def _with_check(name: str, **changes) -> Zoo:
    def change(release):
        products = tuple(dataclasses.replace(p, check=dataclasses.replace(p.check, **changes)) if p.name == name
                         else p for p in release.products)
        return dataclasses.replace(release, products=products)

    return Zoo(tuple(change(r) for r in Zoo().releases))


def test_a_proposal_net_is_checked_for_its_architecture_and_classes(r50_propnet, served, synthetic_root, split_dir,
                                                                     tmp_path, capsys):
    root, data = tmp_path / "repo", (synthetic_root, split_dir)
    places = Places(root, *data, progress=False)
    served.folder.joinpath(r50_propnet.name).symlink_to(r50_propnet)
    # the released join_ytb_bin is an X-101-32x8d FPN
    assert zoo(root, "fetch", "propnet_join_ytb_bin", "--from", served.url, data=data) == 2
    line = error_line(capsys)
    assert "model_0172500.pth (propnet_join_ytb_bin)" in line and "holds a legacy_r50_fpn model, not the " \
           "legacy_x101_32x8d_fpn asked for" in line
    assert not (root / "experiments/propnet/join_ytb_bin/model_0172500.pth").exists() and not leftovers(root)
    with pytest.raises(DMMError, match="a proposal net with 2 classes, not the 81"):
        fetch(_with_check("propnet_join_ytb_bin", arch="legacy_r50_fpn", classes=81), ["propnet_join_ytb_bin"],
              places, served.url)
    r50 = _with_check("propnet_join_ytb_bin", arch="legacy_r50_fpn")
    assert fetch(r50, ["propnet_join_ytb_bin"], places, served.url)[0].startswith("OK      propnet_join_ytb_bin")
    assert (root / "experiments/propnet/join_ytb_bin/model_0172500.pth").read_bytes() == r50_propnet.read_bytes()
    assert check(r50, ["propnet_join_ytb_bin"], places)[0].endswith("legacy_r50_fpn, 2 classes")


def test_the_one_epoch_resnet101_model_is_placed_by_hand_and_needs_its_optimizers(synthetic_root, split_dir,
                                                                                    tmp_path, capsys):
    root, data = tmp_path / "repo", (synthetic_root, split_dir)
    assert zoo(root, "fetch", "--for", "online", data=data) == 2  # the COCO part's split is checked first
    assert "split train_testdev_ot" in error_line(capsys)
    assert zoo(root, "fetch", "ytb_r101_epo01", data=data) == 2
    line = error_line(capsys)
    assert "sharepoint.com" in line and f"put it at {root}/experiments/dmmnet/ytb_train_x101/epo01_iter01640" in line
    assert "python -m dmm.zoo check ytb_r101_epo01" in line

    cfg = load_config("online", ["MODEL.PRETRAINED", "none"])
    model = DMMNet.from_config(cfg)
    target = root / "experiments/dmmnet/ytb_train_x101/epo01_iter01640"
    save_checkpoint(target, model, {}, cfg, 1, 1641)
    assert zoo(root, "check", "ytb_r101_epo01", data=data) == 2
    assert "holds no optimizer state" in capsys.readouterr().out
    (target / "trainer.pt").unlink()
    save_checkpoint(target, model, build_optimizers(model, cfg.SOLVER), cfg, 1, 1641)
    assert zoo(root, "check", "ytb_r101_epo01", data=data) == 0
    assert "resnet101 DMM-Net of config online, optimizer states from trainer.pt" in capsys.readouterr().out
