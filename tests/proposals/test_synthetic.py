import cv2
import numpy as np
import torch

from dmm.proposals import synthetic
from dmm.proposals.ops import paste_roi_masks
from dmm.proposals.store import ProposalStore, read_video_proposals


def _scene():
    m = np.zeros((96, 128), np.uint8)
    cv2.ellipse(m, (30, 40), (18, 12), 0, 0, 360, 1, -1)
    cv2.rectangle(m, (70, 20), (110, 60), 2, -1)
    cv2.circle(m, (90, 75), 14, 101, -1)  # a distractor occluding the rectangle
    return m


def test_frame_proposals_honest_but_not_trivial():
    scene = _scene()
    covered = top = contested = 0
    rng = np.random.default_rng(0)
    for _ in range(60):
        p = synthetic.frame_proposals(scene, rng)
        assert p.mask_mode == "roi" and p.masks.shape[1:] == (28, 28) and p.image_size == (96, 128)
        assert ((p.scores > 0) & (p.scores < 1)).all()
        pasted = paste_roi_masks(p.masks, p.boxes, (96, 128)) > 0.5
        for i in (1, 2, 101):
            truth = torch.from_numpy(scene == i)
            iou = (pasted & truth).sum((1, 2)) / (pasted | truth).sum((1, 2)).clamp(min=1)
            covered += bool(iou.max() > 0.7)
            near = torch.nonzero(iou > 0.3).flatten()
            if len(near):
                contested += 1
                top += bool(iou[near].argmax() == p.scores[near].argmax())
    assert covered / 180 > 0.9  # the object is almost always among the proposals
    assert covered < 180 or top < contested  # ... but the task is not trivial
    assert 0.4 < top / contested < 0.97  # the best-overlapping one is often, not always, top


def test_cli_deterministic_and_resumable(synthetic_root, tmp_path, capsys):
    args = ["--root", str(synthetic_root), "--split", "train", "--seed", "3"]
    assert synthetic.main(args + ["--out", str(tmp_path / "a")]) == 0
    assert "covered by a proposal with IoU > 0.7" in capsys.readouterr().out
    assert synthetic.main(args + ["--out", str(tmp_path / "b")]) == 0
    videos = sorted(p.name for p in (synthetic_root / "train" / "Instances").iterdir())
    store = ProposalStore(tmp_path / "a")
    assert store.videos == videos
    for v in videos:
        a = read_video_proposals(tmp_path / "a" / f"{v}.pth")
        b = read_video_proposals(tmp_path / "b" / f"{v}.pth")
        assert list(a) == sorted(p.stem for p in (synthetic_root / "train" / "Instances" / v).iterdir())
        for f in a:
            assert torch.equal(a[f].masks, b[f].masks) and torch.equal(a[f].scores, b[f].scores)
    # a rerun skips written videos
    stamp = (tmp_path / "a" / f"{videos[0]}.pth").stat().st_mtime_ns
    assert synthetic.main(args + ["--out", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / f"{videos[0]}.pth").stat().st_mtime_ns == stamp
    # another seed gives other proposals
    assert synthetic.main(["--root", str(synthetic_root), "--split", "train", "--seed", "4",
                           "--out", str(tmp_path / "c")]) == 0
    c = read_video_proposals(tmp_path / "c" / f"{videos[0]}.pth")
    a = read_video_proposals(tmp_path / "a" / f"{videos[0]}.pth")
    assert any(len(c[f]) != len(a[f]) or not torch.equal(c[f].scores, a[f].scores) for f in a)
