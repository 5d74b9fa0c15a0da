"""Canonical joint positions -> local bone rotations and a root location, on the rig's own bones.

Parents first, each mapped bone that has canonical children is turned so they point where the
model put them: a swing onto its first child, then (pelvis, chest) a twist about that axis fitted to
the other children. A single-child bone keeps the twist of the original animation, and every bone
the model knows nothing about (fingers, face, twist bones) keeps its original local transform, so
the result stays the user's animation wherever the model has nothing to say. Arrays only: the
armature is read in rig_io.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..model.skeleton import INDEX, PARENTS

PELVIS = INDEX["pelvis"]


@dataclass
class Rig:
    """The armature's rest skeleton and its mapping onto the canonical joints (armature space)."""
    names: list[str]
    parents: np.ndarray     # (B,) -1 for roots
    rest_rel: np.ndarray    # (B, 4, 4) rest matrix relative to the parent's rest matrix
    connected: np.ndarray   # (B,) bool: a connected bone ignores its location
    lengths: np.ndarray     # (B,)
    joint_bones: np.ndarray  # (21,) bone of each canonical joint
    joint_tails: np.ndarray  # (21,) bool: the joint is that bone's tail, not its head
    order: list[int] = field(init=False)

    def __post_init__(self):
        self.order = sorted(range(len(self.names)), key=lambda b: len(self.ancestors(b)))  # parents first

    def ancestors(self, bone: int) -> list[int]:
        out, p = [], self.parents[bone]
        while p >= 0:
            out.append(int(p))
            p = self.parents[p]
        return out


def _effective(rig: Rig, basis: np.ndarray, bone: int) -> np.ndarray:
    """The bone's local matrix under its parent: rest offset @ basis (location dropped if connected)."""
    m = basis[..., bone, :, :].copy()
    if rig.connected[bone]:
        m[..., :3, 3] = 0.0
    return rig.rest_rel[bone] @ m


def joint_positions(rig: Rig, pose: np.ndarray) -> np.ndarray:
    """(T, B, 4, 4) pose matrices -> (T, 21, 3) canonical joints (bone heads or tails)."""
    m = pose[:, rig.joint_bones]
    tail = np.einsum("tjab,jb->tja", m[..., :3, :3], np.outer(rig.lengths[rig.joint_bones], [0.0, 1.0, 0.0]))
    return m[..., :3, 3] + np.where(rig.joint_tails[:, None], tail, 0.0)


