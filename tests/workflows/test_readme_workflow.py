"""README "Reproducing the paper on YouTube-VOS" steps 1-6, "Small or custom datasets" and "Your
own video", run literally and in order on a tiny YouTube-VOS-layout dataset, each step consuming
what the one before wrote, from files in the authors' released layouts (``released.py``).

No DRY_RUN: every script trains, evaluates, scores or extracts for real, one or two iterations at
64x112 with ResNet-18-shaped weights. Each step asserts what it wrote, so a broken hand-over fails
at the step that broke it.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from dmm.data.synthetic import SyntheticConfig, generate
from dmm.proposals.store import read_video_proposals

from .readme import Workspace, readme_command
from .released import write_dmmnet, write_predictions, write_propnet, write_rvos

#: the model and run size: KEY VALUE overrides every entry point takes
MODEL = ["MODEL.BACKBONE", "resnet18", "MODEL.PRETRAINED", "none", "DATA.INPUT_H", "64", "DATA.INPUT_W", "112",
         "DEVICE", "cpu"]
TRAIN = [*MODEL, "SOLVER.BATCH_SIZE", "1", "SOLVER.BN_GROUPS", "1", "SOLVER.EPOCHS", "1",
         "SOLVER.MAX_ITERS_PER_EPOCH", "1", "DATA.NUM_WORKERS", "0", "VAL.NUM_VIDEOS", "1"]
#: dmm.proposals.extract options the extract scripts pass on (their headers): a small test size
EXTRACT = ["--device", "cpu", "--min-size", "64", "--max-size", "112"]
DATASET = SyntheticConfig(num_train=8, num_valid=2, num_frames=3, height=64, width=112, seed=0, max_targets=2)
DMM = "experiments/dmmnet"
PROPS = "experiments/proposals"


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def pngs(results: Path) -> dict[str, list[str]]:
    return {v.name: sorted(p.stem for p in v.glob("*.png")) for v in sorted(results.iterdir()) if v.is_dir()}


def frames_of(split: Path, videos) -> dict[str, list[str]]:
    return {v: sorted(p.stem for p in (split / "JPEGImages" / v).glob("*.jpg")) for v in sorted(videos)}


def split_videos(meta: Path) -> list[str]:
    return sorted(json.loads(meta.read_text())["videos"])


def newest(run: Path) -> Path:
    (last,) = [p for p in sorted(run.glob("epo*_iter*"))][-1:]
    assert (last / "trainer.pt").is_file() and (last / "config.yaml").is_file(), last
    return last


@pytest.mark.slow
def test_readme_reproduction_path(tmp_path: Path):
    ws = Workspace.create(tmp_path / "repo")
    root = ws.root / "datasets" / "youtubeVOS"
    splits = ws.root / "data" / "splits" / "youtubevos"

    # -- 1. Data: a YouTube-VOS-layout set linked as datasets/youtubeVOS, the split rule with small counts
    generate(tmp_path / "youtubeVOS", DATASET, progress=False)
    root.parent.mkdir(parents=True)
    root.symlink_to(tmp_path / "youtubeVOS")
    ws.run(readme_command("python", "src/tools/make_splits.py", "--root", "datasets/youtubeVOS"), "--counts", "4", "2")
    train3k, val200 = split_videos(splits / "train3k_meta.json"), split_videos(splits / "val200_meta.json")
    assert (len(train3k), len(val200), len(split_videos(splits / "test271_meta.json"))) == (4, 2, 2)

    # -- 2. Proposals: the released predictions.pth files, reduced by the README's lines
    released = {"coco81/inference/youtubevos_train3k_meta": ("train", 12),
                "coco81/inference/youtubevos_val200_meta": ("trainval", 12),
                "ytb_train/inference/youtubevos_val200_meta": ("trainval", 60)}  # > 50: NMS keeps 50
    for folder, (split, per_frame) in released.items():
        write_predictions(ws.root / PROPS / folder / "predictions.pth", root, split, splits, per_frame, seed=per_frame)
        line = readme_command("python", "src/tools/reduce_pth_size_by_videos.py", f"{PROPS}/{folder}/predictions.pth")
        ws.run(line)
        kept = line[-1]
        out = ws.root / PROPS / folder / f"videos_{'all' if kept == 'all' else 'top' + kept}"
        assert sorted(p.stem for p in out.glob("*.pth")) == (train3k if split == "train" else val200), out
        stored = read_video_proposals(next(out.glob("*.pth")))
        assert {len(p) for p in stored.values()} == {per_frame}, out

    # -- 3. Training (train.yaml), then the same run replaced with --overwrite
    train = readme_command("sh", "scripts/train/train_load_prop.sh")
    assert train == ["sh", "scripts/train/train_load_prop.sh"]
    done = ws.run(train, *TRAIN)
    run50 = ws.root / DMM / "ytb_255_50_matchloss"
    first = newest(run50)
    assert first.name == "epo00_iter00001" and f"last checkpoint: {first.relative_to(ws.root)}" in done.stdout
    assert (run50 / "metrics.jsonl").is_file() and (run50 / "val").is_dir()  # validation ran on val200
    replaced = (first / "trainer.pt").read_bytes()
    ws.run(train, "--overwrite", *TRAIN, "SEED", "1", "VAL.ENABLED", "False")  # the README's way to start it again
    assert newest(run50) == first and (first / "trainer.pt").read_bytes() != replaced
    assert "SEED: 1" in (run50 / "config.yaml").read_text()

    # -- 4. The ResNet-101 stage from the RVOS files, the online set, online training from what it wrote
    write_rvos(ws.root / DMM / "pretrained_rvos" / "one-shot-model-youtubevos")
    ws.run(readme_command("sh", "scripts/train/train_r101.sh"), *TRAIN, "SOLVER.EPOCHS", "2")
    r101 = newest(ws.root / DMM / "ytb_train_x101")
    assert r101.name == "epo01_iter00002"
    ws.run(readme_command("python", "src/tools/make_train_online_dataset.py"))
    online_set = root / "train_testdev_ot"
    assert split_videos(online_set / "meta.json") == split_videos(root / "valid" / "meta.json")
    assert all(len(f) == 10 for f in frames_of(online_set, split_videos(online_set / "meta.json")).values())
    folder = "coco81/inference/youtubevos_testdev_online_meta"
    write_predictions(ws.root / PROPS / folder / "predictions.pth", root, "train_testdev_ot", splits, 95, seed=3)
    ws.run(readme_command("python", "src/tools/reduce_pth_size_by_videos.py", f"{PROPS}/{folder}/predictions.pth"))
    assert len(list((ws.root / PROPS / folder / "videos_top90").glob("*.pth"))) == 2

    # the released online model sits where MODEL_ZOO.md puts it; the online run never touches it
    released_online = ws.root / DMM / "online_ytb"
    write_dmmnet(released_online / "epo90_iter00088", "trainer", seed=4)
    before = digest(released_online)
    online = readme_command("sh", "scripts/train/train_online.sh")
    done = ws.run(online, *TRAIN)
    assert f"[online] starting from {r101.relative_to(ws.root)}: the newest checkpoint of" in done.stdout
    online_run = ws.root / DMM / "online_ytb_train"
    own_online = newest(online_run)
    assert digest(released_online) == before

    # -- 5. Evaluation of the released models (trainer.pt; encoder.pt + decoder.pt) and of the run's own
    write_dmmnet(ws.root / DMM / "ytb_255_50_matchloss_epo13" / "epo13_iter01640", "trainer", seed=5)
    write_dmmnet(ws.root / DMM / "ytb_255_50" / "epo08_iter01640", "pair", seed=6)
    done = ws.run(readme_command("sh", "scripts/eval/eval_r50.sh"), *MODEL)
    expected = frames_of(root / "train", val200)
    for model in ("ytb_255_50_matchloss_epo13", "ytb_255_50"):
        results = ws.root / DMM / model / "eval" / "trainval" / "merged"
        assert pngs(results) == expected, model
        assert f"sh scripts/metric/full_eval.sh {DMM}/{model}/eval/trainval/merged" in done.stdout
    scored = ws.run(readme_command("sh", "scripts/metric/full_eval.sh", containing="matchloss"))
    metrics = ws.root / DMM / "ytb_255_50_matchloss_epo13" / "eval" / "trainval" / "merged_metrics"
    for name in ("summary.json", "summary_dmm2019.json", "per_video.csv"):
        assert (metrics / name).is_file(), name
    assert "(protocol youtubevos: " in scored.stdout and "(protocol dmm2019: " in scored.stdout
    methods = [line.split("|")[1].strip() for line in scored.stdout.splitlines()
               if line.startswith("| ") and not line.startswith("| Method")]
    assert len(methods) == 2 and all("ytb_255_50_matchloss_epo13" in m for m in methods), methods  # what produced it

    own = readme_command("CHECKPOINT=experiments/dmmnet/my_run/epo05_iter00800", "sh", "scripts/eval/eval_r50.sh")
    done = ws.run(own, "--overwrite", *MODEL, CHECKPOINT=str(first.relative_to(ws.root)))
    own_results = run50 / "eval" / first.name / "trainval" / "merged"
    assert pngs(own_results) == expected
    assert f"sh scripts/metric/full_eval.sh {own_results.relative_to(ws.root)}" in done.stdout
    ws.run(["sh", "scripts/metric/full_eval.sh", str(own_results.relative_to(ws.root))])
    assert (own_results.parent / "merged_metrics" / "summary_dmm2019.json").is_file()

    # -- 6. Test-dev proposals (the online proposal net), evaluation of the online run's own model, submission
    write_propnet(ws.root / "experiments" / "propnet" / "online_ytb" / "model_0225000.pth")
    ws.run(["sh", "scripts/extract/extract_online_valid.sh"], *EXTRACT)
    assert len(list((ws.root / PROPS / "ytb_ot/inference/youtubevos_testdev_meta/videos_all").glob("*.pth"))) == 2
    done = ws.run(readme_command("sh", "scripts/eval/eval_testdev.sh"), *MODEL)
    assert f"checkpoint {own_online.relative_to(ws.root)}: the online run's own" in done.stdout
    testdev = online_run / "eval" / own_online.name / "valid" / "merged"
    valid = frames_of(root / "valid", split_videos(root / "valid" / "meta.json"))
    assert pngs(testdev) == valid
    done = ws.run(readme_command("sh", "scripts/submit.sh"))
    with zipfile.ZipFile(testdev.parent / "submission_valid.zip") as z:
        assert sorted(z.namelist()) == sorted(f"Annotations/{v}/{f}.png" for v, fs in valid.items() for f in fs)
    assert digest(released_online) == before

    # -- the other extraction scripts, into folders of their own
    write_propnet(ws.root / "experiments" / "propnet" / "join_ytb_bin" / "model_0172500.pth")
    for script, kept in (("extract_coco_train3k.sh", "videos_top50"), ("extract_coco_trainval.sh", "videos_top50"),
                         ("extract_coco_online.sh", "videos_top90"), ("extract_ytb_trainval.sh", "videos_all")):
        out = ws.root / PROPS / "extracted" / script
        ws.run(["sh", f"scripts/extract/{script}"], *EXTRACT, OUT_DIR=str(out),
               WEIGHTS="experiments/propnet/join_ytb_bin/model_0172500.pth")
        assert (out / "predictions.pth").is_file() and any((out / kept).glob("*.pth")), script

    # -- 4 again, from the released 1-epoch model where MODEL_ZOO.md puts it (2019's enc_opt.pt + dec_opt.pt)
    (ws.root / DMM / "ytb_train_x101").rename(ws.root / DMM / "ytb_train_x101_mine")
    released_r101 = ws.root / DMM / "ytb_train_x101" / "epo01_iter01640"
    write_dmmnet(released_r101, "pair+opt", seed=7)
    done = ws.run(online, "--overwrite", *TRAIN)
    assert f"[online] starting from {released_r101.relative_to(ws.root)}: the newest checkpoint of" in done.stdout
    assert "optimizers restored from" in done.stderr and "enc_opt.pt + " in done.stderr
    assert newest(online_run).name == own_online.name and digest(released_online) == before

    # -- Small or custom datasets: train_all, then the split rule with smaller counts
    generate(ws.root / "datasets" / "mydata", SyntheticConfig(num_train=46, num_valid=1, num_frames=3, height=64,
                                                               width=112, seed=1, max_targets=2), progress=False)
    mine = ws.root / PROPS / "mydata"
    write_predictions(mine / "predictions.pth", ws.root / "datasets" / "mydata", "train_all", splits, 4, seed=8)
    ws.run(readme_command("python", "src/tools/reduce_pth_size_by_videos.py", f"{PROPS}/mydata/predictions.pth"))
    assert len(list((mine / "videos_top50").glob("*.pth"))) == 46
    ws.run(readme_command("python", "-m", "dmm.train"), *TRAIN, "OUTPUT_DIR", f"{DMM}/mydata")
    assert newest(ws.root / DMM / "mydata").name == "epo00_iter00001"
    ws.run(readme_command("python", "src/tools/make_splits.py", "--root", "datasets/mydata"))
    assert [len(split_videos(splits / f"{name}_meta.json")) for name in ("train3k", "val200", "test271")] == [40, 5, 1]

    # -- Your own video: a folder of frames, then an mp4 of the same frames
    video = sorted((root / "valid" / "JPEGImages").iterdir())[0]
    frames = ws.root / "my_frames"
    frames.mkdir()
    for jpg in sorted(video.glob("*.jpg")):
        (frames / jpg.name).write_bytes(jpg.read_bytes())
    first_mask = sorted((root / "valid" / "Annotations" / video.name).glob("*.png"))[0]
    (ws.root / "first_frame_mask.png").write_bytes(first_mask.read_bytes())
    segment = readme_command("python", "-m", "dmm.segment")
    ws.run(segment, *MODEL)
    assert sorted(p.stem for p in (ws.root / "out" / "masks").glob("*.png")) == sorted(p.stem for p in frames.iterdir())
    assert (ws.root / "out" / "overlay.gif").is_file()
    writer = cv2.VideoWriter(str(ws.root / "my_video.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5, (112, 64))
    for jpg in sorted(frames.iterdir()):
        writer.write(cv2.imread(str(jpg)))
    writer.release()
    mp4 = [w if w != "my_frames/" else "my_video.mp4" for w in segment]
    mp4 = [w if w != "out/" else "out_mp4/" for w in mp4]
    ws.run(mp4, *MODEL)
    masks = sorted((ws.root / "out_mp4" / "masks").glob("*.png"))
    assert len(masks) == len(list(frames.iterdir()))
    assert np.asarray(Image.open(masks[0])).shape == (64, 112)
