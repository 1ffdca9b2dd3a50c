"""Training plots written beside the checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..io import atomic_path  # noqa: E402


def plot_loss_curves(metrics_path: str | Path, out_png: str | Path) -> None:
    """Loss terms (and validation scores, when logged) against the iteration, from ``metrics.jsonl``."""
    metrics_path = Path(metrics_path)
    if not metrics_path.exists():
        return
    records = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    losses = [r for r in records if "total" in r]
    vals = [r for r in records if any(k.startswith("val_") for k in r)]
    if not losses:
        return
    fig, axes = plt.subplots(1, 2 if vals else 1, figsize=(11 if vals else 6, 4), squeeze=False)
    ax = axes[0, 0]
    its = [r["iteration"] for r in losses]
    for key in ("total", "match", "matched_iou", "refined_iou"):
        ax.plot(its, [r[key] for r in losses], label=key)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title("training losses")
    ax.legend()
    ax.grid(alpha=0.3)
    if vals:
        ax = axes[0, 1]
        for key in sorted({k for r in vals for k in r if k.startswith("val_")}):
            pts = [(r["epoch"], r[key]) for r in vals if key in r]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=key[4:])
        ax.set_xlabel("epoch")
        ax.set_title("validation")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