def _rotation_between(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(T, 3) x 2 -> (T, 3, 3): the smallest rotation turning direction v onto direction w."""
    v = v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
    w = w / np.maximum(np.linalg.norm(w, axis=-1, keepdims=True), 1e-12)
    axis = _cross(v, w)
    sin, cos = np.linalg.norm(axis, axis=-1), np.sum(v * w, -1)
    # Opposite directions: turn half way round any axis perpendicular to v.
    other = np.where(np.abs(v[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    axis = np.where((sin < 1e-9)[:, None], _cross(v, np.broadcast_to(other, v.shape)), axis)
    return _axis_angle(axis, np.arctan2(sin, cos))


def _axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    axis = axis / np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-12)
    x, y, z = axis[:, 0], axis[:, 1], axis[:, 2]
    zero = np.zeros_like(x)
    k = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3) + s * k + (1.0 - c) * (k @ k)


def _aim(vectors: list[np.ndarray], targets: list[np.ndarray]) -> np.ndarray:
    """Swing the first vector onto its target, then twist about it to best fit the others."""
    turn = _rotation_between(vectors[0], targets[0])
    if len(vectors) == 1:
        return turn
    axis = targets[0] / np.maximum(np.linalg.norm(targets[0], axis=-1, keepdims=True), 1e-12)
    sin = cos = 0.0
    for v, w in zip(vectors[1:], targets[1:]):
        a, b = np.einsum("tij,tj->ti", turn, v), w
        a = a - np.sum(a * axis, -1, keepdims=True) * axis
        b = b - np.sum(b * axis, -1, keepdims=True) * axis
        sin = sin + np.sum(axis * _cross(a, b), -1)
        cos = cos + np.sum(a * b, -1)
    return _axis_angle(axis, np.arctan2(sin, cos)) @ turn


@dataclass
class Solution:
    bones: list[int]        # bones whose rotation was solved, parents first
    rotations: np.ndarray   # (T, len(bones), 3, 3) local rotations (basis, scale removed)
    mover: int              # the bone whose location carries the pelvis
    location: np.ndarray    # (T, 3) its new basis location


def aims(rig: Rig) -> dict[int, list[int]]:
    """Bone -> canonical joints it aims at (first one is the swing axis), parents first."""
    out: dict[int, list[int]] = {}
    for j, p in enumerate(PARENTS):
        if p >= 0 and not rig.joint_tails[p]:
            out.setdefault(int(rig.joint_bones[p]), []).append(j)
    return {b: out[b] for b in rig.order if b in out}


def mover(rig: Rig) -> int:
    """The bone whose location moves the pelvis: the pelvis bone or its nearest unconnected ancestor."""
    b = int(rig.joint_bones[PELVIS])
    while rig.connected[b] and rig.parents[b] >= 0:
        b = int(rig.parents[b])
    return b


def _offset(rig: Rig, basis: np.ndarray, bone: int, joint: int) -> np.ndarray:
    """(T, 3) position of a canonical joint in `bone`'s pose frame through the original pose of
    the unmapped bones between them."""
    target, at_tail = int(rig.joint_bones[joint]), bool(rig.joint_tails[joint])
    chain = [] if target == bone else [target] + rig.ancestors(target)[:rig.ancestors(target).index(bone)]
    m = np.broadcast_to(np.eye(4), basis.shape[:1] + (4, 4))
    for b in reversed(chain):
        m = m @ _effective(rig, basis, b)
    if at_tail:
        return m[:, :3, :3] @ np.array([0.0, rig.lengths[target], 0.0]) + m[:, :3, 3]
    return m[:, :3, 3]


class _Poser:
    """Pose matrices computed on demand, parents first: fingers and face are never visited."""

    def __init__(self, rig: Rig, basis: np.ndarray):
        self.rig, self.basis, self.cache = rig, basis, {}

    def above(self, bone: int) -> np.ndarray:
        p = self.rig.parents[bone]
        return np.broadcast_to(np.eye(4), self.basis.shape[:1] + (4, 4)) if p < 0 else self[p]

    def __getitem__(self, bone: int) -> np.ndarray:
        if bone not in self.cache:
            self.cache[bone] = self.above(bone) @ _effective(self.rig, self.basis, bone)
        return self.cache[bone]


def solve(rig: Rig, basis: np.ndarray, targets: np.ndarray) -> Solution:
    """Original basis matrices (T, B, 4, 4) + target joints (T, 21, 3), armature space -> Solution."""
    basis = np.array(basis, np.float64)
    carrier, pelvis = mover(rig), int(rig.joint_bones[PELVIS])
    # Every bone above the pelvis is unmapped and keeps its pose, so moving the carrier's head by
    # the pelvis error moves the pelvis exactly onto its target.
    original = _Poser(rig, basis)
    frame = original.above(carrier) @ rig.rest_rel[carrier]
    head = original[carrier][:, :3, 3] + targets[:, PELVIS] - original[pelvis][:, :3, 3]
    basis[:, carrier, :3, 3] = np.einsum("tij,tj->ti", affine_inverse(frame), np.c_[head, np.ones(len(head))])[:, :3]

    plan = aims(rig)
    offsets = {b: [_offset(rig, basis, b, j) for j in joints] for b, joints in plan.items()}
    pose = _Poser(rig, basis)
    rotations = []
    for b, joints in plan.items():
        above, m = pose.above(b), pose[b]
        turn = _aim([np.einsum("tij,tj->ti", m[:, :3, :3], o) for o in offsets[b]],
                    [targets[:, j] - m[:, :3, 3] for j in joints])
        frame3 = (above @ rig.rest_rel[b])[:, :3, :3]
        new3 = _inverse3(frame3) @ turn @ frame3 @ basis[:, b, :3, :3]
        scale = np.linalg.norm(basis[:, b, :3, :3], axis=-2)
        rot = _orthonormal(new3 / np.maximum(scale[:, None, :], 1e-12))
        basis[:, b, :3, :3] = rot * scale[:, None, :]
        pose.cache[b] = above @ _effective(rig, basis, b)
        rotations.append(rot)
    return Solution(list(plan), np.stack(rotations, 1), carrier, basis[:, carrier, :3, 3].copy())


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.cross without its axis shuffling, which dominates on many short vectors."""
    return np.stack([a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1], a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
                     a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]], -1)


