"""The 2019 scoring protocol (``--protocol dmm2019``) against ``metric2019.pt``: the 2019 code's
own per-pair J and F, per-object statistics, per-video means and table on a small
YouTube-VOS-like set, from the 2019 layout (input-size ``merged/`` maps) and from this
project's layout (frame-size maps and a ``<results>.source.json`` record); the same fixture's
davis2017-evaluation numbers under ``--protocol davis``; bad inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from dmm.cli import run
from dmm.config import load_config
from dmm.data.palette import save_palette_png
from dmm.engine.labels import compose_labels
from dmm.engine.results import provenance, record_path
from dmm.io import write_json
from dmm.metrics import MetricsInputError, evaluate_folders, score_folders
from dmm.metrics.__main__ import main
from dmm.metrics.dmm2019 import (
    decay_bounds_2019,
    nearest_exact_index,
    record_of,
    recover_input_labels,
    statistics_2019,
)
from dmm.metrics.measures import dilation_radius
from dmm.metrics.statistics import sequence_statistics
from tests.faithfulness.golden import load

from .metric_masks import write_video

REPO = Path(__file__).resolve().parents[2]
TOL = 1e-9
INPUT = (255, 448)


# --------------------------------------------------------------------------- the fixture on disk


def project_labels(small: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """A frame-size map (h, w) as ``python -m dmm.test`` writes it with TEST.LABELS_AT input,
    from an input-size label map (H, W) uint8 (one probability map per id)."""
    n = max(int(small.max()), 1)
    probs = torch.stack([torch.from_numpy(small == k + 1).float() for k in range(n)])
    return compose_labels(probs, list(range(1, n + 1)), frame_size, "input")


@pytest.fixture(scope="module")
def golden() -> dict:
    return load("metric2019")


@pytest.fixture(scope="module")
def written(golden: dict, tmp_path_factory) -> Path:
    """The fixture's videos as folders: ``gt/`` (its PNG files), ``merged/`` (the 2019 layout: the
    input-size maps from the start frame on), ``project/merged/`` (every frame at the frame size,
    background before the start frame, with its record), ``davis/`` (the maps upsampled to the
    ground truth's size by PIL NEAREST) and ``meta.json`` (the split json)."""
    root = tmp_path_factory.mktemp("metric2019")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small maps: more threads only contend for the 2 CPUs
    try:
        write_fixture(golden, root)
    finally:
        torch.set_num_threads(threads)
    return root


def write_fixture(golden: dict, root: Path) -> None:
    """The folders of ``written`` under ``root``."""
    meta: dict = {"videos": {}}
    for v in golden["videos"]:
        name, size = v["name"], (v["height"], v["width"])
        (root / "gt" / name).mkdir(parents=True)
        for frame, data in zip(v["frames"], v["gt_png"]):
            (root / "gt" / name / f"{frame}.png").write_bytes(data.numpy().tobytes())
        preds = {frame: m.numpy() for frame, m in zip(v["pred_frames"], v["pred"])}
        for folder in ("merged", "project/merged", "davis"):
            (root / folder / name).mkdir(parents=True)
        for frame in v["frames"]:
            small = preds.get(frame)
            if small is not None:
                save_palette_png(root / "merged" / name / f"{frame}.png", small)
                big = np.asarray(Image.fromarray(small).resize((size[1], size[0]), Image.NEAREST))
                save_palette_png(root / "davis" / name / f"{frame}.png", big)
            labels = np.zeros(size, np.uint8) if small is None else project_labels(small, size)
            save_palette_png(root / "project" / "merged" / name / f"{frame}.png", labels)
        meta["videos"][name] = {"objects": {oid: {"category": "thing", "frames": frames}
                                            for oid, frames in v["split_objects"]}}
    (root / "meta.json").write_text(json.dumps(meta))
    write_json(record_path(root / "project" / "merged"), provenance(load_config(None, []), "metric2019 fixture"))


def cli_2019(root: Path, results: Path, out: Path, *extra: str) -> dict:
    assert main(["--gt-dir", str(root / "gt"), "--results-dir", str(results), "--split-meta",
                 str(root / "meta.json"), "--protocol", "dmm2019", "--processes", "1", "--json", str(out),
                 *extra]) == 0
    return json.loads(out.read_text())


def printed_row(stdout: str) -> list[str]:
    """The cells of the table row of ``python -m dmm.metrics`` (after the method name)."""
    rows = [line for line in stdout.splitlines() if line.startswith("| ")]
    return [cell.strip() for cell in rows[1].strip("|").split("|")][1:]


def differences_2019(summary: dict, golden: dict) -> dict[str, float]:
    """Largest |difference| between the JSON summary of dmm2019 and the fixture's 2019 numbers at
    each level; the integers and names (objects, pairs, counts, tolerances) must be equal."""
    ref = golden["orig2019"]
    diff = {"pair": 0.0, "object": 0.0, "video": 0.0, "table": 0.0}
    scored = [name for name in ref["order"] if ref["videos"][name]["n_objects"]]
    assert list(summary["videos"]) == scored  # split order, videos with objects
    assert list(summary["scored"]) == ref["order"]
    for name, info in summary["scored"].items():
        r = ref["videos"][name]
        assert (info["n_objects"], info["bound_pix"], info["pairs"]) == (r["n_objects"], r["bound_pix"], r["pairs"])
    objects = {(o["video"], o["object"]): o for o in summary["objects"]}
    assert sorted(objects) == sorted((n, k) for n in ref["order"] for k in ref["videos"][n]["objects"])
    for (name, obj_id), obj in objects.items():
        r = ref["videos"][name]
        k = r["objects"].index(obj_id)
        assert obj["pairs"] == r["pairs"]
        assert obj["counts_J"] == r["counts_J"][k].tolist() and obj["counts_F"] == r["counts_F"][k].tolist()
        for m in "JF":
            raw = r[m]["raw"][k].numpy()
            assert np.isnan(raw[0]) and np.isnan(raw[-1]) and len(obj[m]) == len(raw) - 2
            diff["pair"] = max(diff["pair"], float(np.abs(np.asarray(obj[m]) - raw[1:-1]).max()))
            for stat in ("mean", "recall", "decay", "std"):
                diff["object"] = max(diff["object"], abs(obj[f"{m}_{stat}"] - float(r[m][stat][k])))
    for name, values in ref["derived_per_video"].items():
        diff["video"] = max([diff["video"], *(abs(summary["videos"][name][key] - x) for key, x in values.items())])
    diff["table"] = max(abs(summary["global"][key] - x) for key, x in ref["table"].items())
    assert summary["printed"] == ref["printed"]
    return diff


# --------------------------------------------------------------------------- the fixture


def test_dmm2019_reproduces_the_2019_code_on_its_merged_folder(written: Path, golden: dict, tmp_path: Path, capsys):
    summary = cli_2019(written, written / "merged", tmp_path / "s.json")
    out = capsys.readouterr().out
    assert printed_row(out)[:6] == golden["orig2019"]["printed"]
    assert "protocol dmm2019: the 2019 code's scoring: comparable with the paper's table" in out
    assert "1 videos score no object" in out and "f_360x640_empty_first" in out
    diff = differences_2019(summary, golden)
    assert all(d <= TOL for d in diff.values()), diff
    table = summary["global"]
    assert table["JF_mean"] == pytest.approx((table["J_mean"] + table["F_mean"]) / 2)
    assert "not printed" in summary["note"]


def test_dmm2019_scores_this_projects_folder_as_the_2019_code(written: Path, golden: dict, tmp_path: Path):
    """Frame-size maps (python -m dmm.test's, made from the same input-size maps) with their
    record: the public command in a subprocess gives the same JSON, number for number."""
    results = written / "project" / "merged"
    before = snapshot(results.parent)
    done = subprocess.run(
        [sys.executable, "-m", "dmm.metrics", "--gt-dir", str(written / "gt"), "--results-dir", str(results),
         "--split-meta", str(written / "meta.json"), "--protocol", "dmm2019", "--processes", "1",
         "--json", str(tmp_path / "project.json")],
        capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert printed_row(done.stdout)[:6] == golden["orig2019"]["printed"]
    project = json.loads((tmp_path / "project.json").read_text())
    diff = differences_2019(project, golden)
    assert all(d <= TOL for d in diff.values()), diff
    assert project == cli_2019(written, written / "merged", tmp_path / "merged.json")
    assert snapshot(results.parent) == before  # nothing written beside or into the results


def test_davis_protocol_gives_davis2017_evaluation_numbers(written: Path, golden: dict, tmp_path: Path, capsys):
    """The fixture's predictions upsampled to the ground truth's size (PIL NEAREST) under
    ``--protocol davis``: davis2017-evaluation's per-frame J and F, tolerances, per-object
    statistics and table on videos a-e, and the fixture's gap to the 2019 table."""
    ref = golden["davis2017"]
    sizes = {v["name"]: (v["height"], v["width"]) for v in golden["videos"]}
    videos = score_folders(written / "gt", written / "davis", videos=ref["scored_videos"], processes=1,
                           protocol="davis")
    worst = 0.0
    for video in videos:
        r = ref["videos"][video.video]
        assert [o.object_id for o in video.objects] == r["objects"]
        assert dilation_radius(sizes[video.video]) == r["bound_pix"]
        for k, obj in enumerate(video.objects):
            assert list(obj.frames) == r["frames"]
            worst = max(worst, float(np.abs(obj.j - r["J"][k].numpy()).max()),
                        float(np.abs(obj.f - r["F"][k].numpy()).max()))
            for key, value in obj.statistics().items():
                worst = max(worst, abs(value - float(r[key][k])))
    assert worst <= TOL
    meta = {"videos": {name: {"objects": {}} for name in ref["scored_videos"]}}
    (tmp_path / "davis_meta.json").write_text(json.dumps(meta))
    assert main(["--gt-dir", str(written / "gt"), "--results-dir", str(written / "davis"), "--protocol", "davis",
                 "--split-meta", str(tmp_path / "davis_meta.json"), "--processes", "1",
                 "--json", str(tmp_path / "davis.json")]) == 0
    table = json.loads((tmp_path / "davis.json").read_text())["global"]
    assert max(abs(table[key] - x) for key, x in ref["table"].items()) <= TOL
    paper = evaluate_folders(written / "gt", written / "merged", processes=1, protocol="dmm2019",
                             split_meta=written / "meta.json")["global"]
    assert max(abs(table[key] - paper[key] - x) for key, x in golden["gap"].items()) <= TOL
    capsys.readouterr()
    # video f: the first ground-truth frame is empty, so no id is an object; davis2017-evaluation
    # stops the run (sys.exit); here it is one error line naming the video and the id
    f_video = "f_360x640_empty_first"
    assert f_video in ref["exits"]
    meta = {"videos": {f_video: {"objects": {}}}}
    (tmp_path / "f_meta.json").write_text(json.dumps(meta))
    args = ["--gt-dir", str(written / "gt"), "--results-dir", str(written / "davis"), "--protocol", "davis",
            "--split-meta", str(tmp_path / "f_meta.json"), "--processes", "1"]
    assert run(main, args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: video f_360x640_empty_first: predicted ids 1 ") and err.count("\n") == 1
    (video,) = score_folders(written / "gt", written / "davis", videos=[f_video], processes=1, protocol="davis",
                             extra_ids="score")
    (obj,) = video.objects
    assert obj.false_object and obj.j.tolist() == [0.0, 0.0, 0.0]


# --------------------------------------------------------------------------- the pieces


@pytest.mark.parametrize("src,dst", [((255, 448), (720, 1280)), ((255, 448), (360, 640)), ((255, 448), (480, 854)),
                                     ((255, 448), (1080, 1920)), ((255, 448), (255, 448)), ((37, 53), (100, 211))])
def test_input_size_maps_are_recovered_exactly(src, dst):
    rng = np.random.default_rng(sum(dst))
    small = rng.integers(0, 4, size=src, dtype=np.uint8)
    big = cv2.resize(small, (dst[1], dst[0]), interpolation=cv2.INTER_NEAREST_EXACT)
    np.testing.assert_array_equal(recover_input_labels(big, src), small)
    if dst != src:  # at the same size every map is its own resize
        rows = nearest_exact_index(src[0], dst[0])
        r = int(np.flatnonzero(rows[1:] == rows[:-1])[0]) + 1  # an output row that repeats a source row
        spoiled = big.copy()
        spoiled[r, dst[1] // 3] += 1
        assert recover_input_labels(spoiled, src) is None


def test_shrunk_axes_cannot_be_recovered():
    small = np.zeros((255, 448), np.uint8)
    shrunk = cv2.resize(small, (448, 200), interpolation=cv2.INTER_NEAREST_EXACT)
    assert recover_input_labels(shrunk, (255, 448)) is None


def test_2019_statistics_differ_from_davis_where_the_2019_code_did():
    x = np.array([1.0, 0.8, 0.6, np.nan])  # the last bin holds a NaN: the 2019 mean keeps it
    assert np.isnan(statistics_2019(x)["decay"]) and not np.isnan(sequence_statistics(x).decay)
    assert decay_bounds_2019(300) == [0, 75, 150, 224, 299 - 256]  # uint8 bounds wrap beyond 255
    y = np.linspace(1, 0, 9)
    assert statistics_2019(y)["decay"] == pytest.approx(sequence_statistics(y).decay)
    assert statistics_2019(y)["std"] == pytest.approx(np.std(y))


def test_record_is_where_the_engine_writes_it(tmp_path: Path):
    for folder in (tmp_path / "eval" / "trainval" / "merged", Path("relative") / "merged"):
        assert record_of(folder) == Path(os.path.abspath(record_path(folder)))


# --------------------------------------------------------------------------- bad input

FRAME, SMALL = (45, 70), (20, 30)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folder`` with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    """One 45x70 video of 5 frames (objects 1 and 2), this project's results made from 20x30 maps
    with their record, and the split json."""
    yy, xx = np.mgrid[: SMALL[0], : SMALL[1]]
    gt, res = [], []
    for t in range(5):
        small = np.zeros(SMALL, np.uint8)
        small[((yy - 8) / 5) ** 2 + ((xx - 8 - t) / 6) ** 2 <= 1] = 1
        small[12:18, 18:26 - t] = 2
        res.append(cv2.resize(small, (FRAME[1], FRAME[0]), interpolation=cv2.INTER_NEAREST_EXACT))
        gt.append(np.roll(res[-1], t % 2, axis=1))
    write_video(tmp_path / "gt", "v", gt)
    write_video(tmp_path / "res", "v", res)
    meta = {"videos": {"v": {"objects": {"1": {"frames": ["00000", "00005"]}, "2": {"frames": ["00000"]}}}}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    write_json(record_path(tmp_path / "res"), {"producer": "test", "config": "-", "input_size": list(SMALL),
                                               "labels_at": "input"})
    return tmp_path


def tiny_args(root: Path, *extra: str) -> list[str]:
    return ["--gt-dir", str(root / "gt"), "--results-dir", str(root / "res"), "--split-meta", str(root / "meta.json"),
            "--protocol", "dmm2019", "--processes", "1", *extra]


def fails(root: Path, args: list[str], capsys) -> str:
    """Run the command on bad input: status 2, one ``error:`` line, the results untouched."""
    before, beside = snapshot(root / "res"), sorted(p.name for p in root.iterdir())
    capsys.readouterr()
    assert run(main, args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert snapshot(root / "res") == before and sorted(p.name for p in root.iterdir()) == beside
    return err


def test_tiny_results_score_with_the_record_or_the_option(tiny: Path, tmp_path: Path, capsys):
    with_record = cli_2019(tiny, tiny / "res", tmp_path / "a.json")
    record_path(tiny / "res").unlink()
    with_option = cli_2019(tiny, tiny / "res", tmp_path / "b.json", "--input-size", *map(str, SMALL))
    assert with_record == with_option
    assert [o["object"] for o in with_record["objects"]] == [1, 2]
    assert 0 < with_record["global"]["J_mean"] < 1 and with_record["global"]["F_mean"] > with_record["global"]["J_mean"]


def test_a_map_at_neither_size_is_named(tiny: Path, capsys):
    write_video(tiny / "res", "v", [np.zeros((30, 30), np.uint8)], names=["00010"])
    err = fails(tiny, tiny_args(tiny), capsys)
    name = tiny / "res" / "v" / "00010.png"
    assert f"{name}: size 30 x 30 is neither the input size 20 x 30 nor the frame size 45 x 70" in err


def test_a_frame_size_map_that_is_no_upsampling_is_named(tiny: Path, capsys):
    labels = np.array(Image.open(tiny / "res" / "v" / "00005.png"))
    labels[0, 1] = 2
    write_video(tiny / "res", "v", [labels], names=["00005"])
    err = fails(tiny, tiny_args(tiny), capsys)
    assert f"{tiny / 'res' / 'v' / '00005.png'}: not a nearest (cv2.INTER_NEAREST_EXACT) upsampling" in err
    assert "TEST.LABELS_AT input" in err


def test_frame_size_maps_need_the_input_size(tiny: Path, capsys):
    record_path(tiny / "res").unlink()
    err = fails(tiny, tiny_args(tiny), capsys)
    assert "00005.png: a frame-size map (45 x 70)" in err and "--input-size H W" in err
    assert str(record_path(tiny / "res")) in err


def test_a_record_of_frame_size_labels_is_refused(tiny: Path, capsys):
    write_json(record_path(tiny / "res"), {"producer": "test", "config": "-", "input_size": list(SMALL),
                                           "labels_at": "frame"})
    err = fails(tiny, tiny_args(tiny), capsys)
    assert f"error: {record_path(tiny / 'res')}: the label maps" in err and "TEST.LABELS_AT input" in err


def test_frames_smaller_than_the_input_are_refused(tiny: Path, capsys):
    err = fails(tiny, tiny_args(tiny, "--input-size", "50", "80"), capsys)
    assert "00005.png: the frame (45 x 70) is smaller than the input size 50 x 80" in err


def test_dmm2019_needs_the_split_meta_and_its_start_frame(tiny: Path, capsys):
    args = [a for a in tiny_args(tiny) if a not in ("--split-meta", str(tiny / "meta.json"))]
    assert "--protocol dmm2019 needs --split-meta" in fails(tiny, args, capsys)
    (tiny / "res" / "v" / "00000.png").unlink()
    err = fails(tiny, tiny_args(tiny), capsys)
    assert f"{tiny / 'res' / 'v' / '00000.png'}: missing" in err and "start frame 00000" in err
    with pytest.raises(MetricsInputError, match="for the dmm2019 protocol only"):
        score_folders(tiny / "gt", tiny / "res", protocol="youtubevos", input_size=SMALL)
