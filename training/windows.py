"""Training batches: random windows of the cached clips, augmented (mirror, turn), masked by a random
task, and turned into exactly the arrays the generator's inference path builds (model.representation)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from model.representation import (MAX_DISTANCE, Stats, facing_unobserved, first_frame_canonical, key_distance,
                                  network_input, prepare, to_output_features)
from model.skeleton import MIRROR
from training.dataset import MotionDataset
from training.masks import TASK_WEIGHTS, sample_masks


class WindowSampler:
    """Uniform over frames of the chosen clips; clips shorter than T are padded by holding the last pose.
    `size_jitter` scales each window's whole motion (body and travel) by exp(U(-j, j)): the data has two
    skeletons (every Bandai clip one, every CMU clip another, 15% larger), and trained on those alone,
    a body 5% larger than Bandai's got 96 mm instead of 67 at keys every 20 frames."""

    def __init__(self, ds: MotionDataset, split: str | list[str], T: int, seed: int | np.random.SeedSequence = 0,
                 size_jitter: float = 0.0):
        splits = [split] if isinstance(split, str) else split
        self.ds, self.T = ds, T
        self.clips = np.array([i for s in splits for i in ds.clips(s, min_length=16)])
        if len(self.clips) == 0:
            raise ValueError(f"no clips in split {split}")
        weights = ds.lengths[self.clips].astype(float)
        self.p = weights / weights.sum()
        self.rng = np.random.default_rng(seed)
        self.size_jitter = size_jitter
        self.mirror_action, self.mirror_style = mirrored_labels(ds.actions), mirrored_labels(ds.styles)

    def windows(self, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B, T, J, 3) world windows (first pelvis over the origin, random turn, mirror and size), labels
        (a mirrored window's sided label swapped: a mirrored left-hand wave is a right-hand wave)."""
        clips = self.rng.choice(self.clips, size=batch, p=self.p)
        out = np.empty((batch, self.T) + self.ds.positions.shape[1:], np.float32)
        for b, c in enumerate(clips):
            clip = self.ds.clip(c)
            s = int(self.rng.integers(0, max(1, len(clip) - self.T + 1)))
            w = clip[s:s + self.T]
            if len(w) < self.T:
                w = np.concatenate([w, np.repeat(w[-1:], self.T - len(w), 0)])
            out[b] = w
        out[..., [0, 2]] -= out[:, :1, :1, [0, 2]]
        yaw = self.rng.uniform(-np.pi, np.pi, batch)
        c, s = np.cos(yaw)[:, None, None], np.sin(yaw)[:, None, None]
        x, z = out[..., 0].copy(), out[..., 2].copy()
        out[..., 0], out[..., 2] = c * x + s * z, -s * x + c * z
        flip = self.rng.random(batch) < 0.5
        out[flip] = out[flip][:, :, list(MIRROR)] * np.array([-1.0, 1.0, 1.0], np.float32)
        if self.size_jitter:
            out *= np.exp(self.rng.uniform(-self.size_jitter, self.size_jitter, batch)).astype(np.float32)[:, None, None, None]
        action, style = self.ds.action[clips], self.ds.style[clips]
        swap = lambda ids, table: np.where(flip & (ids >= 0), table[np.maximum(ids, 0)], ids)
        return out, swap(action, self.mirror_action), swap(style, self.mirror_style)


def mirrored_labels(names: list[str]) -> np.ndarray:
    """Per label index, the index of its mirror image: the label with "left" and "right" swapped where
    the vocabulary has it (walk-turn-left <-> walk-turn-right), else itself. Mirroring a window
    without it taught the model that wave-left-hand means either hand: generated from that label,
    a classifier recognised it in none of val_takes' windows (real motion 0.95)."""
    index = {n: i for i, n in enumerate(names)}
    swapped = lambda n: re.sub(r"left|right", lambda m: "right" if m.group() == "left" else "left", n)
    return np.array([index.get(swapped(n), i) for i, n in enumerate(names)], np.int64)


@dataclass
class Batch:
    observed_in: np.ndarray    # (B, 3C, T) network input of X_i
    unobserved_in: np.ndarray  # (B, 3C, T) network input of X_u (ground truth where hidden)
    target: np.ndarray         # (B, C, T) normalised residual of the ground truth over the prior
    mask: np.ndarray           # (B, C, T) float: entries observed (canonical frame)
    scale: np.ndarray          # (B, C, T) metres per unit of target (Stats.residual_scale)
    prior: np.ndarray          # (B, C, T) metres: the filled prior the target is a residual over
    action: np.ndarray         # (B,) ids, 0 = any
    style: np.ndarray
    tasks: list[str]


def make_batch(sampler: WindowSampler, batch: int, stats: Stats, rng: np.random.Generator,
               label_dropout: float = 0.2, weights: dict[str, float] = TASK_WEIGHTS) -> Batch:
    world, action, style = sampler.windows(batch)
    masks, tasks = sample_masks(batch, sampler.T, rng, weights)
    world = facing_unobserved(world, masks)
    win = prepare(world, masks, stats)
    gt_canon = win.frame.to_canonical(world.astype(np.float64)).astype(np.float32)
    gt_feat = to_output_features(gt_canon)
    channels_first = lambda a: np.ascontiguousarray(a.reshape(batch, sampler.T, -1).transpose(0, 2, 1), np.float32)
    hidden = ~win.mask
    action_ids = np.where((action >= 0) & (rng.random(batch) >= label_dropout), action + 1, 0)
    style_ids = np.where((style >= 0) & (rng.random(batch) >= label_dropout), style + 1, 0)
    return Batch(network_input(win.inputs, win.mask, win.prior, stats),
                 network_input(gt_canon, hidden, win.prior, stats),
                 channels_first((gt_feat - win.prior) / win.scale), channels_first(win.mask), channels_first(win.scale),
                 channels_first(win.prior),
                 action_ids.astype(np.int64), style_ids.astype(np.int64), tasks)


def batch_stream(ds: MotionDataset, splits: list[str], T: int, stats: Stats, batch: int, seed: list[int],
                 label_dropout: float, workers: int = 0, size_jitter: float = 0.0,
                 weights: dict[str, float] = TASK_WEIGHTS) -> Iterator[Batch]:
    """Training batches forever, from window and mask streams seeded by `seed` (entropy for
    np.random.SeedSequence). With `workers` > 0 they are built by that many background processes, each
    with its own streams: one 512-window batch takes about a second of one CPU core, which would
    leave a GPU idle; on the 2-core CPU the training processes use the cores and build them inline."""
    if workers == 0:
        return _batches(ds, splits, T, stats, batch, seed, label_dropout, size_jitter, weights)
    stream = _BatchStream(ds, splits, T, stats, batch, seed, label_dropout, size_jitter, weights)
    return iter(DataLoader(stream, batch_size=None, num_workers=workers, prefetch_factor=4, persistent_workers=True))


def _batches(ds, splits, T, stats, batch, seed, label_dropout, size_jitter, weights) -> Iterator[Batch]:
    windows, masks = np.random.SeedSequence(seed).spawn(2)
    sampler = WindowSampler(ds, splits, T, seed=windows, size_jitter=size_jitter)
    rng = np.random.default_rng(masks)
    while True:
        yield make_batch(sampler, batch, stats, rng, label_dropout, weights)


class _BatchStream(IterableDataset):
    """`_batches` in a DataLoader worker, its seed extended by the worker's number."""

    def __init__(self, *args):
        super().__init__()
        self.args = args

    def __iter__(self) -> Iterator[Batch]:
        ds, splits, T, stats, batch, seed, *rest = self.args
        info = get_worker_info()
        return _batches(ds, splits, T, stats, batch, [*seed, info.id if info else 0], *rest)


def compute_stats(sampler: WindowSampler, windows: int = 2048, fill: str = "linear", travel: bool = False) -> Stats:
    """Input normalisation from whole windows put in the canonical frame of their first frame; the
    output's scale, the RMS residual of the ground truth over the `fill`ed prior, per channel and
    distance to the nearest key, from windows masked by the training mixture (never decreasing with
    distance, at least 2 mm)."""
    world, _, _ = sampler.windows(windows)
    canon = first_frame_canonical(world)
    flat = lambda a: a.reshape(-1, a.shape[-2], 3).astype(np.float64)
    c, f = flat(canon), flat(to_output_features(canon))
    inputs = [a.astype(np.float32) for a in (c.mean(0), c.std(0) + 1e-3, f.mean(0), f.std(0) + 1e-3)]
    masks = sample_masks(windows, sampler.T, np.random.default_rng(0))[0]
    win = prepare(world, masks, Stats(*inputs, np.ones_like(inputs[0]), fill=fill, travel=travel))
    squared = (to_output_features(win.frame.to_canonical(world.astype(np.float64))) - win.prior) ** 2
    # one pass: each entry's squared residual summed into its (distance, joint, axis) bucket
    channels = squared.shape[-2] * 3
    bucket = (key_distance(win.mask) * channels + np.arange(channels).reshape(squared.shape[-2:])).ravel()
    size = (MAX_DISTANCE + 1) * channels
    sums = np.bincount(bucket, weights=squared.ravel(), minlength=size)
    counts = np.bincount(bucket, minlength=size)
    table = np.sqrt(sums / np.maximum(counts, 1)).reshape((MAX_DISTANCE + 1,) + squared.shape[-2:])
    table[0] = table[1]  # observed entries: the network's output there is pasted over
    table = np.maximum(np.maximum.accumulate(table, axis=0), 2e-3)
    return Stats(*inputs, table.astype(np.float32), fill=fill, travel=travel)
