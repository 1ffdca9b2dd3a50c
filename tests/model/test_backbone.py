import pytest
import torch
from torchvision import models

from dmm.model.backbone import build_resnet, imagenet_weight_files


def test_imagenet_weights_from_weights_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    torch.manual_seed(3)
    source = models.resnet18(weights=None)
    name = imagenet_weight_files("resnet18")[0]
    assert name == "resnet18-f37072fd.pth"
    torch.save(source.state_dict(), tmp_path / name)
    net = build_resnet("resnet18", "imagenet", tmp_path)
    assert torch.equal(net.conv1.weight, source.conv1.weight) and torch.equal(net.fc.bias, source.fc.bias)


def test_imagenet_weights_from_torchvision_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    source = models.resnet50(weights=None)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(source.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet50-0676ba61.pth")  # V1
    net = build_resnet("resnet50", "imagenet", tmp_path / "empty")
    assert torch.equal(net.layer4[2].conv3.weight, source.layer4[2].conv3.weight)


def test_missing_imagenet_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"resnet101-63fe2227\.pth.*weights_here"):
        build_resnet("resnet101", "imagenet", tmp_path / "weights_here")


def test_weight_file_of_wrong_shape_names_key(tmp_path):
    state = models.resnet18(weights=None).state_dict()
    torch.save(state, tmp_path / "r18.pth")
    with pytest.raises(KeyError, match="layer1.0.conv3.weight"):
        build_resnet("resnet50", str(tmp_path / "r18.pth"))


def test_unknown_backbone():
    with pytest.raises(ValueError, match="resnet152"):
        build_resnet("resnet152")
