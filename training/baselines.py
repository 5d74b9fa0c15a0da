"""Simple methods the model has to beat, one per task, scored by the same harness.

- interpolate: linear interpolation of global joint positions between observed frames; with only past
  frames observed it holds the last one, which is the zero-velocity predictor.
- interpolate(..., velocity_fill): the same plus the velocity that consecutive observed frames give a
  key (the prior the model refines): in-betweening that leaves the context moving as it moved, and
  prediction that carries on at a fading velocity.
- slerp_inbetween: root LERP + SLERP of every local rotation, through forward kinematics (what a
  keyframe animator's default tangents give).
- motion matching (model.library.MotionLibrary over the training split): retrieval of the
  best-matching training segment, endpoint-blended. On near-copies of training takes it is very
  strong (docs/CALIBRATION.md), which is exactly why it is reported.
- MeanDepth (2D-to-3D lifting) and MeanPose (completion): the training split's average, placed.
"""
from __future__ import annotations

import numpy as np

from model.library import facing_frame
from model.keys import interpolate_observed
from model.representation import Frame, full_mask
from model.skeleton import INDEX, LOWER_BODY, UPPER_BODY
from training.bvh import forward_kinematics

PELVIS, SPINE = INDEX["pelvis"], INDEX["spine"]
THIGHS = (INDEX["l_thigh"], INDEX["r_thigh"])
ARMS = (INDEX["l_upperarm"], INDEX["r_upperarm"])


def interpolate(windows: np.ndarray, frames: np.ndarray, fill=interpolate_observed) -> np.ndarray:
    """(N, T, J, 3) windows, (T,) observed-frame mask -> every hidden frame interpolated / held
    (or, with fill=velocity_fill, from the keys' positions and velocities)."""
    mask = np.broadcast_to(full_mask(frames, windows.shape[1], windows.shape[2]), windows.shape)
    return fill(windows, mask)


def slerp(q0: np.ndarray, q1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Spherical interpolation of (N, 4) quaternions at weights (T,) -> (T, N, 4), shortest arc."""
    dot = np.sum(q0 * q1, -1)
    q1 = np.where(dot[:, None] < 0, -q1, q1)
    theta = np.arccos(np.clip(np.abs(dot), 0.0, 1.0))[None, :, None]
    w = w[:, None, None]
    small = theta < 1e-6
    sin = np.where(small, 1.0, np.sin(theta))
    a = np.where(small, 1.0 - w, np.sin((1.0 - w) * theta) / sin)
    b = np.where(small, w, np.sin(w * theta) / sin)
    q = a * q0 + b * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def slerp_inbetween(quats: np.ndarray, trans: np.ndarray, parents: np.ndarray, nodes: list[int],
                    k0: int, k1: int) -> np.ndarray:
    """Canonical joint positions (k1-k0-1, J, 3) of the frames strictly between keys k0 and k1,
    from SLERPed local rotations and LERPed local translations (root included) of the whole rig."""
    w = np.arange(1, k1 - k0) / (k1 - k0)
    q = slerp(quats[k0], quats[k1], w)
    t = trans[k0] + w[:, None, None] * (trans[k1] - trans[k0])
    return forward_kinematics(parents, q, t)[:, nodes]


class MeanDepth:
    """2D-to-3D lifting baseline: every joint at its mean root-relative depth (world X) in training."""

    def __init__(self, positions: np.ndarray):
        self.depth = (positions[..., 0] - positions[..., PELVIS:PELVIS + 1, 0]).reshape(-1, positions.shape[-2]).mean(0)

    def lift(self, yz: np.ndarray) -> np.ndarray:
        """(N, T, J, 2) image-plane (y, z) in metres -> (N, T, J, 3) root-relative positions."""
        rel = yz - yz[..., PELVIS:PELVIS + 1, :]
        x = np.broadcast_to(self.depth, rel.shape[:-1])
        return np.stack([x, rel[..., 0], rel[..., 1]], -1)


class MeanPose:
    """Completion baseline: hidden joints at their mean offset from an observed anchor joint, in the
    body's facing frame. Lower body hidden: anchored on the spine, facing from the upper arms;
    upper body hidden: anchored on the pelvis, facing from the thighs."""

    SETUPS = {"lower_body": (LOWER_BODY, SPINE, ARMS), "upper_body": (UPPER_BODY, PELVIS, THIGHS)}

    def __init__(self, positions: np.ndarray):
        pos = positions.reshape(-1, positions.shape[-2], 3)[::4].astype(np.float64)
        self.offsets = {}
        for part, (_, anchor, pair) in self.SETUPS.items():
            frame = self._frame(pos, anchor, pair)
            self.offsets[part] = frame.to_canonical(pos[:, None])[:, 0].mean(0)

    @staticmethod
    def _frame(pose: np.ndarray, anchor: int, pair: tuple[int, int]) -> Frame:
        f = facing_frame(pose, pair)
        return Frame(pose[..., anchor, :], f.yaw)

    def complete(self, windows: np.ndarray, part: str) -> np.ndarray:
        """(N, T, J, 3) windows -> the same with `part`'s joints replaced by the placed mean."""
        hidden, anchor, pair = self.SETUPS[part]
        frame = self._frame(windows, anchor, pair)
        mean = np.broadcast_to(self.offsets[part], windows.shape[:2] + self.offsets[part].shape)
        placed = Frame(frame.origin.reshape(-1, 3), frame.yaw.reshape(-1)).to_world(
            mean.reshape((-1, 1) + mean.shape[2:]))[:, 0].reshape(windows.shape)
        out = windows.copy()
        out[:, :, list(hidden)] = placed[:, :, list(hidden)]
        return out
