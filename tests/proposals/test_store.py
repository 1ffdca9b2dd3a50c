import pytest
import torch

from dmm.proposals import store as store_mod
from dmm.proposals.store import ProposalStore, read_video_proposals, write_video_proposals
from dmm.proposals.structures import Proposals


def _frames():
    g = torch.Generator().manual_seed(0)
    return {
        "00000": Proposals(torch.rand(3, 4, generator=g) * 10, torch.rand(3, generator=g),
                           torch.rand(3, 28, 28, generator=g), (20, 30), "roi"),
        "00005": Proposals.empty((20, 30), "roi"),
        "00010": Proposals(torch.rand(2, 4, generator=g), torch.rand(2, generator=g),
                           torch.rand(2, 20, 30, generator=g), (20, 30), "full"),
    }


def test_round_trip_weights_only(tmp_path):
    frames = _frames()
    write_video_proposals(tmp_path / "vid1.pth", frames)
    raw = torch.load(tmp_path / "vid1.pth", weights_only=True)
    assert raw["format"] == "dmm-proposals" and raw["version"] == 1 and raw["video"] == "vid1"
    assert raw["frames"]["00000"]["image_size"] == [20, 30]
    back = read_video_proposals(tmp_path / "vid1.pth")
    assert set(back) == set(frames)
    for f, p in frames.items():
        q = back[f]
        assert q.mask_mode == p.mask_mode and q.image_size == p.image_size
        assert torch.equal(q.boxes, p.boxes) and torch.equal(q.masks, p.masks)
        assert torch.equal(q.scores, p.scores)
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temp file


def test_store_errors_name_video_frame_and_file(tmp_path):
    write_video_proposals(tmp_path / "vid1.pth", _frames())
    store = ProposalStore(tmp_path)
    assert store.videos == ["vid1"] and "vid1" in store
    assert len(store.get("vid1", "00000")) == 3 and len(store.get("vid1", "00005")) == 0
    with pytest.raises(KeyError, match=r"'00001'.*'vid1'"):
        store.get("vid1", "00001")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        store.get("nope", "00000")
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        ProposalStore(tmp_path / "missing_dir")


def test_store_caches_videos_lru(tmp_path, monkeypatch):
    for v in ("a", "b", "c"):
        write_video_proposals(tmp_path / f"{v}.pth", _frames())
    loads = []
    real = store_mod._load_video_file
    monkeypatch.setattr(store_mod, "_load_video_file", lambda p: loads.append(p) or real(p))
    store = ProposalStore(tmp_path, cache_size=2)
    for v, f in [("a", "00000"), ("a", "00005"), ("b", "00000"), ("a", "00010"), ("c", "00000"),
                 ("a", "00000"), ("b", "00000")]:
        store.get(v, f)
    assert [p.stem for p in loads] == ["a", "b", "c", "b"]


def test_bad_files_are_named(tmp_path):
    torch.save({"format": "something-else"}, tmp_path / "x.pth")
    with pytest.raises(ValueError, match="x.pth"):
        read_video_proposals(tmp_path / "x.pth")
    torch.save({"format": "dmm-proposals", "version": 99, "frames": {}}, tmp_path / "y.pth")
    with pytest.raises(ValueError, match="version 99"):
        read_video_proposals(tmp_path / "y.pth")

