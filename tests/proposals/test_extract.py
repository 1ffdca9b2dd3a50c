import pytest
import torch

from dmm.cli import run
from dmm.proposals import extract
from dmm.proposals.model import build_maskrcnn, load_maskrcnn
from dmm.proposals.store import ProposalStore

SMALL = dict(min_size=64, max_size=128)


def test_extract_end_to_end_and_resume(synthetic_root, tmp_path, capsys):
    out = tmp_path / "props"
    args = ["--root", str(synthetic_root), "--split", "valid", "--out", str(out), "--arch",
            "resnet18_fpn", "--weights", "none", "--num-classes", "2", "--min-size", "64",
            "--max-size", "128", "--batch-size", "3", "--device", "cpu"]
    videos = sorted(p.name for p in (synthetic_root / "valid" / "JPEGImages").iterdir())[:1]
    args += ["--videos", *videos]
    torch.manual_seed(0)
    assert extract.main(args) == 0
    store = ProposalStore(out)
    assert store.videos == videos
    for v in videos:
        frames = store.video(v)
        assert sorted(frames) == sorted(p.stem for p in (synthetic_root / "valid" / "JPEGImages" / v).iterdir())
        for p in frames.values():
            assert p.mask_mode == "roi" and p.image_size == (64, 96)
            assert 0 < len(p) <= 50 and p.masks.shape[1:] == (28, 28)
            assert p.masks.min() >= 0 and p.masks.max() <= 1
            assert (p.boxes[:, 2] <= 96 + 1e-3).all() and (p.boxes[:, 3] <= 64 + 1e-3).all()
    stamp = (out / f"{videos[0]}.pth").stat().st_mtime_ns
    assert extract.main(args) == 0
    assert (out / f"{videos[0]}.pth").stat().st_mtime_ns == stamp
    assert "wrote 0 videos" in capsys.readouterr().out


def test_weights_file_round_trip_and_missing_file(tmp_path, capsys):
    torch.manual_seed(0)
    model = build_maskrcnn("resnet18_fpn", 2, **SMALL)
    torch.save(model.state_dict(), tmp_path / "w.pth")
    loaded = load_maskrcnn(tmp_path / "w.pth", "resnet18_fpn", **SMALL)
    image = [torch.rand(3, 48, 80)]
    a, b = extract.detect(model, image)[0], extract.detect(loaded, image)[0]
    assert torch.equal(a.boxes, b.boxes) and torch.equal(a.masks, b.masks)
    with pytest.raises(FileNotFoundError, match=r"nowhere/coco\.pth not found.*maskrcnn_resnet50_fpn_v2_coco-"):
        load_maskrcnn(tmp_path / "nowhere" / "coco.pth", "resnet50_fpn_v2")
    code = run(extract.main, ["--split", "valid", "--out", str(tmp_path / "o"), "--weights",
                              str(tmp_path / "nowhere.pth"), "--root", str(tmp_path)])
    (line,) = capsys.readouterr().err.splitlines()
    assert code == 2 and line.startswith("error: ") and "valid" in line
