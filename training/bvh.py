"""BVH files -> canonical joint positions (metres, Y up, 30 fps), vectorised over frames.

Any humanoid BVH is read with its own hierarchy, units and frame rate; the joints are matched to
`model.skeleton.JOINTS` by the shared name mapper; local rotations are kept (as quaternions) so the
SLERP baseline can interpolate them and run them back through forward kinematics.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from model.skeleton import JOINTS, MappingError, map_joint_names, split_end_site

TARGET_FPS = 30.0
# Plausible head-to-foot chain lengths (pelvis->head plus pelvis->foot) per unit, in that unit.
UNITS = (("m", 1.0), ("cm", 0.01), ("inch", 0.0254), ("mm", 0.001), ("dm", 0.1))
CHAIN_RANGE_M = (0.9, 2.1)


class BVHError(ValueError):
    """A file that can't become canonical motion; the message says why and what to do."""


@dataclass
class Hierarchy:
    names: list[str]              # joints, then end sites as '<parent>@end'
    parents: np.ndarray           # (N,) parent index, -1 for the root
    offsets: np.ndarray           # (N, 3) rest offsets in file units
    channels: list[list[str]]     # per node, e.g. ['Xposition', ..., 'Yrotation']; [] for end sites


@dataclass
class Motion:
    """One clip in canonical form. positions are global, metres, Y up, at `fps`."""
    positions: np.ndarray                 # (F, J, 3) float32
    fps: float
    name: str = ""
    action: str | None = None
    style: str | None = None
    source_fps: float = TARGET_FPS
    # Everything the SLERP baseline needs to redo forward kinematics, already in metres:
    quats: np.ndarray | None = None         # (F, N, 4) local rotations (x, y, z, w) of every node
    translations: np.ndarray | None = None  # (F, N, 3) local translations (position channels or offsets)
    hierarchy: Hierarchy | None = None
    joint_nodes: list[int] = field(default_factory=list)  # node index of each canonical joint


def parse_bvh(text: str, name: str = "file") -> tuple[Hierarchy, np.ndarray, float]:
    """Parse BVH text into its hierarchy, the (F, C) channel matrix and the header frame time."""
    head, sep, motion = text.partition("MOTION")
    if not sep:
        raise BVHError(f"{name}: no MOTION section; the file is truncated or not a BVH file.")
    tokens = head.split()
    if not tokens or tokens[0] != "HIERARCHY":
        raise BVHError(f"{name}: does not start with HIERARCHY; not a BVH file.")
    names, parents, offsets, channels, stack = [], [], [], [], []
    i, last = 1, -1
    try:
        while i < len(tokens):
            tok = tokens[i]
            if tok in ("ROOT", "JOINT"):
                names.append(tokens[i + 1]); parents.append(stack[-1] if stack else -1)
                offsets.append([0.0, 0.0, 0.0]); channels.append([]); last = len(names) - 1; i += 2
            elif tok == "End":
                parent = stack[-1]
                names.append(names[parent] + "@end"); parents.append(parent)
                offsets.append([0.0, 0.0, 0.0]); channels.append([]); last = len(names) - 1; i += 2
            elif tok == "{":
                stack.append(last); i += 1
            elif tok == "}":
                stack.pop(); i += 1
            elif tok == "OFFSET":
                offsets[last] = [float(t) for t in tokens[i + 1:i + 4]]; i += 4
            elif tok == "CHANNELS":
                n = int(tokens[i + 1]); channels[last] = tokens[i + 2:i + 2 + n]; i += 2 + n
            else:
                raise BVHError(f"{name}: unexpected token {tok!r} in the hierarchy.")
    except (IndexError, ValueError) as exc:
        if isinstance(exc, BVHError):
            raise
        raise BVHError(f"{name}: the hierarchy is malformed ({exc}).") from None
    if not names:
        raise BVHError(f"{name}: the hierarchy has no joints.")
    lines = motion.strip().split("\n", 2)
    try:
        frames = int(lines[0].split(":")[1])
        frame_time = float(lines[1].split(":")[1])
    except (IndexError, ValueError):
        raise BVHError(f"{name}: the MOTION header (Frames / Frame Time) is missing or malformed.") from None
    if frames <= 0:
        raise BVHError(f"{name}: the file has no frames of motion.")
    width = sum(len(c) for c in channels)
    values = np.array(lines[2].split() if len(lines) > 2 else [], dtype=np.float64)
    if values.size < frames * width:
        raise BVHError(f"{name}: truncated: the header promises {frames} frames of {width} channels "
                       f"but only {values.size // max(width, 1)} complete frames are present.")
    hierarchy = Hierarchy(names, np.array(parents), np.array(offsets, dtype=np.float64), channels)
    return hierarchy, values[:frames * width].reshape(frames, width), frame_time


