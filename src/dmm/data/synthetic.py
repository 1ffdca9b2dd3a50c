"""A synthetic video object segmentation dataset in the exact YouTube-VOS 2018 layout.

Run ``python -m dmm.data.synthetic --root datasets/synthetic`` (see ``--help``). It writes::

    <root>/train/{meta.json, JPEGImages, Annotations, Instances}   every frame annotated
    <root>/valid/{meta.json, JPEGImages, Annotations, Instances,   first appearances only
                  GroundTruth}                                     every frame, for scoring
    <root>/synthetic_record.json                                   what was drawn

Frames are named like YouTube-VOS: every 5th index, ``00000``, ``00005``, ``00010``, ...
Annotations are palette PNGs (DAVIS palette) whose pixel values are object ids. ``Instances``
PNGs (uint8) hold every visible instance: targets with their object id, unannotated
distractors with ids >= 100, 0 for background.

Each video: a textured background that pans; 1 to 5 (every 6th video: 7) textured target objects (ellipse,
rectangle, triangle, star, hexagon, diamond) that move fast, bounce off the borders, rotate,
scale and occlude each other in a fixed depth order; some targets enter after frame 0; some
videos use non-contiguous ids. Distractors copy a target's shape and size with another colour
and texture and cross that target's path, so tracking by overlap alone fails while each
target keeps one distinctive colour and texture. Everything is drawn from ``numpy``'s
generator seeded by (seed, split, video index), so a seed gives the same dataset.
"""

from __future__ import annotations

import colorsys
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from ..cli import command_parser, run
from ..errors import InputError, OutputExistsError, size_text
from ..io import atomic_dir
from .palette import save_palette_png

DISTRACTOR_ID_BASE = 100
FRAME_STEP = 5
SHAPES = ("ellipse", "rectangle", "triangle", "star", "hexagon", "diamond")
TEXTURES = ("stripes", "checker", "dots", "rings", "gradient")


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate. ``height`` x ``width`` is the frame size."""

    num_train: int = 40
    num_valid: int = 10
    num_frames: int = 20
    height: int = 256
    width: int = 448
    seed: int = 0
    max_targets: int = 7

    def __post_init__(self) -> None:
        if self.num_train < 0 or self.num_valid < 0 or self.num_train + self.num_valid == 0:
            raise InputError("need at least one video (num_train + num_valid > 0)")
        if self.num_frames < 2:
            raise InputError(f"num_frames must be >= 2, got {self.num_frames}")
        if self.height < 32 or self.width < 32:
            raise InputError(f"frame size must be at least 32 x 32, got {size_text((self.height, self.width))}")
        if not 1 <= self.max_targets < DISTRACTOR_ID_BASE:
            raise InputError(f"max_targets must be in [1, {DISTRACTOR_ID_BASE}), got {self.max_targets}")


# ------------------------------------------------------------------------------------------
# Drawing the scene
# ------------------------------------------------------------------------------------------


def _unit_polygon(shape: str, aspect: float) -> np.ndarray:
    """Vertices (K, 2) of a shape of radius ~1 centred at the origin, x scaled by ``aspect``."""
    if shape == "ellipse":
        angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        pts = np.stack([np.cos(angles), np.sin(angles)], 1)
    elif shape == "rectangle":
        pts = np.array([[-1, -0.7], [1, -0.7], [1, 0.7], [-1, 0.7]], dtype=np.float64)
    elif shape == "triangle":
        angles = np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        pts = np.stack([np.cos(angles), np.sin(angles)], 1) * 1.15
    elif shape == "star":
        angles = np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.15, 0.5)
        pts = np.stack([np.cos(angles) * radii, np.sin(angles) * radii], 1)
    elif shape == "hexagon":
        angles = np.arange(6) * np.pi / 3
        pts = np.stack([np.cos(angles), np.sin(angles)], 1)
    elif shape == "diamond":
        pts = np.array([[0, -1.2], [0.8, 0], [0, 1.2], [-0.8, 0]], dtype=np.float64)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return pts * np.array([aspect, 1.0])


def _fold(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect positions into [lo, hi] (straight motion that bounces off the borders)."""
    span = hi - lo
    y = np.mod(x - lo, 2 * span)
    return lo + np.where(y > span, 2 * span - y, y)


