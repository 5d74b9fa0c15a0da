"""Every task as a mask over a window (T, J, 3) of global joint positions: True = observed.

One module for both training (random masks, `sample_mask`) and evaluation (the deterministic
protocol masks: `inbetween_mask`, `predict_mask`, `complete_mask`, `lift_mask`, `generate_mask`).
"""
from __future__ import annotations

import numpy as np

from model.skeleton import LIMBS, LOWER_BODY, NUM_JOINTS, UPPER_BODY

J = NUM_JOINTS
BODY_PARTS = {"upper_body": UPPER_BODY, "lower_body": LOWER_BODY, **LIMBS}
# The training mixture: in-betweening at every density dominates, as in the product.
TASK_WEIGHTS = {
    "inbetween": 0.30, "lafan": 0.12, "predict": 0.11, "gaps": 0.08, "random_frames": 0.07,
    "centre_gap": 0.04, "partial_body": 0.10, "lift": 0.08, "generate": 0.10,
}


def frames_to_mask(observed_frames: np.ndarray) -> np.ndarray:
    """(T,) bool of observed frames -> (T, J, 3)."""
    return np.broadcast_to(np.asarray(observed_frames, bool)[:, None, None], (len(observed_frames), J, 3)).copy()


def inbetween_mask(T: int, context: int, gap: int, start: int = 0) -> np.ndarray:
    """LaFAN1 protocol: `context` frames, a gap of `gap` frames, one target frame, rest hidden."""
    f = np.zeros(T, bool)
    f[start:start + context] = True
    f[start + context + gap] = True
    return frames_to_mask(f)


def predict_mask(T: int, context: int) -> np.ndarray:
    """The first `context` frames observed; the rest is forecast."""
    f = np.zeros(T, bool)
    f[:context] = True
    return frames_to_mask(f)


def complete_mask(T: int, hidden_part: str) -> np.ndarray:
    """Every frame observed except the joints of one body part."""
    m = np.ones((T, J, 3), bool)
    m[:, list(BODY_PARTS[hidden_part])] = False
    return m


def lift_mask(T: int) -> np.ndarray:
    """A fixed orthographic side camera looking along world X sees (y, z) of every joint, never x."""
    m = np.ones((T, J, 3), bool)
    m[..., 0] = False
    return m


def generate_mask(T: int) -> np.ndarray:
    return np.zeros((T, J, 3), bool)


def _keys(T: int, rng: np.random.Generator) -> np.ndarray:
    """Key frames at any positions and densities: runs of 1-3 keyed frames between gaps of 1-60.
    Mostly single keys, as animators set them: with the velocity prior, a run of two keys already
    hands the network the velocity, and single keys rare in training came out no better than linear."""
    f = np.zeros(T, bool)
    max_gap = int(rng.choice([4, 10, 20, 40, 60]))
    t = int(rng.integers(0, 4))
    while t < T:
        run = int(rng.choice([1, 2, 3], p=[0.6, 0.2, 0.2]))
        f[t:t + run] = True
        t += run + int(rng.integers(1, max_gap + 1))
    if rng.random() < 0.3:  # sometimes the window runs past the last key (the add-on's cropping)
        f[int(rng.integers(T // 2, T)):] = False
    return f


def sample_mask(task: str, T: int, rng: np.random.Generator) -> np.ndarray:
    """A random mask (T, J, 3) for `task`, a key of TASK_WEIGHTS."""
    if task == "inbetween":
        return frames_to_mask(_keys(T, rng))
    if task == "lafan":
        context, gap = int(rng.integers(1, 11)), int(rng.integers(1, 61))
        start = int(rng.integers(0, T - context - gap))
        return inbetween_mask(T, context, gap, start)
    if task == "predict":
        f = np.zeros(T, bool)
        split = int(rng.integers(1, T - 1))
        if rng.random() < 0.8:
            f[:split] = True
        else:  # the past, as in the authors' code
            f[split:] = True
        return frames_to_mask(f)
    if task == "gaps":
        f = np.ones(T, bool)
        for _ in range(int(rng.integers(1, 6))):
            a = int(rng.integers(0, T - 1))
            f[a:a + int(rng.integers(1, 48))] = False
        return frames_to_mask(f)
    if task == "random_frames":
        return frames_to_mask(rng.random(T) >= rng.uniform(0.2, 0.95))
    if task == "centre_gap":
        f = np.ones(T, bool)
        f[44:84] = False
        return frames_to_mask(f)
    if task == "partial_body":
        part = list(BODY_PARTS[list(BODY_PARTS)[int(rng.integers(len(BODY_PARTS)))]])
        if rng.random() < 0.5:  # completion: the part hidden on every frame, the rest observed
            m = np.ones((T, J, 3), bool)
            m[:, part] = False
            return m
        # partial-body keys: whole-body keys on some frames, only the part keyed on others
        m = frames_to_mask(_keys(T, rng))
        m[np.ix_(_keys(T, rng), part)] = True
        return m
    if task == "lift":
        return lift_mask(T)
    if task == "generate":
        return generate_mask(T)
    raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASK_WEIGHTS)}")


def sample_masks(batch: int, T: int, rng: np.random.Generator,
                 weights: dict[str, float] = TASK_WEIGHTS) -> tuple[np.ndarray, list[str]]:
    """(B, T, J, 3) masks and the task name of each."""
    names = list(weights)
    p = np.array([weights[n] for n in names], float)
    tasks = [names[i] for i in rng.choice(len(names), size=batch, p=p / p.sum())]
    return np.stack([sample_mask(t, T, rng) for t in tasks]), tasks
