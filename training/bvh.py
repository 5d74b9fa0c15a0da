"""BVH files -> canonical joint positions (metres, Y up, 30 fps), vectorised over frames.

Any humanoid BVH is read with its own hierarchy, units and frame rate; the joints are matched to
`model.skeleton.JOINTS` by the shared name mapper; local rotations are kept (as quaternions) so the
SLERP baseline can interpolate them and run them back through forward kinematics.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from model.skeleton import END_SITE, JOINTS, MappingError, map_joint_names, split_end_site

TARGET_FPS = 30.0
# Plausible head-to-foot chain lengths (pelvis->head plus pelvis->foot) per unit, in that unit.
UNITS = (("m", 1.0), ("cm", 0.01), ("inch", 0.0254), ("mm", 0.001), ("dm", 0.1))
CHAIN_RANGE_M = (0.9, 2.1)
BIND_SPEED_MS, BIND_POSE_FRAMES = 20.0, 8  # see _bind_pose_frames


_MOTION = re.compile(r"^\s*MOTION\s*$", re.M)
_HEADER = re.compile(r"\s*Frames:\s*(\S+)\s+Frame\s+Time:\s*(\S+)", re.I)
_CHANNEL = re.compile(r"[XYZ](position|rotation)", re.I)


class BVHError(ValueError):
    """A file that can't become canonical motion; the message says why and what to do."""


@dataclass
class Hierarchy:
    names: list[str]              # joints and end sites ('<parent>@end'), parents first
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
    found = _MOTION.search(text)
    if not found:
        raise BVHError(f"{name}: no MOTION section; the file is truncated or not a BVH file.")
    tokens = text[:found.start()].split()
    if not tokens or tokens[0] != "HIERARCHY":
        raise BVHError(f"{name}: does not start with HIERARCHY; not a BVH file.")
    names, parents, offsets, channels, stack = [], [], [], [], []
    i, last = 1, -1
    try:
        while i < len(tokens):
            tok = tokens[i]
            if tok in ("ROOT", "JOINT", "End"):
                parent = stack[-1] if stack else -1
                if tok == "End" and parent < 0:
                    raise BVHError(f"{name}: an End Site outside any joint.")
                names.append(tokens[i + 1] if tok != "End" else names[parent] + END_SITE)
                parents.append(parent); offsets.append([0.0, 0.0, 0.0]); channels.append([])
                last = len(names) - 1; i += 2
            elif tok == "{":
                stack.append(last); i += 1
            elif tok == "}":
                stack.pop(); i += 1
            elif tok == "OFFSET":
                offsets[last] = [float(t) for t in tokens[i + 1:i + 4]]; i += 4
            elif tok == "CHANNELS":
                n = int(tokens[i + 1]); channels[last] = tokens[i + 2:i + 2 + n]; i += 2 + n
                bad = [c for c in channels[last] if not _CHANNEL.fullmatch(c)]
                if bad:
                    raise BVHError(f"{name}: joint {names[last]!r} has unknown channel {bad[0]!r}.")
            else:
                raise BVHError(f"{name}: unexpected token {tok!r} in the hierarchy.")
    except (IndexError, ValueError) as exc:
        if isinstance(exc, BVHError):
            raise
        raise BVHError(f"{name}: the hierarchy is malformed ({exc}).") from None
    if not names:
        raise BVHError(f"{name}: the hierarchy has no joints.")
    header = _HEADER.match(text, found.end())
    if not header:
        raise BVHError(f"{name}: the MOTION header (Frames / Frame Time) is missing or malformed.")
    try:
        frames, frame_time = int(header.group(1)), float(header.group(2))
    except ValueError:
        raise BVHError(f"{name}: the MOTION header (Frames / Frame Time) is malformed.") from None
    if frames <= 0:
        raise BVHError(f"{name}: the file has no frames of motion.")
    width = sum(len(c) for c in channels)
    try:
        values = np.array(text[header.end():].split(), dtype=np.float64)
    except ValueError as exc:
        raise BVHError(f"{name}: the motion data holds a non-number ({exc}).") from None
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


def _chain_length(h: Hierarchy, node: int, ancestor: int) -> float:
    total = 0.0
    while node not in (ancestor, -1):
        total += float(np.linalg.norm(h.offsets[node])); node = h.parents[node]
    return total


def detect_unit(h: Hierarchy, nodes: dict[str, int], name: str) -> tuple[str, float]:
    """Choose the unit from bone lengths (pose-independent): pelvis->head plus pelvis->foot."""
    length = (_chain_length(h, nodes["head"], nodes["pelvis"]) +
              _chain_length(h, nodes["l_foot"], nodes["pelvis"]))
    for unit, scale in UNITS:
        if CHAIN_RANGE_M[0] <= length * scale <= CHAIN_RANGE_M[1]:
            return unit, scale
    raise BVHError(f"{name}: implausible size: pelvis-to-head plus pelvis-to-foot is {length:.4g} file units, "
                   f"which is no human in any of {', '.join(u for u, _ in UNITS)}. Check the file's scale.")


