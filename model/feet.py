"""Planted feet: where a generated foot rests on the ground, it stays where it landed.

The network's feet slide while they bear weight (on held-out 30-frame gaps 6.0 mm a frame against
the captured motion's 2.8; `training.evaluate`'s foot_skate), the artefact an animator sees first.
Each foot joint (ankle, toe) that is low and slow on generated frames is held at one place on the
ground for that contact, the hold eased in and out over a few frames, and the knee is put back so
the thigh and shin keep their lengths (two-bone IK, bending the way it did). Only hidden entries
move; keys stay exact. numpy only: the add-on's runtime without torch shares it.
"""
from __future__ import annotations

import numpy as np

from .skeleton import INDEX

LEGS = tuple(tuple(INDEX[f"{s}_{n}"] for n in ("thigh", "shin", "foot", "toe")) for s in "lr")
HEIGHT = 0.025     # m above the joint's own resting height: the evaluation's contact test
SPEED = 1.5        # m/s horizontally: a swinging foot is past this by the time it is 2.5 cm up
EASE = 4           # frames over which a hold fades in and out
MAX_SHIFT = 0.15   # m: a hold that would move a foot further is a misread contact, left alone
FPS = 30.0


def _segments(flags: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True as (start, end) half-open frame ranges."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def _hold(xz: np.ndarray, y: np.ndarray, fixed: np.ndarray, fps: float, size: float) -> np.ndarray:
    """One joint's horizontal correction (T, 2): on each contact, the way back to one place (a fixed
    frame's, when the contact holds one, else the contact's mean place), eased out to nothing."""
    T = len(xz)
    speed = np.linalg.norm(np.gradient(xz, axis=0), axis=-1) * fps if T > 1 else np.zeros(T)
    contact = (y < np.percentile(y, 5) + HEIGHT * size) & (speed < SPEED * size)
    shift, weight = np.zeros((T, 2)), np.zeros(T)
    for s, e in _segments(contact):
        keyed = s + np.flatnonzero(fixed[s:e])
        frames = np.arange(s, e)
        # between keys the foot goes where they say, at a steady pace; else it stays where it is slowest
        anchor = (np.stack([np.interp(frames, keyed, xz[keyed, k]) for k in range(2)], -1) if len(keyed)
                  else xz[s + np.argmin(speed[s:e])])
        delta = anchor - xz[s:e]
        if np.linalg.norm(delta, axis=-1).max() > MAX_SHIFT * size:
            continue
        lo, hi = max(0, s - EASE), min(T, e + EASE)
        ramp = np.ones(hi - lo)
        ramp[:s - lo] = np.arange(1, s - lo + 1) / (EASE + 1)
        ramp[e - lo:] = np.arange(hi - e, 0, -1) / (EASE + 1)
        ext = np.concatenate([np.repeat(delta[:1], s - lo, 0), delta, np.repeat(delta[-1:], hi - e, 0)])
        take = ramp > weight[lo:hi]  # where two holds' eases meet, the nearer one wins
        shift[lo:hi][take], weight[lo:hi][take] = (ext * ramp[:, None])[take], ramp[take]
    shift[fixed] = 0.0
    return shift


def _knee(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knees and ankles (F, 3) that keep the thigh's and shin's lengths with the ankle at `target`
    (or as near as the leg reaches), in the plane of the hip, the target and the old knee (so the
    leg bends as it did)."""
    l1 = np.linalg.norm(knee - hip, axis=-1)
    l2 = np.linalg.norm(ankle - knee, axis=-1)
    to = target - hip
    d = np.clip(np.linalg.norm(to, axis=-1), np.abs(l1 - l2) + 1e-6, l1 + l2 - 1e-6)
    u = to / np.maximum(np.linalg.norm(to, axis=-1, keepdims=True), 1e-9)
    pole = (knee - hip) - np.sum((knee - hip) * u, -1, keepdims=True) * u
    pole /= np.maximum(np.linalg.norm(pole, axis=-1, keepdims=True), 1e-9)
    a = (l1 ** 2 - l2 ** 2 + d ** 2) / (2 * d)
    h = np.sqrt(np.maximum(l1 ** 2 - a ** 2, 0.0))
    return hip + a[:, None] * u + h[:, None] * pole, hip + d[:, None] * u


def plant_feet(positions: np.ndarray, mask: np.ndarray, fps: float = FPS, size: np.ndarray | float = 1.0) -> np.ndarray:
    """(..., T, J, 3) world positions (Y up) and their observed mask -> the same with each foot held
    still while it bears weight; observed entries unchanged. `size` (broadcast to ...) scales the
    thresholds with the body (body_size.body_fit's ratio), so a larger body is planted alike."""
    out = np.array(positions, np.float64)
    flat, seen = out.reshape((-1,) + out.shape[-3:]), np.broadcast_to(mask, out.shape).reshape((-1,) + out.shape[-3:])
    sizes = np.broadcast_to(size, out.shape[:-3]).reshape(-1)
    for p, m, k in zip(flat, seen, sizes):
        for hip, knee, ankle, toe in LEGS:
            moved_ankle = p[:, ankle].copy()
            for joint in (ankle, toe):
                fixed = m[:, joint].any(-1)
                p[:, joint, [0, 2]] += _hold(p[:, joint, [0, 2]], p[:, joint, 1], fixed, fps, k)
            bend = (np.abs(p[:, ankle] - moved_ankle).sum(-1) > 0) & ~m[:, knee].any(-1) & ~m[:, hip].any(-1)
            if bend.any():
                p[bend, knee], p[bend, ankle] = _knee(p[bend, hip], p[bend, knee], moved_ankle[bend], p[bend, ankle])
    return np.where(mask, positions, out).astype(np.asarray(positions).dtype)
