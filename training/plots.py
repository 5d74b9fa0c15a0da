"""Pictures of an evaluation: error against gap length per method, and filmstrips of a few windows
(ground truth beside each method) so a number can be checked against what the motion looks like;
and of a training run: its log's losses and validation ratios."""
from __future__ import annotations

import csv
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from model.skeleton import PARENTS  # noqa: E402
from model.library import facing_frame  # noqa: E402


def error_vs_gap(inbetween: dict, path: str) -> None:
    gaps = sorted(inbetween, key=int)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for method in inbetween[gaps[0]]:
        ys = [inbetween[g][method]["mpjpe_mm"] for g in gaps]
        if all(y is not None for y in ys):
            ax.plot([int(g) for g in gaps], ys, "o-", label=method)
    ax.set_xlabel("gap (frames at 30 fps)"); ax.set_ylabel("MPJPE over the gap (mm)")
    ax.set_title("In-betweening error"); ax.grid(alpha=0.3); ax.legend()
    fig.tight_layout(); fig.savefig(path, dpi=120); plt.close(fig)


def _draw(ax, pose: np.ndarray, color: str, alpha: float = 1.0) -> None:
    """A side view: forward (canonical +Z) to the right, up is up."""
    for j, p in enumerate(PARENTS):
        if p >= 0:
            ax.plot(pose[[p, j], 2], pose[[p, j], 1], color=color, alpha=alpha, lw=1.5)


def filmstrips(film: dict[str, np.ndarray], out_dir: str, context: int, frames: int = 6) -> list[str]:
    """One PNG per window: a row per method (ground truth first, and faintly behind every row), a
    column per frame from the last context frame to the target. film: method -> (K, T, J, 3)."""
    paths = []
    gt = film["ground_truth"]
    cols = np.linspace(context - 1, gt.shape[1] - 1, frames).round().astype(int)
    for k in range(len(gt)):
        frame = facing_frame(gt[k, context - 1])
        canon = {m: frame.to_canonical(w[k:k + 1])[0] for m, w in film.items()}
        lo, hi = canon["ground_truth"].min((0, 1)), canon["ground_truth"].max((0, 1))
        fig, axes = plt.subplots(len(canon), frames, figsize=(1.6 * frames, 1.9 * len(canon)), squeeze=False)
        for r, (method, seq) in enumerate(canon.items()):
            for c, t in enumerate(cols):
                ax = axes[r, c]
                if method != "ground_truth":
                    _draw(ax, canon["ground_truth"][t], "0.7", 0.6)
                _draw(ax, seq[t], "k" if method == "ground_truth" else "C3")
                ax.set_xlim(lo[2] - 0.3, hi[2] + 0.3); ax.set_ylim(-0.05, hi[1] + 0.1)
                ax.set_aspect("equal"); ax.set_xticks([]); ax.set_yticks([])
                if r == 0:
                    ax.set_title(f"frame {t}", fontsize=8)
                if c == 0:
                    ax.set_ylabel(method, fontsize=8)
        fig.tight_layout()
        path = os.path.join(out_dir, f"filmstrip_{k}.png")
        fig.savefig(path, dpi=100); plt.close(fig)
        paths.append(path)
    return paths


def plot_log(log_path: str) -> None:
    """A training log's losses and its held-out validation ratios, beside the CSV (log.png)."""
    with open(log_path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    steps = [int(r["step"]) for r in rows]
    for key in ("rec", "pos", "app", "gen", "motion", "kl", "adv", "d_adv"):
        vals = [float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows]
        axes[0].plot(steps, vals, label=key)
    axes[0].set_yscale("log"); axes[0].set_xlabel("step"); axes[0].legend(); axes[0].set_title("training losses")
    for key, label in (("val_ratio30", "30-frame gap"), ("val_ratiokeys10", "keys every 10")):
        val = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
        if val:
            axes[1].plot(*zip(*val), marker="o", label=label)
    axes[1].legend(); axes[1].set_xlabel("step"); axes[1].set_title("held-out in-betweening: model / linear")
    fig.tight_layout(); fig.savefig(os.path.splitext(log_path)[0] + ".png", dpi=90); plt.close(fig)
