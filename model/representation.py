"""The mask format and the window representation the network sees, defined once for everyone.

A task is a boolean mask over a window of global joint positions, shape (T, J, 3): True where an
entry is observed. Frame masks (T,) and joint masks (T, J) broadcast to it. Training samples masks
at random (training/masks.py); the add-on builds them from keys; the generator receives the same.

Before the network, a window is put in a canonical frame decided by the *observed* entries only
(so training and inference agree): translated so the first observed pelvis is over the origin and
turned about Y so the first frame with both thighs observed faces +Z. The network's output channels
are root-relative joints plus the pelvis trajectory as its own channels (index 0), so it can
generate travel instead of sliding. numpy only: the torch and numpy runtimes share it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .keys import interpolate_observed, nearest_keys, velocity_fill
from .skeleton import INDEX, NUM_JOINTS

PELVIS, L_THIGH, R_THIGH = INDEX["pelvis"], INDEX["l_thigh"], INDEX["r_thigh"]


def full_mask(mask: np.ndarray, length: int, joints: int = NUM_JOINTS) -> np.ndarray:
    """Broadcast a (T,), (T, J) or (T, J, 3) mask (any leading batch dims for the last) to (..., T, J, 3)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape[-1:] == (length,) and mask.ndim == 1:
        mask = mask[:, None, None]
    elif mask.shape[-2:] == (length, joints):
        mask = mask[..., None]
    if mask.shape[-3:-1] != (length, joints) and mask.shape[-3:] != (length, 1, 1):
        raise ValueError(f"mask of shape {mask.shape} does not fit a window of {length} frames x {joints} joints")
    return np.broadcast_to(mask, mask.shape[:-3] + (length, joints, 3))


@dataclass
class Frame:
    """Rigid transform into the canonical frame: p_canon = R(yaw) @ (p - origin)."""
    origin: np.ndarray  # (..., 3)
    yaw: np.ndarray     # (...,) radians; rotation about +Y applied to world coordinates

    def _turn(self, p: np.ndarray, sign: float) -> np.ndarray:
        """Rotate (..., T, J, 3) about +Y by sign * yaw; written out rather than an einsum with a 3x3
        matrix, which was most of the pre-processing time."""
        c, s = np.cos(self.yaw)[..., None, None], sign * np.sin(self.yaw)[..., None, None]
        x, y, z = p[..., 0], p[..., 1], p[..., 2]
        return np.stack([c * x + s * z, y, c * z - s * x], -1)

    def to_canonical(self, p: np.ndarray) -> np.ndarray:
        """(..., T, J, 3) world -> canonical."""
        return self._turn(p - self.origin[..., None, None, :], 1.0)

    def to_world(self, p: np.ndarray) -> np.ndarray:
        return self._turn(p, -1.0) + self.origin[..., None, None, :]