def frame_rate(frame_time: float, name: str, fps_override: float | None = None) -> float:
    """Frames per second; a header's rounded frame time (0.00833333) snaps to the whole rate (120),
    which would otherwise drift by a frame every few thousand."""
    fps = fps_override or (1.0 / frame_time if frame_time > 0 else 0.0)
    if not 1.0 <= fps <= 1000.0:
        raise BVHError(f"{name}: frame time {frame_time} gives {fps:.3g} fps; pass an fps override.")
    whole = round(fps)
    return float(whole) if abs(fps - whole) <= 1e-4 * fps else fps


def _resample(quats: np.ndarray, trans: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Resample rotations (normalised lerp) and translations (lerp) to TARGET_FPS.
    Output frame k samples source frame k * fps / 30 exactly (every 4th frame of a 120 fps clip)."""
    frames = quats.shape[0]
    if fps == TARGET_FPS or frames < 2:
        return quats, trans
    step = fps / TARGET_FPS
    t = np.arange(int((frames - 1) / step + 1e-6) + 1) * step
    i0 = np.minimum(np.floor(t + 1e-6).astype(int), frames - 1); i1 = np.minimum(i0 + 1, frames - 1)
    w = np.clip(t - i0, 0.0, 1.0)[:, None, None]
    q0, q1 = quats[i0], quats[i1]
    q1 = np.where(np.sum(q0 * q1, -1, keepdims=True) < 0, -q1, q1)
    q = (1 - w) * q0 + w * q1
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return q, (1 - w) * trans[i0] + w * trans[i1]


def _joint_nodes(h: Hierarchy, name: str) -> dict[str, int]:
    """Canonical joint -> node index, through the shared name mapper."""
    try:
        mapping = map_joint_names([n for n in h.names if not n.endswith(END_SITE)])
    except MappingError as exc:
        raise BVHError(f"{name}: not a humanoid skeleton: no joint found for {', '.join(exc.missing)} "
                       f"(closest naming convention: {exc.convention}, {exc.found} of {len(JOINTS)} "
                       "joints matched).") from None
    node_of: dict[str, int] = {}
    for i, n in enumerate(h.names):
        node_of.setdefault(n, i)  # the mapper also keeps the first of duplicate names
    nodes = {}
    for joint, source in mapping.items():
        if source not in node_of:  # an end-site candidate on a joint that has children instead
            raise BVHError(f"{name}: joint {split_end_site(source)[0]!r} has no End Site to stand in "
                           f"for the missing {joint} joint.")
        nodes[joint] = node_of[source]
    return nodes


def _bind_pose_frames(h: Hierarchy, data: np.ndarray, joints: list[int], scale: float, fps: float) -> int:
    """Leading frames to drop: a bind pose glued before the take (every CMU conversion here) makes
    joints teleport into frame 1 (> BIND_SPEED_MS), and the converter's filter rings for 7 more frames
    (10-25 m/s at any frame rate); 0 when the clip starts cleanly."""
    if len(data) <= 2 * BIND_POSE_FRAMES:
        return 0
    pos = forward_kinematics(h.parents, *local_transforms(h, data[:2]))[:, joints] * scale
    speed = np.linalg.norm(pos[1] - pos[0], axis=-1).max() * fps
    return BIND_POSE_FRAMES if speed > BIND_SPEED_MS else 0


def bvh_to_motion(text: str, name: str = "file", fps_override: float | None = None,
                  action: str | None = None, style: str | None = None) -> Motion:
    """Parse, map joint names, pick the unit, drop a leading bind pose, resample to 30 fps and run
    forward kinematics."""
    h, data, frame_time = parse_bvh(text, name)
    fps = frame_rate(frame_time, name, fps_override)
    nodes = _joint_nodes(h, name)
    _, scale = detect_unit(h, nodes, name)
    joint_nodes = [nodes[j] for j in JOINTS]
    data = data[_bind_pose_frames(h, data, joint_nodes, scale, fps):]
    quats, trans = _resample(*local_transforms(h, data), fps)
    h.offsets = h.offsets * scale
    trans *= scale
    positions = forward_kinematics(h.parents, quats, trans)
    return Motion(positions[:, joint_nodes].astype(np.float32), TARGET_FPS, name, action, style, fps,
                  quats, trans, h, joint_nodes)


def load_bvh(path: str, fps_override: float | None = None, action: str | None = None,
             style: str | None = None) -> Motion:
    """Read a BVH file; every failure is a BVHError whose message names the file."""
    name = os.path.basename(path)
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            text = f.read()
    except OSError as exc:
        raise BVHError(f"{name}: can't read the file ({exc.strerror}).") from None
    return bvh_to_motion(text, name, fps_override, action, style)
