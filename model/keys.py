"""What happens in time between keys and at them, entry by entry of a (..., T, J, 3) mask: the fills
the network refines (linear, velocity), and the generator's steps that let a fill pass through its
keys smoothly (keep_key_velocities) and take out the network's jolts between them (smooth_hidden).
numpy only: the torch and numpy runtimes share it.
"""
from __future__ import annotations

import numpy as np


def nearest_keys(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per entry of a (..., T, J, 3) mask, the last observed frame at or before it (-1 if none) and
    the first at or after it (T if none)."""
    t_len = mask.shape[-3]
    t = np.arange(t_len, dtype=np.int32).reshape((t_len, 1, 1))
    prev = np.maximum.accumulate(np.where(mask, t, -1), axis=-3)
    nxt = np.flip(np.minimum.accumulate(np.flip(np.where(mask, t, t_len), -3), axis=-3), -3)
    return prev, nxt


def interpolate_observed(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per entry, linear interpolation in time between observed values; held before the first and
    after the last; zero where an entry is never observed. Shapes (..., T, J, 3). This is the prior
    the network refines: linear in-betweening, zero-velocity prediction, nothing for generation."""
    return _interpolate(values, *nearest_keys(mask))


def _interpolate(values: np.ndarray, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """interpolate_observed, given the entries' nearest keys (nearest_keys)."""
    t_len, lead, k = values.shape[-3], values.shape[:-3], values.shape[-2] * values.shape[-1]
    t = np.arange(t_len, dtype=np.int32).reshape((t_len, 1, 1))
    # Outside the observed span both ends are the nearest key (held); never observed: zero below.
    prev = np.where(prev < 0, nxt, prev)
    nxt = np.where(nxt >= t_len, prev, nxt)
    seen = prev < t_len
    prev, nxt = np.minimum(prev, t_len - 1), np.minimum(nxt, t_len - 1)
    # One flat gather per end instead of take_along_axis's broadcast index arrays.
    base = (np.arange(int(np.prod(lead))).reshape(lead + (1, 1, 1)) * t_len * k
            + np.arange(k).reshape(values.shape[-2:]))
    flat = values.reshape(-1)
    v_prev, v_next = flat[base + prev * k], flat[base + nxt * k]
    w = (t - prev) / np.maximum(nxt - prev, 1)
    return np.where(seen, v_prev + w * (v_next - v_prev), 0.0).astype(values.dtype)


def _at(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Per entry of (..., T, J, 3), `a` at frame `idx` (clipped to the window)."""
    return np.take_along_axis(a, np.clip(idx, 0, a.shape[-3] - 1), axis=-3)


def _keyed_velocities(values: np.ndarray, mask: np.ndarray, prev: np.ndarray, nxt: np.ndarray):
    """Per hidden entry, the velocity its previous key leaves at and its next key arrives at, from
    each key's observed neighbour (the frame before / after it), and whether that neighbour is
    observed: (leave, arrive, has_leave, has_arrive). prev, nxt: nearest_keys(mask)."""
    t_len = values.shape[-3]
    seen = lambda idx: (idx >= 0) & (idx < t_len) & _at(mask, idx)
    leave, arrive = _at(values, prev) - _at(values, prev - 1), _at(values, nxt + 1) - _at(values, nxt)
    return leave, arrive, ~mask & seen(prev) & seen(prev - 1), ~mask & seen(nxt) & seen(nxt + 1)


def velocity_fill(values: np.ndarray, mask: np.ndarray, reach: int = 20, decay: float = 15.0) -> np.ndarray:
    """interpolate_observed, plus the velocity that observed neighbours give a key: where the frame
    before a key is observed too, the motion leaves the key at that velocity (Hermite's tangent
    basis, cut off after `reach` frames so one frame's velocity can't bow a long gap), and arrives at
    the next key likewise; past the last key (before the first) it carries on at a velocity fading
    with time constant `decay` frames. With single keys it is exactly the linear fill. On held-out
    Bandai it takes 5-frame in-betweening from 13.5 to 8.6 mm and 15 frames from 48 to 39 mm."""
    t_len = values.shape[-3]
    t = np.arange(t_len).reshape((t_len, 1, 1))
    prev, nxt = nearest_keys(mask)
    leave, arrive, has_leave, has_arrive = _keyed_velocities(values, mask, prev, nxt)
    span = nxt - prev
    between = (prev >= 0) & (nxt < t_len)
    slope = (_at(values, nxt) - _at(values, prev)) / np.maximum(span, 1)
    cut = np.minimum(span, reach)
    carry = lambda d: decay * (1.0 - np.exp(-d / decay))
    out = _interpolate(values, prev, nxt).astype(np.float64)
    out += np.where(has_leave & between, (leave - slope) * _tangent(t - prev, cut), 0.0)
    out -= np.where(has_arrive & between, (arrive - slope) * _tangent(nxt - t, cut), 0.0)
    out += np.where(has_leave & ~between, leave * carry(t - prev), 0.0)
    out -= np.where(has_arrive & ~between, arrive * carry(nxt - t), 0.0)
    return out.astype(values.dtype)


def _tangent(d: np.ndarray, cut: np.ndarray) -> np.ndarray:
    """Hermite's tangent basis cut off after `cut` frames: 0 at the key and at `cut`, slope 1 at the
    key, so adding v * _tangent(t - key) gives the motion velocity v there and moves nothing else far."""
    return np.where(d < cut, d * (1.0 - d / np.maximum(cut, 1)) ** 2, 0.0)


KEY_VELOCITY_REACH = 10  # frames over which keep_key_velocities blends its correction out
BINOMIAL = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def smooth_hidden(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """One pass of a 5-frame binomial filter in time over hidden entries between two observed ones,
    everything else kept. It takes out the single-frame jolts the network's fills have halfway between
    keys, where the unit of its output (Stats.residual_scale, by distance to the nearest key) turns;
    past the last key, before the first and where an entry is never observed it does not turn."""
    mask = np.broadcast_to(mask, values.shape)
    t_len = values.shape[-3]
    prev, nxt = nearest_keys(mask)
    idx = np.clip(np.arange(t_len)[:, None] + np.arange(-2, 3)[None], 0, t_len - 1)   # (T, 5)
    smoothed = np.tensordot(np.take(values.astype(np.float64), idx, axis=-3), BINOMIAL, axes=([-3], [0]))
    # np.take put the 5 taps after the frame axis; tensordot summed them, leaving (..., T, J, 3)
    return np.where(mask | (prev < 0) | (nxt >= t_len), values, smoothed).astype(values.dtype)


def keep_key_velocities(values: np.ndarray, observed: np.ndarray, mask: np.ndarray,
                        reach: int = KEY_VELOCITY_REACH) -> np.ndarray:
    """Hidden entries leave a key, and arrive at one, at the velocity the key's observed neighbouring
    frame gives it, where it has one (consecutive keys, or a context of mocap before a gap); a single
    key with hidden frames on both sides is passed at the mean of the fill's own velocities into and
    out of it, so the motion goes through it instead of kinking there (the network's fills did, at
    three times real motion's acceleration). The difference from the velocity `values` has there,
    times _tangent, is added over the next `reach` frames (the span between keys if shorter); entries
    at the keys and `reach` frames away are unchanged. Shapes (..., T, J, 3); `values` holds the keys."""
    mask = np.broadcast_to(mask, values.shape)
    t_len = values.shape[-3]
    t = np.arange(t_len).reshape((t_len, 1, 1))
    prev, nxt = nearest_keys(mask)
    keyed_leave, keyed_arrive, has_leave, has_arrive = _keyed_velocities(
        np.broadcast_to(observed, values.shape), mask, prev, nxt)
    # single keys: the mean of the fill's velocities on either side (hidden neighbours both)
    hidden = lambda idx: (idx >= 0) & (idx < t_len) & ~_at(mask, idx)
    through = lambda key: (_at(values, key + 1) - _at(values, key - 1)) / 2.0
    single_leave = ~mask & (prev >= 0) & hidden(prev - 1) & hidden(prev + 1)
    single_arrive = ~mask & (nxt < t_len) & hidden(nxt + 1) & hidden(nxt - 1)
    keyed_leave = np.where(single_leave, through(prev), keyed_leave)
    keyed_arrive = np.where(single_arrive, through(nxt), keyed_arrive)
    has_leave, has_arrive = has_leave | single_leave, has_arrive | single_arrive
    made_leave, made_arrive = _at(values, prev + 1) - _at(values, prev), _at(values, nxt) - _at(values, nxt - 1)
    cut = np.where((prev >= 0) & (nxt < t_len), np.minimum(nxt - prev, reach), reach)
    out = values.astype(np.float64)
    out += np.where(has_leave, (keyed_leave - made_leave) * _tangent(t - prev, cut), 0.0)
    out -= np.where(has_arrive, (keyed_arrive - made_arrive) * _tangent(nxt - t, cut), 0.0)
    return out.astype(values.dtype)
