"""``python -m dmm.zoo fetch`` / ``check`` / ``list`` against a local server (127.0.0.1 only):
a fetch that resumes, each kind of bad input named on one ``error:`` line with nothing left
half-done, and the lock of checked files."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from dmm.model import DMMNet
from dmm.zoo import Zoo
from dmm.zoo.checks import LOCK_FILE, Places
from dmm.zoo.fetch import fetch

from ..model.model_helpers import small_cfg
from .conftest import checkpoint_folder, error_line, leftovers, tar_gz, zoo

PROPOSALS = Path("experiments/proposals/ytb_train/inference/youtubevos_val200_meta")


@pytest.fixture
def data(synthetic_root, split_dir):
    return synthetic_root, split_dir


def test_fetch_unpacks_follows_up_checks_and_keeps_what_is_there(served, proposals_archive, data, tmp_path, capsys):
    shutil.copy(proposals_archive, served.folder)
    root = tmp_path / "repo"
    assert zoo(root, "fetch", "proposals_ytb_train", "--from", served.url, data=data) == 0
    out = capsys.readouterr().out
    assert f"reduce_pth_size_by_videos.py {PROPOSALS}/predictions.pth trainval all" in out
    assert out.splitlines()[-1].startswith("OK      proposals_ytb_train")
    store = root / PROPOSALS / "videos_all"
    index = json.loads((store / "vidfid2index.json").read_text())
    assert sorted(p.stem for p in store.glob("*.pth")) == sorted(index) and len(index) == 2
    lock = json.loads((root / LOCK_FILE).read_text())["files"]
    predictions = root / PROPOSALS / "predictions.pth"
    assert lock[str(PROPOSALS / "predictions.pth")]["sha256"] == hashlib.sha256(predictions.read_bytes()).hexdigest()
    assert not list((root / "experiments/downloads").iterdir()) and not leftovers(root)

    requests = len(served.log)
    assert zoo(root, "fetch", "proposals_ytb_train", "--from", served.url, data=data) == 0
    assert "(already there)" in capsys.readouterr().out and len(served.log) == requests

    assert zoo(root, "check", data=data) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [l.split()[0] for l in lines].count("OK") == 1 and lines[0].startswith("absent")
    assert zoo(root, "list") == 0
    listing = capsys.readouterr().out
    assert "proposals_ytb_train            [here, checked]" in listing
    assert "http://www.cs.toronto.edu/~xiaohui/dmm/proposals/proposals_ytb_train.tar.gz" in listing
    assert f"(proposals_ytb_train.tar.gz, {proposals_archive.stat().st_size} bytes)" in listing
    assert "ytb_255_50                     [absent]" in listing


def test_a_dropped_download_resumes_from_its_last_byte(served, proposals_archive, data, tmp_path, capsys):
    shutil.copy(proposals_archive, served.folder)
    size = proposals_archive.stat().st_size
    served.drop_after["proposals_ytb_train.tar.gz"] = half = size // 2
    root = tmp_path / "repo"
    assert zoo(root, "fetch", "proposals_ytb_train", "--from", served.url, data=data) == 2
    line = error_line(capsys)
    assert "proposals_ytb_train.tar.gz" in line and f"stopped at byte {half} of {size}" in line
    part = root / "experiments/downloads/proposals_ytb_train.tar.gz.part"
    assert part.stat().st_size == half and not (root / PROPOSALS).exists()

    assert zoo(root, "fetch", "proposals_ytb_train", "--from", served.url, data=data) == 0
    assert served.log[-1] == ("proposals_ytb_train.tar.gz", half, 206)
    with tarfile.open(proposals_archive) as tar:
        original = tar.extractfile("ytb_train/inference/youtubevos_val200_meta/predictions.pth").read()
    assert (root / PROPOSALS / "predictions.pth").read_bytes() == original
    assert not part.exists() and not leftovers(root)


def test_an_address_that_fails_is_named_with_the_way_to_use_from(served, data, tmp_path, capsys):
    root = tmp_path / "repo"
    assert zoo(root, "fetch", "ytb_255_50", "--from", served.url, data=data) == 2
    line = error_line(capsys)
    assert f"dmmnet_ytb_255_50.tar.gz from --from {served.url}" in line and "HTTP 404" in line
    # the 2019 addresses gone: the message says how to use --from
    gone = Zoo(tuple(dataclasses.replace(r, addresses=(served.url + r.file,)) if r.addresses else r
                     for r in Zoo().releases))
    with pytest.raises(Exception) as e:
        fetch(gone, ["ytb_255_50"], Places(root, *data, progress=False))
    assert f"{served.url}dmmnet_ytb_255_50.tar.gz: HTTP 404" in str(e.value)
    assert "python -m dmm.zoo fetch ytb_255_50 --from DIR_OR_URL" in str(e.value)
    assert not (root / "experiments/dmmnet").exists() and not leftovers(root)
    # shared by hand: fetch says where from and how to hand it over
    assert zoo(root, "fetch", "propnet_join_ytb_bin", data=data) == 2
    line = error_line(capsys)
    assert "sharepoint.com" in line and "download model_0172500.pth" in line and "--from DIR" in line


def test_a_truncated_archive_is_named_and_nothing_is_left(served, proposals_archive, data, tmp_path, capsys):
    (served.folder / "proposals_ytb_train.tar.gz").write_bytes(proposals_archive.read_bytes()[:-2000])
    root = tmp_path / "repo"
    assert zoo(root, "fetch", "proposals_ytb_train", "--from", served.url, data=data) == 2
    line = error_line(capsys)
    assert "proposals_ytb_train.tar.gz" in line and "truncated" in line and "nothing was placed" in line
    assert not (root / PROPOSALS).exists() and not leftovers(root)
    assert not list((root / "experiments/downloads").iterdir())  # the bad download is gone too
    assert not list((root / "experiments/proposals").iterdir())


def test_an_archive_holding_another_model_is_refused(served, data, tmp_path, capsys):
    small = DMMNet.from_config(small_cfg("resnet18")).state_dict()
    checkpoint_folder(tmp_path / "tree/ytb_255_50/epo08_iter01640", small)
    tar_gz(served.folder / "dmmnet_ytb_255_50.tar.gz", tmp_path / "tree")
    root = tmp_path / "repo"
    assert zoo(root, "fetch", "ytb_255_50", "--from", served.url, data=data) == 2
    line = error_line(capsys)
    assert "dmmnet_ytb_255_50.tar.gz (ytb_255_50)" in line and "missing keys" in line
    assert "dmmnet_ytb_255_50.tar.gz/ytb_255_50/epo08_iter01640/trainer.pt" in line and ".tmp" not in line
    assert not (root / "experiments/dmmnet/ytb_255_50").exists() and not leftovers(root)


def test_a_file_changed_since_the_lock_is_reported(served, proposals_archive, data, tmp_path, capsys):
    shutil.copy(proposals_archive, served.folder)
    root = tmp_path / "repo"
    assert zoo(root, "fetch", "proposals_ytb_train", "--from", served.url, data=data) == 0
    capsys.readouterr()
    with open(root / PROPOSALS / "predictions.pth", "ab") as f:
        f.write(b"\0")
    assert zoo(root, "check", "proposals_ytb_train", data=data) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith("FAILED  proposals_ytb_train") and "changed since" in captured.out
    assert f"{PROPOSALS}/predictions.pth" in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: proposals_ytb_train failed its check: ")
    assert f"{PROPOSALS}/predictions.pth changed since" in err[0]
    assert zoo(root, "fetch", "proposals_ytb_train", "--from", served.url, data=data) == 2
    assert "is already there but fails its check" in error_line(capsys)
    assert zoo(root, "check", "proposals_ytb_train", "--relock", data=data) == 0
    assert zoo(root, "check", "proposals_ytb_train", data=data) == 0


def test_a_plain_file_in_the_way_is_named_before_anything_is_fetched(served, proposals_archive, data, tmp_path,
                                                                      capsys):
    shutil.copy(proposals_archive, served.folder)
    root = tmp_path / "repo"
    (root / "experiments/proposals").mkdir(parents=True)
    (root / "experiments/proposals/ytb_train").write_text("not a folder")
    assert zoo(root, "fetch", "proposals_ytb_train", "--from", served.url, data=data) == 2
    line = error_line(capsys)
    assert f"{root}/experiments/proposals/ytb_train is a plain file" in line and not served.log

    (root / "experiments/proposals/ytb_train").unlink()
    target = root / PROPOSALS
    target.parent.mkdir(parents=True)
    target.write_text("not a folder")
    assert zoo(root, "fetch", "proposals_ytb_train", "--from", served.url, data=data) == 2
    line = error_line(capsys)
    assert f"{target} is already there but fails its check" in line and "nothing was overwritten" in line
    assert target.read_text() == "not a folder" and not served.log


def test_archive_members_outside_the_folder_are_refused(served, data, tmp_path, capsys):
    evil = tmp_path / "evil.txt"
    evil.write_text("x")
    with tarfile.open(served.folder / "proposals_ytb_train.tar.gz", "w:gz") as tar:
        tar.add(evil, arcname="../../escaped.txt")
    root = tmp_path / "repo"
    assert zoo(root, "fetch", "proposals_ytb_train", "--from", served.url, data=data) == 2
    assert "'../../escaped.txt' is refused" in error_line(capsys)
    assert not list(tmp_path.rglob("escaped.txt")) and not leftovers(root)


def test_a_released_layout_from_a_local_folder(data, tmp_path, capsys):
    """--from a folder; the older encoder.pt + decoder.pt layout; an archive with one more
    leading folder; the RVOS model for the ResNet-101 stage checked as that stage loads it."""
    cfg = small_cfg("resnet101")
    state = DMMNet.from_config(cfg).state_dict()
    rvos = {k: v for k, v in state.items() if ".prop" not in k}
    checkpoint_folder(tmp_path / "tree/one-shot-model-youtubevos", rvos, pair=True)
    import zipfile

    with zipfile.ZipFile(tmp_path / "one-shot-model-youtubevos.zip", "w") as z:
        for f in sorted((tmp_path / "tree/one-shot-model-youtubevos").iterdir()):
            z.write(f, f"one-shot-model-youtubevos/{f.name}")
    root = tmp_path / "repo"
    assert zoo(root, "fetch", "rvos_one_shot_youtubevos", "--from", str(tmp_path), data=data) == 0
    out = capsys.readouterr().out
    assert "OK      rvos_one_shot_youtubevos" in out and "RVOS weights for the resnet101 DMM-Net" in out
    assert (tmp_path / "one-shot-model-youtubevos.zip").is_file()  # a --from file is left as it was
    assert sorted(p.name for p in (root / "experiments/dmmnet/pretrained_rvos/one-shot-model-youtubevos").iterdir()
                  ) == ["decoder.pt", "encoder.pt"]