def _inverse3(m: np.ndarray) -> np.ndarray:
    """Batched 3x3 inverse by cofactors: np.linalg pays a LAPACK call per tiny matrix."""
    c0, c1, c2 = m[..., :, 0], m[..., :, 1], m[..., :, 2]
    rows = np.stack([_cross(c1, c2), _cross(c2, c0), _cross(c0, c1)], -2)
    return rows / np.sum(c0 * rows[..., 0, :], -1)[..., None, None]


def affine_inverse(m: np.ndarray) -> np.ndarray:
    """Inverse of (..., 4, 4) affine matrices."""
    out = np.zeros(np.broadcast_shapes(m.shape, (4, 4)))
    out[..., :3, :3] = _inverse3(m[..., :3, :3])
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", out[..., :3, :3], m[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def _orthonormal(m: np.ndarray) -> np.ndarray:
    """Gram-Schmidt on the columns: removes the rounding a chain of products leaves."""
    x = m[..., :, 0] / np.linalg.norm(m[..., :, 0], axis=-1, keepdims=True)
    y = m[..., :, 1] - np.sum(x * m[..., :, 1], -1, keepdims=True) * x
    y /= np.linalg.norm(y, axis=-1, keepdims=True)
    return np.stack([x, y, _cross(x, y)], -1)


def matrices_to_quaternions(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 4) unit quaternions (w, x, y, z)."""
    w = np.sqrt(np.maximum(0.0, 1.0 + m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2])) / 2
    x = np.sqrt(np.maximum(0.0, 1.0 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2])) / 2
    y = np.sqrt(np.maximum(0.0, 1.0 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2])) / 2
    z = np.sqrt(np.maximum(0.0, 1.0 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2])) / 2
    q = np.stack([w, np.copysign(x, m[..., 2, 1] - m[..., 1, 2]), np.copysign(y, m[..., 0, 2] - m[..., 2, 0]),
                  np.copysign(z, m[..., 1, 0] - m[..., 0, 1])], -1)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def _matrices_to_euler(m: np.ndarray, order: str) -> tuple[np.ndarray, np.ndarray]:
    """Both Euler solutions (..., 3) of Blender's order ('XYZ': X applied first)."""
    i, j, k = ("XYZ".index(c) for c in order)
    s = 1.0 if (j - i) % 3 == 1 else -1.0
    b = np.arctan2(-s * m[..., k, i], np.hypot(m[..., i, i], m[..., j, i]))
    a = np.arctan2(s * m[..., k, j], m[..., k, k])
    c = np.arctan2(s * m[..., j, i], m[..., i, i])
    one, two = np.empty(m.shape[:-2] + (3,)), np.empty(m.shape[:-2] + (3,))
    one[..., i], one[..., j], one[..., k] = a, b, c
    two[..., i], two[..., j], two[..., k] = a + np.pi, np.pi - b, c + np.pi
    return one, two


def _near(angles: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return angles + 2 * np.pi * np.round((reference - angles) / (2 * np.pi))


def rotation_channels(rot: np.ndarray, mode: str, reference: np.ndarray) -> np.ndarray:
    """(T, 3, 3) local rotations -> (T, C) values of the bone's rotation channels in its mode, on the
    same branch as `reference` (the original animation's channel values on those frames), so the
    new curve never jumps a full turn or flips sign against the user's keys beside it."""
    if mode == "QUATERNION":
        q = matrices_to_quaternions(rot)
        return np.where(np.sum(q * reference, -1, keepdims=True) < 0, -q, q)
    if mode == "AXIS_ANGLE":
        q = matrices_to_quaternions(rot)
        norm = np.linalg.norm(q[:, 1:], axis=-1, keepdims=True)
        axis = np.where(norm > 1e-12, q[:, 1:] / np.maximum(norm, 1e-12), [0.0, 1.0, 0.0])
        return np.c_[2.0 * np.arctan2(norm[:, 0], q[:, 0]), axis]
    one, two = (_near(e, reference) for e in _matrices_to_euler(rot, mode))
    closer = np.abs(one - reference).sum(-1, keepdims=True) <= np.abs(two - reference).sum(-1, keepdims=True)
    return np.where(closer, one, two)


def rotation_path(mode: str) -> str:
    return {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}.get(mode, "rotation_euler")