def local_transforms(h: Hierarchy, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per node local rotations (F, N, 4 quaternions) and translations (F, N, 3), file units."""
    frames, n = data.shape[0], len(h.names)
    quats = np.zeros((frames, n, 4)); quats[..., 3] = 1.0
    trans = np.broadcast_to(h.offsets, (frames, n, 3)).copy()
    col = 0
    for node, chans in enumerate(h.channels):
        rot_axes, rot_cols = "", []
        for k, ch in enumerate(chans):
            axis, kind = ch[0].upper(), ch[1:].lower()
            if kind == "position":
                trans[:, node, "XYZ".index(axis)] = data[:, col + k]
            elif kind == "rotation":
                rot_axes += axis; rot_cols.append(col + k)
        if rot_axes:  # intrinsic rotations in channel order: R = R_a @ R_b @ R_c
            quats[:, node] = Rotation.from_euler(rot_axes, data[:, rot_cols], degrees=True).as_quat()
        col += len(chans)
    return quats, trans


def forward_kinematics(parents: np.ndarray, quats: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """Global positions (F, N, 3) from local rotations and translations; parents precede children."""
    frames, n = quats.shape[:2]
    rot = Rotation.from_quat(quats.reshape(-1, 4)).as_matrix().reshape(frames, n, 3, 3)
    g_rot = np.empty_like(rot); g_pos = np.empty((frames, n, 3))
    for node in range(n):
        p = parents[node]
        if p < 0:
            g_rot[:, node], g_pos[:, node] = rot[:, node], trans[:, node]
        else:
            g_pos[:, node] = g_pos[:, p] + np.einsum("fij,fj->fi", g_rot[:, p], trans[:, node])
            g_rot[:, node] = g_rot[:, p] @ rot[:, node]
    return g_pos


def detect_unit(h: Hierarchy, nodes: dict[str, int], name: str) -> tuple[str, float]:
    """Choose the unit from bone lengths (pose-independent): pelvis->head plus pelvis->foot."""
    def chain(*joints: str) -> float:
        total = 0.0
        for j in joints[1:]:
            node = nodes[j]
            while node != nodes[joints[0]] and node >= 0:
                total += float(np.linalg.norm(h.offsets[node])); node = h.parents[node]
            joints = (j,) + joints[1:]
        return total
    length = chain("pelvis", "head") + chain("pelvis", "l_foot")
    for unit, scale in UNITS:
        if CHAIN_RANGE_M[0] <= length * scale <= CHAIN_RANGE_M[1]:
            return unit, scale
    raise BVHError(f"{name}: implausible size: pelvis-to-head plus pelvis-to-foot is {length:.4g} file units, "
                   "which is no human height in metres, centimetres, millimetres or inches. "
                   "Check the file's scale.")


def _resample(quats: np.ndarray, trans: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Resample rotations (normalised lerp) and translations (lerp) to TARGET_FPS."""
    frames = quats.shape[0]
    if abs(fps - TARGET_FPS) < 1e-3 or frames < 2:
        return quats, trans
    t = np.arange(0.0, (frames - 1) / fps + 1e-9, 1.0 / TARGET_FPS) * fps
    i0 = np.minimum(np.floor(t).astype(int), frames - 1); i1 = np.minimum(i0 + 1, frames - 1)
    w = (t - i0)[:, None, None]
    q0, q1 = quats[i0], quats[i1]
    q1 = np.where(np.sum(q0 * q1, -1, keepdims=True) < 0, -q1, q1)
    q = (1 - w) * q0 + w * q1
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return q, (1 - w) * trans[i0] + w * trans[i1]


def bvh_to_motion(text: str, name: str = "file", fps_override: float | None = None,
                  action: str | None = None, style: str | None = None) -> Motion:
    """Parse, map joint names, pick the unit, resample to 30 fps and run forward kinematics."""
    h, data, frame_time = parse_bvh(text, name)
    fps = fps_override or (1.0 / frame_time if frame_time > 0 else 0.0)
    if not 1.0 <= fps <= 1000.0:
        raise BVHError(f"{name}: frame time {frame_time} gives {fps:.3g} fps; pass an fps override.")
    joint_names = [n for n in h.names if not n.endswith("@end")]
    try:
        mapping = map_joint_names(joint_names + [n for n in h.names if n.endswith("@end")])
    except MappingError as exc:
        raise BVHError(f"{name}: not a humanoid skeleton this tool can read. {exc}") from None
    node_of = {n: i for i, n in enumerate(h.names)}
    nodes = {}
    for joint, source in mapping.items():
        base, end = split_end_site(source)
        nodes[joint] = node_of[base + "@end"] if end else node_of[base]
    unit, scale = detect_unit(h, nodes, name)
    quats, trans = _resample(*local_transforms(h, data), fps)
    h.offsets = h.offsets * scale
    trans *= scale
    positions = forward_kinematics(h.parents, quats, trans)
    joint_nodes = [nodes[j] for j in JOINTS]
    return Motion(positions[:, joint_nodes].astype(np.float32), TARGET_FPS, name, action, style, fps,
                  quats, trans, h, joint_nodes)


def load_bvh(path: str, fps_override: float | None = None, action: str | None = None,
             style: str | None = None) -> Motion:
    name = os.path.basename(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as exc:
        raise BVHError(f"{name}: can't read the file ({exc.strerror}).") from None
    return bvh_to_motion(text, name, fps_override, action, style)