def _random_colour(rng: np.random.Generator, hue: float) -> list[int]:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, rng.uniform(0.65, 1.0), rng.uniform(0.7, 1.0))
    return [int(r * 255), int(g * 255), int(b * 255)]


def _appearance(rng: np.random.Generator, hue: float, texture: str) -> dict:
    """Colour and texture of an object: a base colour, a second colour, a pattern."""
    second_hue = hue + rng.choice([-1, 1]) * rng.uniform(0.08, 0.2)
    return {
        "colour": _random_colour(rng, hue),
        "colour2": [int(c * rng.uniform(0.2, 0.5)) for c in _random_colour(rng, second_hue)],
        "texture": texture,
        "frequency": float(rng.uniform(2.5, 4.5)),
        "angle": float(rng.uniform(0, np.pi)),
    }


def _trajectory(rng: np.random.Generator, cfg: SyntheticConfig, radius: float) -> dict:
    """Straight fast motion (4-9% of the width per frame, bouncing), rotation and scaling."""
    speed = rng.uniform(0.04, 0.09) * cfg.width
    heading = rng.uniform(0, 2 * np.pi)
    return {
        "start": [float(rng.uniform(radius, cfg.width - radius)),
                  float(rng.uniform(radius, cfg.height - radius))],
        "velocity": [float(speed * np.cos(heading)), float(speed * np.sin(heading) * 0.7)],
        "rotation": float(rng.uniform(0, 2 * np.pi)),
        "spin": float(rng.uniform(-0.15, 0.15)),
        "scale_amplitude": float(rng.uniform(0.0, 0.3)),
        "scale_period": float(rng.uniform(6, 16)),
        "scale_phase": float(rng.uniform(0, 2 * np.pi)),
    }


def _positions(traj: dict, radius: float, cfg: SyntheticConfig) -> np.ndarray:
    """Centres (T, 2) xy of a trajectory over the video."""
    t = np.arange(cfg.num_frames)[:, None]
    raw = np.array(traj["start"]) + t * np.array(traj["velocity"])
    margin = radius * 0.6
    x = _fold(raw[:, 0], margin, cfg.width - margin)
    y = _fold(raw[:, 1], margin, cfg.height - margin)
    return np.stack([x, y], 1)


