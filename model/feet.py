"""Planted feet: where a generated foot rests on the ground, it stays where it landed.

The network's feet slide while they bear weight (on held-out 30-frame gaps 6.4 mm a frame of
contact against the captured motion's 3.0; `training.evaluate`'s foot_skate), the artefact an
animator sees first. Each foot joint (ankle, toe) that is low and slow on generated frames is held
at one place on the ground for that contact, eased in and out over a few frames. Then the leg is
made rigid at its own lengths: the foot pivots on a held toe or hangs from the ankle, and the knee
is placed by two-bone IK, bending the way it did. A rig's bones are rigid while the network's
stretch by centimetres, so without that the rig's retargeted foot would not be where it was held.
Only hidden entries move; keys stay exact. numpy only: the add-on's runtime without torch shares it.
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


def _hold(xz: np.ndarray, y: np.ndarray, fixed: np.ndarray, fps: float, size: float) -> tuple[np.ndarray, np.ndarray]:
    """One joint's horizontal correction (T, 2) and how fully it is held (T,) 0-1: on each contact,
    the way to one place (where its keys put it, else where it is slowest), eased in and out."""
    T = len(xz)
    speed = np.linalg.norm(np.gradient(xz, axis=0), axis=-1) * fps if T > 1 else np.zeros(T)
    contact = (y < np.percentile(y, 5) + HEIGHT * size) & (speed < SPEED * size)
    shift, weight = np.zeros((T, 2)), np.zeros(T)  # sums of eased holds and of their weights
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
        shift[lo:hi] += ext * ramp[:, None]
        weight[lo:hi] += ramp
    shift /= np.maximum(weight, 1.0)[:, None]  # where two holds' eases meet, a blend of both: no jump
    shift[fixed] = 0.0
    return shift, np.minimum(weight, 1.0)


def _knee(hip: np.ndarray, knee: np.ndarray, target: np.ndarray, l1: float, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """Knees and ankles (F, 3) for a thigh and shin of lengths l1, l2 with the ankle at `target` (or
    as near as the leg reaches), in the plane of the hip, the target and the old knee (so the leg
    bends as it did)."""
    to = target - hip
    d = np.clip(np.linalg.norm(to, axis=-1), np.abs(l1 - l2) + 1e-6, l1 + l2 - 1e-6)
    u = to / np.maximum(np.linalg.norm(to, axis=-1, keepdims=True), 1e-9)
    pole = (knee - hip) - np.sum((knee - hip) * u, -1, keepdims=True) * u
    pole /= np.maximum(np.linalg.norm(pole, axis=-1, keepdims=True), 1e-9)
    a = (l1 ** 2 - l2 ** 2 + d ** 2) / (2 * d)
    h = np.sqrt(np.maximum(l1 ** 2 - a ** 2, 0.0))
    return hip + a[:, None] * u + h[:, None] * pole, hip + d[:, None] * u


def _length(p: np.ndarray, m: np.ndarray, a: int, b: int) -> float:
    """Bone a-b's median length over the frames that observe both ends, else over all frames."""
    both = m[:, a].all(-1) & m[:, b].all(-1)
    frames = both if both.any() else slice(None)
    return float(np.median(np.linalg.norm(p[frames, a] - p[frames, b], axis=-1)))


def _along(base: np.ndarray, tip: np.ndarray, length: float) -> np.ndarray:
    """`tip` moved along base -> tip to `length` from base."""
    v = tip - base
    return base + length * v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _plant_leg(p: np.ndarray, m: np.ndarray, leg: tuple[int, int, int, int], fps: float, size: float) -> None:
    """One leg of one motion (T, J, 3), in place: ankle and toe held, then the leg made rigid at its
    own lengths (a rig's bones are; the network's stretch by centimetres, and a held joint is only
    where the rig's foot ends up if the rest of the leg is placed for those lengths)."""
    hip, knee, ankle, toe = leg
    thigh, shin, foot = (_length(p, m, a, b) for a, b in ((hip, knee), (knee, ankle), (ankle, toe)))
    held = {}
    for joint in (ankle, toe):
        shift, held[joint] = _hold(p[:, joint, [0, 2]], p[:, joint, 1], m[:, joint].any(-1), fps, size)
        p[:, joint, [0, 2]] += shift
    hidden = {j: ~m[:, j].any(-1) for j in leg}
    on_toe = (held[toe] > held[ankle]) & hidden[ankle]  # the heel is up: the foot pivots on the toe
    p[on_toe, ankle] = _along(p[on_toe, toe], p[on_toe, ankle], foot)
    bend = hidden[knee]
    if bend.any():  # two-bone IK, bending as it did
        p[bend, knee], reach = _knee(p[bend, hip], p[bend, knee], p[bend, ankle], thigh, shin)
        p[bend & hidden[ankle], ankle] = reach[hidden[ankle][bend]]
    # else the foot hangs from the ankle, pointing where it pointed (on the toe, this changes nothing
    # unless the leg could not reach the toe's ankle)
    p[hidden[toe], toe] = _along(p[hidden[toe], ankle], p[hidden[toe], toe], foot)


def plant_feet(positions: np.ndarray, mask: np.ndarray, fps: float = FPS, size: np.ndarray | float = 1.0) -> np.ndarray:
    """(..., T, J, 3) world positions (Y up) and their observed mask -> the same with each foot held
    still while it bears weight; observed entries unchanged. `size` (broadcast to ...) scales the
    thresholds with the body (body_size.body_fit's ratio), so a larger body is planted alike."""
    out = np.array(positions, np.float64)
    flat, seen = out.reshape((-1,) + out.shape[-3:]), np.broadcast_to(mask, out.shape).reshape((-1,) + out.shape[-3:])
    sizes = np.broadcast_to(size, out.shape[:-3]).reshape(-1)
    for p, m, k in zip(flat, seen, sizes):
        for leg in LEGS:
            _plant_leg(p, m, leg, fps, k)
    return np.where(mask, positions, out).astype(np.asarray(positions).dtype)