def _first(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the first True along the last axis, and whether there is one."""
    return flags.argmax(-1), flags.any(-1)


def _axis_origin(observed: np.ndarray, mask: np.ndarray, axis: int) -> np.ndarray:
    """The first observed pelvis value on one horizontal axis; without one, the centre of the first
    frame's joints observed on that axis (zero if none). Axis by axis, so a side camera's view (z
    and y seen, depth x never) is still centred on the body rather than on the world's origin."""
    values, seen = observed[..., axis], mask[..., axis]                    # (..., T, J)
    t_pel, has_pel = _first(seen[..., PELVIS])
    at = lambda a, t: np.take_along_axis(a, t[..., None, None], -2)[..., 0, :]
    t_any, _ = _first(seen.any(-1))
    seen_at = at(seen, t_any)
    centre = (at(values, t_any) * seen_at).sum(-1) / np.maximum(seen_at.sum(-1), 1)
    return np.where(has_pel, at(values, t_pel)[..., PELVIS], centre)


def canonical_frame(observed: np.ndarray, mask: np.ndarray) -> Frame:
    """The frame decided by observed entries only. observed, mask: (..., T, J, 3)."""
    take = lambda a, t: np.take_along_axis(a, t[..., None, None, None], -3)[..., 0, :, :]
    x, z = _axis_origin(observed, mask, 0), _axis_origin(observed, mask, 2)
    origin = np.stack([x, np.zeros_like(x), z], -1)
    thighs = mask[..., L_THIGH, :] & mask[..., R_THIGH, :]
    t_face, has_face = _first(thighs[..., 0] & thighs[..., 2])
    at_face = take(observed, t_face)
    across = at_face[..., L_THIGH, :] - at_face[..., R_THIGH, :]
    # facing = across x up; the yaw that turns it onto +Z
    yaw = np.where(has_face, -np.arctan2(-across[..., 2], across[..., 0]), 0.0)
    return Frame(origin.astype(np.float64), yaw.astype(np.float64))


def first_frame_canonical(world: np.ndarray) -> np.ndarray:
    """(..., T, J, 3) world windows -> float64 positions in the canonical frame of each one's first
    frame (its pelvis over the origin, facing +Z), as if that frame alone were observed."""
    first = np.zeros(world.shape, bool)
    first[..., 0, :, :] = True
    return canonical_frame(world, first).to_canonical(world.astype(np.float64))


def facing_unobserved(world: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Windows (B, T, J, 3) with nothing observed (generation from labels) put in their first frame's
    canonical frame: pelvis over the origin, facing +Z. Training turns such windows' ground truth so
    (observation decides the canonical frame; with none, a window kept the sampler's random heading,
    which the posterior then had to encode: decoded from it, such bodies barely moved), and the
    generator its output, whose start the network leaves anywhere (generated walks began 2-8 m
    ahead): generated motion starts where the character stands and faces its front."""
    empty = ~masks.reshape(len(masks), -1).any(1)
    if not empty.any():
        return world
    out = world.copy()
    out[empty] = first_frame_canonical(world[empty]).astype(world.dtype)
    return out


def canonical_mask(mask: np.ndarray, frame: Frame) -> np.ndarray:
    """Observed entries after rotation: x and z mix, so each is known only when both are."""
    turned = np.abs(np.sin(frame.yaw)) > 1e-9
    xz = mask[..., 0] & mask[..., 2]
    out = mask.copy()
    out[..., 0] = np.where(turned[..., None, None], xz, mask[..., 0])
    out[..., 2] = np.where(turned[..., None, None], xz, mask[..., 2])
    return out


def to_output_features(canon: np.ndarray) -> np.ndarray:
    """(..., T, J, 3) canonical positions -> root-relative joints, pelvis trajectory at index 0."""
    out = canon - canon[..., PELVIS:PELVIS + 1, :]
    out[..., PELVIS, :] = canon[..., PELVIS, :]
    return out


def from_output_features(feat: np.ndarray) -> np.ndarray:
    out = feat + feat[..., PELVIS:PELVIS + 1, :]
    out[..., PELVIS, :] = feat[..., PELVIS, :]
    return out


FILLS = {"linear": interpolate_observed, "velocity": velocity_fill}
MAX_DISTANCE = 64  # the residual's scale is tabled by distance to the nearest key up to here (and never observed)


def key_distance(cmask: np.ndarray) -> np.ndarray:
    """(..., T, J, 3) canonical mask -> per output feature, the frames to its nearest observed frame
    (0 where observed), capped at MAX_DISTANCE, which also stands for never observed. A joint's feature
    is its offset from the pelvis, so it is as far from being known as the farther of the two."""
    t_len = cmask.shape[-3]
    t = np.arange(t_len).reshape((t_len, 1, 1))
    prev, nxt = nearest_keys(cmask)
    d = np.minimum(np.where(prev >= 0, t - prev, MAX_DISTANCE), np.where(nxt < t_len, nxt - t, MAX_DISTANCE))
    d = np.minimum(d, MAX_DISTANCE)
    out = np.maximum(d, d[..., PELVIS:PELVIS + 1, :])
    out[..., PELVIS, :] = d[..., PELVIS, :]
    return out


@dataclass
class Window:
    """Network inputs for a batch of windows, plus what is needed to map outputs back."""
    inputs: np.ndarray    # (B, T, J, 3) canonical positions, zero where unobserved
    mask: np.ndarray      # (B, T, J, 3) canonical-frame observation mask
    prior: np.ndarray     # (B, T, J, 3) output features of the interpolated observation
    frame: Frame
    scale: np.ndarray | None = None  # (B, T, J, 3) the network output's unit per entry (Stats.residual_scale)


def fill_unobserved(canon: np.ndarray, cmask: np.ndarray, stats: "Stats") -> np.ndarray:
    """Entries never observed in the window start from the training mean, not from the origin on the
    floor: the pelvis at its mean place and height, other joints at their mean offset from the pelvis."""
    never = ~cmask.any(axis=-3, keepdims=True)                              # (..., 1, J, 3)
    # an unseen pelvis is where the seen joints say it is (each minus its mean offset), else its mean
    seen = (~never).astype(canon.dtype)
    seen[..., PELVIS, :] = 0.0
    count = seen.sum(-2)                                                    # (..., 1, 3)
    estimate = ((canon - stats.feat_mean) * seen).sum(-2) / np.maximum(count, 1.0)
    estimate = np.where(count > 0, estimate, stats.feat_mean[PELVIS])
    pelvis = np.where(never[..., PELVIS, :], estimate, canon[..., PELVIS, :])
    out = np.where(never, pelvis[..., None, :] + stats.feat_mean, canon)
    out[..., PELVIS, :] = pelvis
    if stats.travel:
        out = _travelling(out, never.reshape(never.shape[:-3] + (-1,)).all(-1), stats)
    return out


def _travelling(prior: np.ndarray, empty: np.ndarray, stats: "Stats") -> np.ndarray:
    """Windows (..., T, J, 3) with nothing observed: the still mean pose's pelvis moved onto a straight
    path from the origin along +Z at the training windows' mean pace (their mean place ahead, 0.93 m,
    reached mid-window: 0.44 m/s), where such a window's ground truth starts (facing_unobserved). The
    network's convolutions see no time, and a still prior is the same at every frame: generated
    pelvises could only wander where their noise took them (walks went backwards as often as
    forwards). Beside a path that moves, every frame is told where it lies."""
    if not empty.any():
        return prior
    T = prior.shape[-3]
    path = np.zeros((T, 3))
    path[:, 1] = stats.feat_mean[PELVIS, 1]
    path[:, 2] = 2.0 * stats.feat_mean[PELVIS, 2] * np.arange(T) / max(T - 1, 1)
    out = prior.copy()
    moved = out[empty]
    out[empty] = moved + (path - moved[..., PELVIS, :])[..., None, :]  # the body carried along
    return out


def prepare(observed: np.ndarray, mask: np.ndarray, stats: "Stats | None" = None) -> Window:
    """World-space observation (B, T, J, 3) + mask -> the network's view of it. With `stats`, the
    prior is filled as the stats say (FILLS) and never-observed entries start at the training mean
    (see fill_unobserved); without, it is the linear fill."""
    mask = full_mask(mask, observed.shape[-3], observed.shape[-2])
    mask = np.broadcast_to(mask, observed.shape)
    observed = np.where(mask, observed, 0.0)
    frame = canonical_frame(observed, mask)
    cmask = canonical_mask(mask, frame)
    canon = np.where(cmask, frame.to_canonical(observed), 0.0)
    filled = FILLS[stats.fill if stats is not None else "linear"](canon, cmask)
    if stats is not None:
        filled = fill_unobserved(filled, cmask, stats)
    prior = to_output_features(filled)
    scale = None if stats is None else stats.residual_scale(cmask)
    return Window(canon.astype(np.float32), cmask, prior.astype(np.float32), frame, scale)


def finish(features: np.ndarray, window: Window, observed: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Network output features -> world positions, with every observed entry pasted back exactly."""
    world = window.frame.to_world(from_output_features(features.astype(np.float64)))
    mask = np.broadcast_to(full_mask(mask, observed.shape[-3], observed.shape[-2]), world.shape)
    return np.where(mask, np.broadcast_to(observed, world.shape), world).astype(np.float32)


@dataclass
class Stats:
    """Per-channel normalisation (J, 3) of canonical positions and output features (inputs), and the
    scale of the network's output, the residual of the ground truth over the filled prior: a table
    (MAX_DISTANCE + 1, J, 3) by distance to the nearest key, or (J, 3) in weights older than it."""
    canon_mean: np.ndarray
    canon_std: np.ndarray
    feat_mean: np.ndarray
    feat_std: np.ndarray
    res_std: np.ndarray
    fill: str = "linear"  # how the prior fills hidden entries (a key of FILLS); the model's config says
    travel: bool = False  # a window with nothing observed: its prior's pelvis travels (fill_unobserved)

    @classmethod
    def from_arrays(cls, d: dict[str, np.ndarray], config: dict) -> "Stats":
        """The statistics saved with a checkpoint; its model `config` names the prior's fill (weights
        older than that setting refine the linear one)."""
        fill = config.get("prior_fill", "linear")
        if fill not in FILLS:
            raise ValueError(f"unknown prior fill {fill!r}; expected one of {', '.join(FILLS)}")
        return cls(*(np.asarray(d[f"stats.{k}"], np.float32) for k in FIELDS), fill=fill,
                   travel=bool(config.get("prior_travel", False)))

    def residual_scale(self, cmask: np.ndarray) -> np.ndarray:
        """(..., T, J, 3) unit of the network's output per entry. By distance to the nearest key: a
        frame beside a key needs millimetres of correction, one 60 frames out tens of centimetres,
        and one unit for both made the network's small errors larger than linear's at dense keys."""
        if self.res_std.ndim == 2:
            return np.broadcast_to(self.res_std, cmask.shape)
        j, c = self.res_std.shape[1:]
        return self.res_std[key_distance(cmask), np.arange(j)[:, None], np.arange(c)]

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"stats.{k}": np.asarray(getattr(self, k), np.float32)
                for k in FIELDS}


FIELDS = ("canon_mean", "canon_std", "feat_mean", "feat_std", "res_std")


def _channels_first(x: np.ndarray) -> np.ndarray:
    """(B, T, J, 3) -> (B, J*3, T)."""
    return np.ascontiguousarray(x.reshape(x.shape[0], x.shape[1], -1).transpose(0, 2, 1))


def network_input(values: np.ndarray, mask: np.ndarray, prior: np.ndarray, stats: Stats) -> np.ndarray:
    """(B, 3*J*3, T): normalised observed values (zero where hidden), the mask, the normalised prior."""
    norm = np.where(mask, (values - stats.canon_mean) / stats.canon_std, 0.0)
    prior_n = (prior - stats.feat_mean) / stats.feat_std
    return np.concatenate([_channels_first(norm), _channels_first(mask.astype(np.float32)),
                           _channels_first(prior_n)], 1).astype(np.float32)


def residual_to_features(residual: np.ndarray, window: Window) -> np.ndarray:
    """Network output (B, J*3, T) in the window's units (its `scale`) -> output features (B, T, J, 3)."""
    b, _, t = residual.shape
    res = residual.transpose(0, 2, 1).reshape(b, t, -1, 3)
    return window.prior + res * window.scale