def _draw_video_plan(rng: np.random.Generator, cfg: SyntheticConfig, split: str,
                     crowded: bool) -> dict:
    """Everything random about one video, as a JSON-able record (before rendering).

    ``crowded`` videos have ``cfg.max_targets`` targets, the others 1 to 5.
    """
    n_targets = int(rng.choice([1, 2, 2, 3, 3, 4, 5]))
    if crowded:
        n_targets = cfg.max_targets
    n_targets = min(n_targets, cfg.max_targets)
    if rng.random() < 0.3 and n_targets < DISTRACTOR_ID_BASE - 1:
        ids = sorted(int(i) for i in rng.choice(np.arange(1, min(3 * n_targets + 3, 99)),
                                                n_targets, replace=False))
    else:
        ids = list(range(1, n_targets + 1))
    hue0 = rng.uniform(0, 1)
    hues = [(hue0 + k / n_targets + rng.uniform(-0.03, 0.03)) % 1 for k in range(n_targets)]
    textures = list(rng.permutation(TEXTURES))
    objects = []
    for k, oid in enumerate(ids):
        radius = float(rng.uniform(0.09, 0.16) * cfg.height)
        start_frame = 0
        if k > 0 and rng.random() < 0.3:
            start_frame = int(rng.integers(1, max(2, cfg.num_frames // 2)))
        traj = _trajectory(rng, cfg, radius)
        objects.append({
            "id": oid,
            "distractor": False,
            "shape": str(rng.choice(SHAPES)),
            "aspect": float(rng.uniform(0.75, 1.3)),
            "radius": radius,
            "appearance": _appearance(rng, hues[k], str(textures[k % len(textures)])),
            "trajectory": traj,
            "start_frame": start_frame,
        })
    # Distractors: a copy of a target's shape and size, another look, crossing its path.
    n_distractors = int(rng.integers(1, 3)) + (1 if n_targets >= 4 else 0)
    for j in range(n_distractors):
        target = objects[int(rng.integers(len(objects)))]
        t_hue = None
        for _ in range(20):
            t_hue = rng.uniform(0, 1)
            if all(min(abs(t_hue - h), 1 - abs(t_hue - h)) > 0.12 for h in hues):
                break
        others = [t for t in TEXTURES if t != target["appearance"]["texture"]]
        traj = _trajectory(rng, cfg, target["radius"])
        first = max(target["start_frame"], 1)
        crossing = int(rng.integers(first, max(first + 1, cfg.num_frames - 1)))
        crossing = min(crossing, cfg.num_frames - 1)
        meet = _positions(target["trajectory"], target["radius"], cfg)[crossing]
        # Unfolded start so that the folded path passes through the target's centre at `crossing`.
        traj["start"] = [float(meet[0] - crossing * traj["velocity"][0]),
                         float(meet[1] - crossing * traj["velocity"][1])]
        traj["scale_amplitude"] = target["trajectory"]["scale_amplitude"]
        traj["scale_period"] = target["trajectory"]["scale_period"]
        traj["scale_phase"] = target["trajectory"]["scale_phase"]
        objects.append({
            "id": DISTRACTOR_ID_BASE + j,
            "distractor": True,
            "mimics": target["id"],
            "crossing_frame": crossing,
            "shape": target["shape"],
            "aspect": target["aspect"],
            "radius": target["radius"],
            "appearance": _appearance(rng, t_hue, str(rng.choice(others))),
            "trajectory": traj,
            "start_frame": 0,
        })
    depth = rng.permutation(len(objects))
    for obj, z in zip(objects, depth):
        obj["depth"] = int(z)  # larger is nearer the camera
    return {
        "split": split,
        "background": {
            "seed": int(rng.integers(2**31)),
            "velocity": [float(rng.uniform(-4, 4)), float(rng.uniform(-3, 3))],
            "hue": float(rng.uniform(0, 1)),
        },
        "objects": objects,
    }


def _background(plan: dict, cfg: SyntheticConfig) -> tuple[np.ndarray, int]:
    """A textured canvas larger than the frame (for panning) and its margin."""
    params = plan["background"]
    rng = np.random.default_rng(params["seed"])
    margin = int(np.ceil(max(abs(v) for v in params["velocity"]) * cfg.num_frames)) + 2
    h, w = cfg.height + 2 * margin, cfg.width + 2 * margin
    coarse = rng.uniform(0, 1, (max(2, h // 24), max(2, w // 24), 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    fine = rng.uniform(-1, 1, (h, w, 1)).astype(np.float32)
    base = np.array(colorsys.hsv_to_rgb(params["hue"], 0.35, 0.55), dtype=np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    waves = 0.5 + 0.5 * np.sin(xx * 0.11 + 2.0 * np.sin(yy * 0.05))[..., None]
    canvas = base * 255 * (0.55 + 0.5 * smooth) + 18 * fine + 22 * waves
    return np.clip(canvas, 0, 255).astype(np.float32), margin


def _pattern(kind: str, u: np.ndarray, v: np.ndarray, freq: float, angle: float) -> np.ndarray:
    """A texture in [0, 1] over object-local coordinates (radius ~1)."""
    a = u * np.cos(angle) + v * np.sin(angle)
    b = -u * np.sin(angle) + v * np.cos(angle)
    if kind == "stripes":
        return (np.sin(a * freq * np.pi) > 0).astype(np.float32)
    if kind == "checker":
        return ((np.sin(a * freq * 2) > 0) ^ (np.sin(b * freq * 2) > 0)).astype(np.float32)
    if kind == "dots":
        return ((np.sin(a * freq * 2.5) * np.sin(b * freq * 2.5)) > 0.35).astype(np.float32)
    if kind == "rings":
        return (np.sin(np.hypot(u, v) * freq * 3) > 0).astype(np.float32)
    if kind == "gradient":
        return np.clip(0.5 + 0.5 * a, 0, 1).astype(np.float32)
    raise ValueError(f"unknown texture {kind!r}")


def _render_video(plan: dict, cfg: SyntheticConfig) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Render frames ``(h, w, 3) uint8`` and instance maps ``(h, w) uint8`` of a plan."""
    canvas, margin = _background(plan, cfg)
    bg_v = np.array(plan["background"]["velocity"])
    objects = sorted(plan["objects"], key=lambda o: o["depth"])
    paths = {o["id"]: _positions(o["trajectory"], o["radius"], cfg) for o in objects}
    polygons = {o["id"]: _unit_polygon(o["shape"], o["aspect"]) for o in objects}
    frames, instances = [], []
    for t in range(cfg.num_frames):
        ox, oy = (margin + np.round(bg_v * t)).astype(int)
        image = canvas[oy:oy + cfg.height, ox:ox + cfg.width].copy()
        inst = np.zeros((cfg.height, cfg.width), np.uint8)
        for obj in objects:
            if t < obj["start_frame"]:
                continue
            traj = obj["trajectory"]
            scale = obj["radius"] * (1 + traj["scale_amplitude"] * np.sin(
                2 * np.pi * t / traj["scale_period"] + traj["scale_phase"]))
            theta = traj["rotation"] + traj["spin"] * t
            rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
            centre = paths[obj["id"]][t]
            pts = polygons[obj["id"]] @ rot.T * scale + centre
            x0, y0 = np.floor(pts.min(0)).astype(int)
            x1, y1 = np.ceil(pts.max(0)).astype(int) + 1
            x0, y0 = max(x0, 0), max(y0, 0)
            x1, y1 = min(x1, cfg.width), min(y1, cfg.height)
            if x1 <= x0 or y1 <= y0:
                continue
            mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
            cv2.fillPoly(mask, [np.round((pts - [x0, y0]) * 16).astype(np.int32)], 1,
                         lineType=cv2.LINE_8, shift=4)
            m = mask.astype(bool)
            if not m.any():
                continue
            yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
            local = np.stack([xx - centre[0], yy - centre[1]], -1) @ rot / scale
            app = obj["appearance"]
            p = _pattern(app["texture"], local[..., 0], local[..., 1], app["frequency"], app["angle"])
            tex = (np.array(app["colour"], np.float32) * (1 - p[..., None])
                   + np.array(app["colour2"], np.float32) * p[..., None])
            image[y0:y1, x0:x1][m] = tex[m]
            inst[y0:y1, x0:x1][m] = obj["id"]
        frames.append(np.clip(image, 0, 255).astype(np.uint8))
        instances.append(inst)
    return frames, instances


# ------------------------------------------------------------------------------------------
# Writing the dataset
# ------------------------------------------------------------------------------------------


def frame_names(num_frames: int) -> list[str]:
    """``00000``, ``00005``, ... (YouTube-VOS keeps every 5th frame)."""
    return [f"{i * FRAME_STEP:05d}" for i in range(num_frames)]


def _video_name(rng: np.random.Generator, taken: set[str]) -> str:
    while True:
        name = "".join(f"{b:02x}" for b in rng.integers(0, 256, 5))
        if name not in taken:
            taken.add(name)
            return name


def _write_video(split_dir: Path, split: str, name: str, plan: dict, cfg: SyntheticConfig) -> dict:
    """Render and write one video; return its record entry and its meta.json entry."""
    frames, instances = _render_video(plan, cfg)
    names = frame_names(cfg.num_frames)
    for sub in ("JPEGImages", "Annotations", "Instances") + (("GroundTruth",) if split == "valid" else ()):
        (split_dir / sub / name).mkdir(parents=True)
    target_ids = [o["id"] for o in plan["objects"] if not o["distractor"]]
    present: dict[int, list[str]] = {oid: [] for oid in target_ids}
    gts = []
    for fname, image, inst in zip(names, frames, instances):
        Image.fromarray(image).save(split_dir / "JPEGImages" / name / f"{fname}.jpg", quality=92)
        Image.fromarray(inst).save(split_dir / "Instances" / name / f"{fname}.png")
        gt = np.where(inst >= DISTRACTOR_ID_BASE, 0, inst).astype(np.uint8)
        gts.append(gt)
        for oid in np.unique(gt):
            if oid:
                present[int(oid)].append(fname)
    first = {oid: fr[0] for oid, fr in present.items() if fr}
    for fname, gt in zip(names, gts):
        if split == "train":
            save_palette_png(split_dir / "Annotations" / name / f"{fname}.png", gt)
        else:
            save_palette_png(split_dir / "GroundTruth" / name / f"{fname}.png", gt)
            new = [oid for oid, f in first.items() if f == fname]
            if new:
                ref = np.where(np.isin(gt, new), gt, 0).astype(np.uint8)
                save_palette_png(split_dir / "Annotations" / name / f"{fname}.png", ref)
    meta = {"objects": {
        str(oid): {"category": obj["shape"], "frames": present[oid]}
        for oid, obj in ((o["id"], o) for o in plan["objects"] if not o["distractor"])
        if present[oid]
    }}
    for obj in plan["objects"]:
        oid = obj["id"]
        if obj["distractor"]:
            obj["frames"] = [f for f, inst in zip(names, instances) if (inst == oid).any()]
            obj["first_frame"] = obj["frames"][0] if obj["frames"] else None
        else:
            obj["frames"] = present[oid]
            obj["first_frame"] = first.get(oid)
        obj["centres"] = _positions(obj["trajectory"], obj["radius"], cfg).round(2).tolist()
    record = dict(plan, frames=names, height=cfg.height, width=cfg.width)
    return {"record": record, "meta": meta}


def generate(root: str | os.PathLike, cfg: SyntheticConfig = SyntheticConfig(),
             overwrite: bool = False, progress: bool = True) -> Path:
    """Write the synthetic dataset at ``root`` atomically (a temp folder, then a rename).

    Refuses to replace an existing ``root`` unless ``overwrite``. Returns ``root``.
    """
    root = Path(root)
    if root.exists() and not overwrite:
        raise OutputExistsError(f"{root} already exists (pass --overwrite to replace it)")
    record: dict = {"config": cfg.__dict__, "frame_step": FRAME_STEP,
                    "distractor_id_base": DISTRACTOR_ID_BASE, "splits": {}}
    staging = root.with_name(root.name + ".new")
    if staging.exists():
        shutil.rmtree(staging)
    taken: set[str] = set()
    with atomic_dir(staging) as tmp:
        jobs = [("train", i) for i in range(cfg.num_train)] + [("valid", i) for i in range(cfg.num_valid)]
        metas: dict[str, dict] = {"train": {}, "valid": {}}
        for split, index in tqdm(jobs, desc="synthetic videos", disable=not progress):
            rng = np.random.default_rng([cfg.seed, ["train", "valid"].index(split), index])
            name = _video_name(rng, taken)
            plan = _draw_video_plan(rng, cfg, split, crowded=index % 6 == 5)
            out = _write_video(tmp / split, split, name, plan, cfg)
            metas[split][name] = out["meta"]
            record["splits"].setdefault(split, {})[name] = out["record"]
        for split, videos in metas.items():
            if videos:
                meta = {"videos": dict(sorted(videos.items()))}
                (tmp / split / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        (tmp / "synthetic_record.json").write_text(json.dumps(record, indent=1) + "\n")
    if root.exists():
        old = root.with_name(root.name + ".old")
        os.replace(root, old)
        os.replace(staging, root)
        shutil.rmtree(old)
    else:
        os.replace(staging, root)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("python -m dmm.data.synthetic", "Generate the synthetic dataset in YouTube-VOS 2018 layout.")
    parser.add_argument("--root", default="datasets/synthetic", help="output folder")
    parser.add_argument("--train-videos", type=int, default=SyntheticConfig.num_train, help="videos of the train split")
    parser.add_argument("--valid-videos", type=int, default=SyntheticConfig.num_valid, help="videos of the valid split")
    parser.add_argument("--frames", type=int, default=SyntheticConfig.num_frames, help="frames per video")
    parser.add_argument("--height", type=int, default=SyntheticConfig.height, help="frame height in pixels")
    parser.add_argument("--width", type=int, default=SyntheticConfig.width, help="frame width in pixels")
    parser.add_argument("--max-objects", type=int, default=SyntheticConfig.max_targets,
                        help="most target objects in a video")
    parser.add_argument("--seed", type=int, default=SyntheticConfig.seed, help="seed of the generator")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing root")
    args = parser.parse_args(argv)
    cfg = SyntheticConfig(args.train_videos, args.valid_videos, args.frames, args.height,
                          args.width, args.seed, args.max_objects)
    root = generate(args.root, cfg, overwrite=args.overwrite)
    print(f"wrote {cfg.num_train} train + {cfg.num_valid} valid videos to {root}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
