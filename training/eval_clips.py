"""The evaluation's motion: clips from a folder of BVH files or a split of the dataset cache, the
fixed windows every task of training/evaluate.py is scored on, and the model's batched runs on them."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np

from model.skeleton import FEET, NUM_JOINTS
from training.bvh import BVHError, Motion, load_bvh
from training.dataset import MotionDataset, find_bvh, floor_height, labels_for

STRIDE = 40  # a window starts every STRIDE frames of each clip
BATCH = 64  # model rows (windows x samples) per forward


@dataclass
class Clip:
    name: str
    positions: np.ndarray         # (F, J, 3), floor at y = 0
    action: str | None
    style: str | None
    motion: Motion | None = None  # rotations for SLERP (BVH input only)
    floor: float = 0.0            # what was subtracted from y

    def ground(self) -> np.ndarray:
        """Each foot joint's resting height (5th percentile), for foot skate."""
        return np.percentile(self.positions[:, FEET, 1], 5, axis=0)


def spread(n: int, k: int | None) -> np.ndarray:
    """k indices spread evenly over range(n) (all of them when k is None or >= n)."""
    return np.arange(n) if k is None or k >= n else np.unique(np.linspace(0, n - 1, k).round().astype(int))


def load_clips(data: str, fps: float | None = None, max_clips: int | None = None) -> list[Clip]:
    """A folder of BVH files (searched recursively) or 'cache:SPLIT' of the dataset cache."""
    if data.startswith("cache:"):
        ds = MotionDataset.load()
        idx = ds.clips(data[len("cache:"):])
        lab = lambda v, vocab: vocab[v] if v >= 0 else None
        return [Clip(ds.names[i], ds.clip(i), lab(ds.action[i], ds.actions), lab(ds.style[i], ds.styles))
                for i in np.array(idx)[spread(len(idx), max_clips)]]
    paths = find_bvh(data)
    if not paths:
        raise FileNotFoundError(f"No .bvh files under {data}")
    clips = []
    for p in np.array(paths)[spread(len(paths), max_clips)]:
        try:
            m = load_bvh(str(p), fps_override=fps)
        except BVHError as exc:
            print(f"skipped {exc}", file=sys.stderr)
            continue
        floor = floor_height(m.positions)
        pos = m.positions.copy()
        pos[..., 1] -= floor
        name = "/".join(os.path.abspath(p).split(os.sep)[-2:])  # as the dataset cache names clips
        clips.append(Clip(name, pos, *labels_for(str(p)), motion=m, floor=floor))
    return clips


def windows(clips: list[Clip], length: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Every `length`-frame window starting every STRIDE frames: (N, length, J, 3), [(clip, start)]."""
    idx = [(c, s) for c, clip in enumerate(clips) for s in range(0, len(clip.positions) - length + 1, STRIDE)]
    if not idx:
        return np.zeros((0, length, NUM_JOINTS, 3)), idx
    return np.stack([clips[c].positions[s:s + length] for c, s in idx]).astype(np.float64), idx


def seeds(seed: int, task: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, task]).integers(0, 2**31 - 1, n)


def run_model(gen, w: np.ndarray, mask: np.ndarray, seed: int, task: int, n: int = 1,
              actions: list | None = None, styles: list | None = None, temperature: float = 1.0) -> np.ndarray | None:
    """The model on each window, in batches: (N, L, J, 3), one (L, J, 3) mask for all and optional
    labels per window -> (N, n, L, J, 3). Hidden entries are zeroed first so nothing leaks. None when
    there is no model or windows, or the model can't do this task yet (NotImplementedError)."""
    if gen is None or not len(w):
        return None
    x, s = np.where(mask, w, 0.0).astype(np.float32), seeds(seed, task, len(w))
    step = max(1, BATCH // n)
    part = lambda v, i: None if v is None else v[i:i + step]
    try:
        out = [gen.sample_windows(x[i:i + step], mask, part(actions, i), part(styles, i), n=n, seed=s[i:i + step],
                                  temperature=temperature)
               for i in range(0, len(w), step)]
    except NotImplementedError as exc:
        print(f"model: task {task} not available ({exc})", file=sys.stderr)
        return None
    return np.concatenate(out).astype(np.float64)
