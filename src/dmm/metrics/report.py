"""Reports of the scores: the README's table, CSV files, the JSON summary, a bar chart, and
the split meta files that restrict videos and give object categories.

Every file is written atomically (``dmm.io``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path
from typing import Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tabulate import tabulate

from dmm.errors import InputError, MissingInputError
from dmm.io import atomic_path, write_text
from dmm.metrics.inputs import record_of
from dmm.metrics.results import STAT_KEYS, SUMMARY_KEYS, VideoScores

PER_VIDEO_CSV = "per_video.csv"
PER_OBJECT_CSV = "per_object.csv"


def load_split_meta(path: str | os.PathLike) -> dict[str, dict[int, str | None]]:
    """``{video: {object id: category or None}}`` of a YouTube-VOS style meta.json
    (``{"videos": {vid: {"objects": {"<id>": {"category": ...}}}}}``)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"meta file {path} does not exist")
    try:
        meta = json.loads(path.read_text())
        return {
            video: {int(obj): info.get("category") for obj, info in entry.get("objects", {}).items()}
            for video, entry in meta["videos"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise InputError(f"{path}: not a readable meta.json with videos/objects ({err!r})") from None


def load_seen_categories(path: str | os.PathLike) -> set[str]:
    """Categories seen in training: those of the objects of a meta.json, the items of a JSON
    list, or the non-empty lines of a text file."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"seen-categories file {path} does not exist")
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise InputError(f"{path}: cannot read seen categories ({err})") from None
        if isinstance(data, list):
            return {str(c) for c in data}
        return {c for objects in load_split_meta(path).values() for c in objects.values() if c is not None}
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


#: results folder names that say nothing of what made them (``python -m dmm.test`` writes ``merged``)
GENERIC_NAMES = ("merged",)
_PRODUCER_DETAIL = re.compile(r" \(\d+ bytes, modified \d+\)$")


def method_name(res_dir: str | os.PathLike, name: str | None = None) -> str:
    """The ``Method`` of a results folder's table row: ``name`` when given; else what its record
    ``<results>.source.json`` says produced it (a checkpoint as ``<run>/<checkpoint folder>``,
    a baseline by its name); else the folder's name, with its two parent folders when that name
    is a generic one (``merged``)."""
    if name:
        return name
    record = record_of(res_dir)
    try:
        producer = json.loads(record.read_text()).get("producer") if record.is_file() else None
    except (OSError, ValueError, AttributeError):
        producer = None
    if isinstance(producer, str) and producer:
        path = Path(_PRODUCER_DETAIL.sub("", producer))
        if path.suffix in (".pt", ".pth"):
            path = path.parent
        return "/".join(path.parts[-2:]) if path.is_absolute() else str(path)
    parts = Path(os.path.abspath(res_dir)).parts
    return "/".join(parts[-3:]) if parts[-1] in GENERIC_NAMES else parts[-1]


def format_table(summary: Mapping[str, float], method: str) -> str:
    """The original README's table: one row, ``method``, the six statistics, then J&F
    (``JF_mean``), 3 decimals."""
    row = [method] + [summary[key] for key in SUMMARY_KEYS]
    return tabulate([row], headers=["Method", *SUMMARY_KEYS], tablefmt="github", floatfmt=".3f")


def format_table_2019(summary: Mapping, method: str) -> str:
    """The 2019 code's table (``tools/davis_eval.py``): ``method`` and the six dataset numbers
    as it printed them (``summary["printed"]``), then J&F marked as not printed by it."""
    row = [method, *summary["printed"], f"{summary['global']['JF_mean']:.3f}"]
    table = tabulate([row], headers=["Method", *STAT_KEYS, "JF_mean*"], tablefmt="github", disable_numparse=True)
    return f"{table}\n* {summary['note']}"


def format_youtube_table(youtube: Mapping[str, float | int | None]) -> str:
    """YouTube-VOS overall table: G, J and F for seen and unseen categories; when G cannot be
    computed, a line saying why follows."""
    keys = ("G", "J_seen", "J_unseen", "F_seen", "F_unseen", "n_seen", "n_unseen")
    row = ["-" if youtube[k] is None else youtube[k] for k in keys]
    table = tabulate([row], headers=list(keys), tablefmt="github", floatfmt=".3f")
    if youtube["G"] is not None:
        return table
    missing = [group for group in ("seen", "unseen") if not youtube[f"n_{group}"]]
    return f"{table}\nG: - (no {' and no '.join(missing)} categories in this split)"


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def write_csvs(csv_dir: str | os.PathLike, videos: Sequence[VideoScores], summary: Mapping) -> list[Path]:
    """Write ``per_video.csv`` (one row per scored video, then "GLOBAL") and
    ``per_object.csv`` (one row per object; statistics empty when no frame is scored)."""
    csv_dir = Path(csv_dir)
    video_rows = [[video, *(values[k] for k in SUMMARY_KEYS)] for video, values in summary["videos"].items()]
    video_rows.append(["GLOBAL", *(summary["global"][k] for k in SUMMARY_KEYS)])
    object_rows = []
    for video in videos:
        for obj in video.objects:
            stats = obj.statistics()
            values = [stats[k] for k in STAT_KEYS] if stats else [""] * len(STAT_KEYS)
            object_rows.append(
                [video.video, obj.object_id, obj.first_frame or "", int(obj.false_object), len(obj.frames), *values]
            )
    paths = [csv_dir / PER_VIDEO_CSV, csv_dir / PER_OBJECT_CSV]
    write_text(paths[0], _csv_text(["video", *SUMMARY_KEYS], video_rows))
    write_text(
        paths[1],
        _csv_text(["video", "object", "first_frame", "false_object", "n_frames", *STAT_KEYS], object_rows),
    )
    return paths


def plot_video_scores(path: str | os.PathLike, summary: Mapping, title: str = "J&F per video") -> None:
    """Bar chart (PNG) of each video's JF_mean, best first, with the global mean as a line."""
    items = sorted(summary["videos"].items(), key=lambda kv: -kv[1]["JF_mean"])
    names = [name for name, _ in items]
    values = [v["JF_mean"] for _, v in items]
    fig = Figure(figsize=(max(6.0, 0.25 * len(names) + 2), 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.bar(range(len(names)), values, color="tab:blue")
    ax.axhline(summary["global"]["JF_mean"], color="tab:red", linestyle="--",
               label=f"global J&F = {summary['global']['JF_mean']:.3f}")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    ax.set_ylim(0, 1)
    ax.set_ylabel("J&F mean")
    ax.set_title(title)
    ax.legend(loc="lower left")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
