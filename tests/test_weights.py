"""Pretrained weights: ImageNet ResNets (``dmm.model.backbone``) and COCO Mask R-CNN
(``dmm.proposals.model``) come from a local file, torchvision's cache or, when neither has them,
torchvision's weights API (a download into its cache). Nothing here touches the network: the
download is simulated by monkeypatching ``torch.hub.download_url_to_file``.
"""

from __future__ import annotations

import argparse
import urllib.error
from pathlib import Path

import pytest
import torch
from torchvision import models

from dmm.errors import ConfigError, InputError, MissingInputError, MissingKeyError, UnsafePickleError
from dmm.model.backbone import build_resnet, imagenet_weight_files
from dmm.proposals.model import build_maskrcnn, load_maskrcnn

COCO_FILE = "maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth"


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty torchvision cache (``$TORCH_HOME``)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home"


@pytest.fixture
def offline(monkeypatch) -> list[str]:
    """Every download fails as without a network; the list collects the URLs tried."""
    tried: list[str] = []

    def fail(url, dst, *args, **kwargs):
        tried.append(url)
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)
    return tried


def serve(monkeypatch, state: dict) -> list[str]:
    """Downloads succeed and write ``state``; returns the list of (url, destination) tried."""
    tried: list[str] = []

    def download(url, dst, *args, **kwargs):
        tried.append((url, dst))
        torch.save(state, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    return tried


def test_resnet_weights_download_into_torchvision_cache(torch_home, tmp_path, monkeypatch):
    torch.manual_seed(1)
    source = models.resnet18(weights=None)
    tried = serve(monkeypatch, source.state_dict())
    net = build_resnet("resnet18", "imagenet", tmp_path / "weights_dir")
    name = imagenet_weight_files("resnet18")[0]
    assert [(url.rsplit("/", 1)[-1], Path(dst).name) for url, dst in tried] == [(name, name)]
    assert (torch_home / "hub" / "checkpoints" / name).is_file()
    assert torch.equal(net.conv1.weight, source.conv1.weight)
    build_resnet("resnet18", "imagenet", tmp_path / "weights_dir")  # now from the cache
    assert len(tried) == 1


def test_resnet_offline_names_the_file_and_folders(torch_home, tmp_path, offline):
    with pytest.raises(MissingInputError) as err:
        build_resnet("resnet34", "imagenet", tmp_path / "weights_here")
    message = str(err.value)
    name = imagenet_weight_files("resnet34")[0]
    for needle in (name, str(tmp_path / "weights_here"), str(torch_home / "hub" / "checkpoints"),
                   "download", "Name or service not known"):
        assert needle in message, (needle, message)
    assert len(offline) == 1 and offline[0].endswith(name)


def test_offline_message_lists_every_v1_file_name(torch_home, tmp_path, offline):
    """resnet18 has V1 weights only: the message names both of its V1 file names, no empty alternative."""
    with pytest.raises(MissingInputError) as err:
        build_resnet("resnet18", "imagenet", tmp_path / "w")
    message = str(err.value)
    assert "put resnet18-f37072fd.pth or resnet18-5c106cde.pth into" in message, message
    assert "(or )" not in message and "or ," not in message


def test_v1_is_taken_by_default_and_v2_never_stands_in_for_it(torch_home, tmp_path, offline, caplog):
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.manual_seed(3)
    v2 = models.resnet50(weights=None).state_dict()
    torch.save(v2, weights / imagenet_weight_files("resnet50", "V2")[0])
    with pytest.raises(MissingInputError, match=r"ImageNet V1 weights for resnet50 not found: put "
                                                r"resnet50-0676ba61\.pth or resnet50-19c8e357\.pth"):
        build_resnet("resnet50", "imagenet", weights)  # only the V2 file is there: not taken
    caplog.set_level("INFO", logger="dmm.model")
    net = build_resnet("resnet50", "imagenet", weights, imagenet_version="V2")
    assert torch.equal(net.conv1.weight, v2["conv1.weight"])
    assert "ImageNet V2 weights from " + str(weights / "resnet50-11ad3fa6.pth") in caplog.text
    # the file torchvision 0.3 downloaded in 2019 counts as V1
    torch.manual_seed(4)
    v1 = models.resnet50(weights=None).state_dict()
    torch.save(v1, weights / "resnet50-19c8e357.pth")
    net = build_resnet("resnet50", "imagenet", weights)
    assert torch.equal(net.conv1.weight, v1["conv1.weight"])
    assert "ImageNet V1 weights from " + str(weights / "resnet50-19c8e357.pth") in caplog.text
    with pytest.raises(ConfigError, match="MODEL.IMAGENET_WEIGHTS 'V2'.*resnet18.*V1"):
        build_resnet("resnet18", "imagenet", weights, imagenet_version="V2")
    assert [url.rsplit("/", 1)[-1] for url in offline] == ["resnet50-0676ba61.pth"]  # the V1 download, tried once


def test_resnet_weight_file_faults_are_named(tmp_path):
    torch.save({"args": argparse.Namespace(lr=1), **models.resnet18().state_dict()}, tmp_path / "r.pth")
    with pytest.raises(UnsafePickleError, match=r"r\.pth holds pickled Python objects.*refused for safety"):
        build_resnet("resnet18", str(tmp_path / "r.pth"))
    torch.save(models.resnet18().state_dict(), tmp_path / "r18.pth")
    data = (tmp_path / "r18.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.pth is truncated"):
        build_resnet("resnet18", str(tmp_path / "cut.pth"))
    with pytest.raises(MissingKeyError, match=r"r18\.pth.*layer1\.0\.conv3\.weight"):
        build_resnet("resnet50", str(tmp_path / "r18.pth"))
    with pytest.raises(ConfigError, match="MODEL.BACKBONE.*resnet152"):
        build_resnet("resnet152")


def test_coco_weights_download_into_torchvision_cache(torch_home, tmp_path, monkeypatch):
    torch.manual_seed(0)
    source = build_maskrcnn("resnet50_fpn_v2", 91, min_size=64, max_size=128)
    tried = serve(monkeypatch, source.state_dict())
    model = load_maskrcnn(tmp_path / "pretrained" / COCO_FILE, "resnet50_fpn_v2", min_size=64,
                          max_size=128)
    assert [Path(dst).name for _, dst in tried] == [COCO_FILE]
    assert (torch_home / "hub" / "checkpoints" / COCO_FILE).is_file()
    key = "roi_heads.box_predictor.cls_score.weight"
    assert torch.equal(model.state_dict()[key], source.state_dict()[key])


def test_coco_weights_offline_and_other_files(torch_home, tmp_path, offline):
    with pytest.raises(MissingInputError) as err:
        load_maskrcnn(tmp_path / "pretrained" / COCO_FILE, "resnet50_fpn_v2")
    message = str(err.value)
    for needle in (COCO_FILE, str(tmp_path / "pretrained"), str(torch_home / "hub" / "checkpoints"),
                   "Name or service not known"):
        assert needle in message, (needle, message)
    # a file of another name is never replaced by torchvision's COCO weights
    with pytest.raises(MissingInputError, match=r"my_propnet\.pth not found"):
        load_maskrcnn(tmp_path / "my_propnet.pth", "resnet50_fpn_v2")
    assert len(offline) == 1


def test_refused_proposal_net_weights_are_named(tmp_path):
    torch.save({"model": {}, "args": argparse.Namespace(x=1)}, tmp_path / "net.pth")
    with pytest.raises(UnsafePickleError, match=r"net\.pth holds pickled Python objects other than tensors"):
        load_maskrcnn(tmp_path / "net.pth", "resnet18_fpn")
