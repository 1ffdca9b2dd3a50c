import pytest
import torch

from dmm.proposals import store as store_mod
from dmm.proposals.store import ProposalStore, read_video_proposals, write_video_proposals
from dmm.errors import InputError
from dmm.structures import Proposals


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
    assert store.counts("vid1") == {"00000": 3, "00005": 0, "00010": 2}
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
    monkeypatch.setattr(store_mod, "_load_video_file", lambda p, v: loads.append(p) or real(p, v))
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



def test_header_names_the_video_and_counts_its_frames(tmp_path):
    write_video_proposals(tmp_path / "vid1.pth", _frames(), video="vid1")
    raw = torch.load(tmp_path / "vid1.pth", weights_only=True)
    assert raw["video"] == "vid1" and raw["num_frames"] == 3


def test_file_of_another_video_is_refused(tmp_path):
    write_video_proposals(tmp_path / "vid2.pth", _frames(), video="vid2")
    (tmp_path / "vid2.pth").replace(tmp_path / "vid1.pth")  # same frame names, wrong video
    with pytest.raises(InputError, match=r"vid1\.pth.*video 'vid2'.*'vid1'"):
        ProposalStore(tmp_path).get("vid1", "00000")
    with pytest.raises(InputError, match=r"vid1\.pth.*video 'vid2'.*'vid1'"):
        read_video_proposals(tmp_path / "vid1.pth")
    assert len(read_video_proposals(tmp_path / "vid1.pth", video="vid2")) == 3


def test_frame_count_must_match_the_stored_frames(tmp_path):
    write_video_proposals(tmp_path / "vid1.pth", _frames())
    raw = torch.load(tmp_path / "vid1.pth", weights_only=True)
    del raw["frames"]["00005"]
    torch.save(raw, tmp_path / "vid1.pth")
    with pytest.raises(InputError, match=r"vid1\.pth.*3 frames.*holds 2"):
        ProposalStore(tmp_path).video("vid1")


@pytest.mark.parametrize("field", ["boxes", "scores", "masks"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_proposals_are_refused(tmp_path, field, bad):
    frames = _frames()
    getattr(frames["00010"], field).view(-1)[1] = bad
    write_video_proposals(tmp_path / "vid1.pth", frames)
    store = ProposalStore(tmp_path)
    assert len(store.get("vid1", "00000")) == 3  # the other frames still read
    with pytest.raises(InputError, match=rf"non-finite .*{field}.*video 'vid1' frame '00010'.*vid1\.pth"):
        store.get("vid1", "00010")


def test_truncated_file_is_named(tmp_path):
    write_video_proposals(tmp_path / "vid1.pth", _frames())
    data = (tmp_path / "vid1.pth").read_bytes()
    for n in (len(data) // 2, len(data) - 30):
        (tmp_path / "vid1.pth").write_bytes(data[:n])
        with pytest.raises(InputError, match=r"proposal file .*vid1\.pth is truncated"):
            ProposalStore(tmp_path).get("vid1", "00000")


def test_a_file_with_fewer_frames_than_its_video_names_the_missing_frames(tmp_path):
    frames = {f"{i:05d}": Proposals.empty((20, 30), "roi") for i in range(0, 30, 2)}
    write_video_proposals(tmp_path / "vid1.pth", frames)
    store = ProposalStore(tmp_path)
    video = [f"{i:05d}" for i in range(30)]  # every frame; the file holds the even ones
    with pytest.raises(InputError) as err:
        store.check_frames("vid1", video)
    message = str(err.value)
    assert "vid1.pth" in message and "15 without proposals" in message
    assert "'00001', '00003'" in message and "'00019' and 5 more" in message and "'00021'" not in message
    with pytest.raises(InputError, match=r"vid1\.pth.*holds 15 frames but the video has 17: 2 without "
                                         r"proposals: 'x15', 'x16'$"):
        store.check_frames("vid1", [f"x{i:02d}" for i in range(17)], by_position=True)
    store.check_frames("vid1", sorted(frames))
    store.check_frames("vid1", [f"x{i:02d}" for i in range(15)], by_position=True)
