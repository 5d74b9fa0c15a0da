"""Blender's half of the data road: keyed frames -> canonical positions + mask, and solved bone
rotations -> a NEW action. The only module that reads or writes animation data; the source action
is only ever read (copied, never edited), so every failure leaves the scene as it was.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass

import bpy
import numpy as np

from ..model.skeleton import JOINTS, PARENTS, MappingError, map_joint_names, split_end_site
from . import retarget

MODEL_FPS = 30.0
MAX_MODEL_FRAMES = 6000  # 200 s: beyond this a range is a mistake, and reading it would stall Blender
# Blender is Z up; the model is Y up: x_m = x_b, y_m = z_b, z_m = -y_b.
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
_BONE_PATH = re.compile(r'^pose\.bones\["((?:[^"\\]|\\.)*)"\]\.')


class RigError(Exception):
    """Input the operators refuse; the message says what is wrong and what to do."""


def animation(obj) -> tuple[bpy.types.Action | None, object]:
    """The armature's active action and (4.4+) its slot."""
    ad = obj.animation_data
    if ad is None or ad.action is None:
        return None, None
    return ad.action, getattr(ad, "action_slot", None)


def fcurves(action, slot) -> list:
    """The action's F-curves for this slot, in any 4.2-5.0 layout."""
    if getattr(action, "is_action_layered", False):
        from bpy_extras import anim_utils
        get = getattr(anim_utils, "action_get_channelbag_for_slot", None)
        if get is not None:
            bag = get(action, slot) if slot is not None else None
            return list(bag.fcurves) if bag is not None else []
    return list(action.fcurves)  # 4.2, and the legacy route 4.4/4.5 still offer


def bone_name(data_path: str) -> str | None:
    m = _BONE_PATH.match(data_path)
    return m.group(1).replace('\\"', '"').replace("\\\\", "\\") if m else None


def curve_frames(fc) -> np.ndarray:
    co = np.empty(len(fc.keyframe_points) * 2)
    fc.keyframe_points.foreach_get("co", co)
    return co.reshape(-1, 2)


def keyed_frames(curves) -> dict[str, set[int]]:
    """Bone name -> frames (rounded) on which any of its channels has a key."""
    out: dict[str, set[int]] = {}
    for fc in curves:
        bone = bone_name(fc.data_path)
        if bone is not None:
            out.setdefault(bone, set()).update(np.rint(curve_frames(fc)[:, 0]).astype(int).tolist())
    return out


def check_source(obj, action, curves) -> None:
    if obj.library is not None:
        raise RigError(f"'{obj.name}' is linked from another file and can't take new actions: "
                       "make it local first (Object > Relations > Make Local).")
    if action is None:
        return
    if action.library is not None:
        raise RigError(f"Action '{action.name}' is linked from another file (read-only): make it local "
                       "first (Object > Relations > Make Local > All), then run this again.")
    for fc in curves:
        points = np.empty((3, len(fc.keyframe_points) * 2))
        for row, attr in zip(points, ("co", "handle_left", "handle_right")):  # a NaN handle spoils its segment
            fc.keyframe_points.foreach_get(attr, row)
        bad = ~np.isfinite(points.reshape(3, -1, 2)).all(axis=(0, 2))
        if bad.any():
            raise RigError(f"Action '{action.name}': F-curve {fc.data_path}[{fc.array_index}] has a NaN or "
                           f"infinite key or handle (key {int(np.flatnonzero(bad)[0])}); fix or delete it first.")


def bone_mapping(obj) -> dict[str, str]:
    """Canonical joint -> 'bone' or 'bone@end', from the names plus the Bone Map overrides."""
    names = [b.name for b in obj.data.bones]
    overrides = {item.joint: item.bone + ("@end" if item.use_tail else "")
                 for item in obj.motion_cvae.bone_map if item.bone}
    try:
        return map_joint_names(names, overrides)
    except MappingError as exc:
        raise RigError(f"'{obj.name}': {exc}") from None
    except ValueError as exc:
        raise RigError(f"'{obj.name}' Bone Map: {exc}") from None


def build_rig(obj, mapping: dict[str, str]) -> retarget.Rig:
    bones = obj.data.bones
    names = [b.name for b in bones]
    index = {n: i for i, n in enumerate(names)}
    parents = np.array([index[b.parent.name] if b.parent else -1 for b in bones])
    rest = np.empty(len(bones) * 16)
    bones.foreach_get("matrix_local", rest)
    rest = rest.reshape(-1, 4, 4).transpose(0, 2, 1)
    rest_rel = np.array([rest[i] if p < 0 else np.linalg.inv(rest[p]) @ rest[i] for i, p in enumerate(parents)])
    split = [split_end_site(mapping[j]) for j in JOINTS]
    rig = retarget.Rig(names, parents, rest_rel, np.array([b.use_connect for b in bones]),
                       np.array([b.length for b in bones]), np.array([index[b] for b, _ in split]),
                       np.array([t for _, t in split]))
    for j, p in enumerate(PARENTS):
        below, above = int(rig.joint_bones[j]), int(rig.joint_bones[p])
        if p >= 0 and below != above and above not in rig.ancestors(below):
            raise RigError(f"'{obj.name}' Bone Map: {names[below]} ({JOINTS[j]}) is not below "
                           f"{names[above]} ({JOINTS[p]}) in the bone hierarchy; fix the map.")
    return rig


@dataclass
class Clip:
    """What the operators read from the rig on the main thread, as arrays."""
    frames: np.ndarray      # (F,) scene frames, consecutive
    fps: float              # scene frame rate
    rig: retarget.Rig
    basis: np.ndarray       # (F, B, 4, 4) the original animation's local bone matrices
    quaternions: np.ndarray  # (F, B, 4) and
    eulers: np.ndarray      # (F, B, 3) its rotation channel values: new curves stay on their branch
    to_model: np.ndarray    # (F, 4, 4) armature space -> model space (metres, Y up)
    positions: np.ndarray   # (F, 21, 3) canonical joints in model space (keyed frames and the first)
    observed: np.ndarray    # (F, 21) joints constrained by a key on their bone or the bone aiming at them

    @property
    def model_length(self) -> int:
        return int(round((len(self.frames) - 1) * MODEL_FPS / self.fps)) + 1

    def model_index(self) -> np.ndarray:
        """Position of each scene frame on the model's 30 fps grid."""
        return (self.frames - self.frames[0]) * MODEL_FPS / self.fps

    def model_inputs(self) -> tuple[np.ndarray, np.ndarray]:
        """(L, 21, 3) observations and (L, 21) mask on the 30 fps grid; keys go to the nearest sample."""
        length = self.model_length
        observed = np.zeros((length, len(JOINTS), 3), np.float32)
        mask = np.zeros((length, len(JOINTS)), bool)
        for f, k in enumerate(np.minimum(np.rint(self.model_index()).astype(int), length - 1)):
            if self.observed[f].any():
                observed[k] = np.where(self.observed[f][:, None], self.positions[f], observed[k])
                mask[k] |= self.observed[f]
        return observed, mask

    def placed(self, motion: np.ndarray) -> np.ndarray:
        """(L, 21, 3) motion generated from labels alone, which starts over the origin facing +Z
        (representation.facing_unobserved), moved to where the rig stands on the first frame and
        turned the way it faces there: Generate starts from the character, not the world's origin."""
        from ..model.representation import canonical_frame
        start = self.positions[:1][None]
        return canonical_frame(start, np.ones(start.shape, bool)).to_world(motion[None].astype(np.float64))[0]

    def targets(self, motion: np.ndarray) -> np.ndarray:
        """(L, 21, 3) model-space motion -> (F, 21, 3) armature space at the scene frames."""
        u = self.model_index()
        lo = np.minimum(np.floor(u).astype(int), len(motion) - 1)
        hi = np.minimum(lo + 1, len(motion) - 1)
        w = (u - lo)[:, None, None]
        at_frames = (1.0 - w) * motion[lo] + w * motion[hi]
        back = retarget.affine_inverse(self.to_model)
        return np.einsum("fij,fkj->fki", back[:, :3, :3], at_frames) + back[:, None, :3, 3]


def _static_transform(obj, curves) -> bool:
    """True when nothing but the action's pose curves moves the armature: then the object matrix is
    the same on every frame and the action alone gives the bones' channels."""
    ad = obj.animation_data
    return (obj.parent is None and not obj.constraints and not (ad and (ad.drivers or ad.nla_tracks))
            and all(fc.data_path.startswith("pose.bones[") for fc in curves))


@contextmanager
def _nothing_selected(obj):
    """Pose.apply_pose_from_action only poses selected bones when any are: pose them all."""
    owner = obj.pose.bones if "select" in bpy.types.PoseBone.bl_rna.properties else obj.data.bones  # 5.0 / 4.x
    saved = np.empty(len(owner), bool)
    owner.foreach_get("select", saved)
    owner.foreach_set("select", np.zeros_like(saved))
    try:
        yield
    finally:
        owner.foreach_set("select", saved)


_CHANNELS = {"location": 3, "rotation_quaternion": 4, "rotation_euler": 3, "rotation_axis_angle": 4, "scale": 3}


@contextmanager
def _pose_kept(obj):
    """Reading frames re-evaluates the pose: put back what the animator posed but has not keyed yet,
    so a refused or cancelled run doesn't throw that work away."""
    bones = obj.pose.bones
    saved = {name: np.empty(len(bones) * width) for name, width in _CHANNELS.items()}
    for name, buf in saved.items():
        bones.foreach_get(name, buf)
    try:
        yield
    finally:
        for name, buf in saved.items():
            bones.foreach_set(name, buf)
        obj.update_tag()


def read_clip(context, obj, rig: retarget.Rig, frames: np.ndarray, keys: dict[str, set[int]],
              observe_until: int | None, action=None, curves=()) -> Clip:
    """The original bone channels on every frame and the evaluated joints on the keyed ones (the
    depsgraph is the slow part, so it runs only where needed); the current frame and the pose the
    user left there, keyed or not, are restored."""
    scene, bones, n, count = context.scene, obj.pose.bones, len(obj.pose.bones), len(frames)
    observed = np.zeros((count, len(JOINTS)), bool)
    if observe_until is not None:
        for j, b in enumerate(rig.joint_bones):
            hit = set(keys.get(rig.names[b], set()))
            parent = PARENTS[j]
            if parent >= 0 and not rig.joint_tails[j]:
                # A bone's head is placed by the bone that aims at it (its parent joint's), not by its
                # own rotation: a leaf (head, hand, toe) that carries no keys of its own is pinned there.
                hit |= keys.get(rig.names[rig.joint_bones[parent]], set())
            observed[:, j] = [int(f) in hit and f <= observe_until for f in frames]
    evaluate = observed.any(1)
    evaluate[0] = True
    static = _static_transform(obj, curves)
    if not static:
        evaluate[:] = True
    basis, pose = np.zeros((count, n * 16)), np.zeros((count, n * 16))
    quats, eulers = np.zeros((count, n, 4)), np.zeros((count, n, 3))
    world = np.empty((count, 4, 4))

    def channels(i: int) -> None:
        bones.foreach_get("matrix_basis", basis[i])
        bones.foreach_get("rotation_quaternion", quats[i].ravel())
        bones.foreach_get("rotation_euler", eulers[i].ravel())

    current, sub = scene.frame_current, scene.frame_subframe
    with _pose_kept(obj):
        try:
            if static and action is not None:
                with _nothing_selected(obj):
                    for i, f in enumerate(frames):
                        obj.pose.apply_pose_from_action(action, evaluation_time=float(f))
                        channels(i)
            for i in np.flatnonzero(evaluate):
                scene.frame_set(int(frames[i]))
                bones.foreach_get("matrix", pose[i])
                world[i] = np.array(obj.matrix_world)
                if not static or action is None:
                    channels(i)
        finally:
            scene.frame_set(current, subframe=sub)
    if static:
        world[:] = world[0]
        if action is None:  # an unanimated rig holds its pose
            basis[:], quats[:], eulers[:] = basis[0], quats[0], eulers[0]
    basis = basis.reshape(count, n, 4, 4).transpose(0, 1, 3, 2)
    pose = pose.reshape(count, n, 4, 4).transpose(0, 1, 3, 2)
    scale = np.diag([scene.unit_settings.scale_length] * 3 + [1.0])
    to_model = Z_UP_TO_Y_UP @ scale @ world
    joints = retarget.joint_positions(rig, pose)
    positions = np.einsum("fij,fkj->fki", to_model[:, :3, :3], joints) + to_model[:, None, :3, 3]
    positions[~evaluate] = 0.0
    return Clip(np.asarray(frames), scene.render.fps / scene.render.fps_base, rig, basis, quats, eulers,
                to_model, positions, observed)


def unique_name(base: str, tag: str) -> str:
    k = 1
    while f"{base}.{tag}.{k:03d}" in bpy.data.actions:
        k += 1
    return f"{base}.{tag}.{k:03d}"


def _enum(prop: str, item: str) -> int:
    return bpy.types.Keyframe.bl_rna.properties[prop].enum_items[item].value


def _bake(curves, path: str, index: int, group: str, frames: np.ndarray, values: np.ndarray,
          keep: np.ndarray) -> None:
    """Key every frame of the range: the user's own key where `keep` says the bone was observed and
    it has one, the solved value elsewhere; keys outside the range stay as they were.

    The user's keys keep their values and settings (only auto handles follow their new
    neighbours); new keys are appended, and fc.update() sorts them and sets their auto handles.
    """
    fc = curves.find(path, index=index)
    # The bone's channel group is named action_group in 4.2, group_name on 4.5+ channelbags.
    for group_arg in ({"action_group": group}, {"group_name": group}, {}):
        if fc is not None:
            break
        try:
            fc = curves.new(path, index=index, **group_arg)
        except TypeError:
            pass
    points = fc.keyframe_points
    at = np.rint(curve_frames(fc)[:, 0]).astype(int)
    slot = at - frames[0]
    inside = (slot >= 0) & (slot < len(frames))
    dropped = np.flatnonzero(inside & ~keep[np.clip(slot, 0, len(frames) - 1)])
    for k in dropped[::-1]:  # keys inside the range on frames the model was free to change
        points.remove(points[int(k)], fast=True)
    covered = np.zeros(len(frames), bool)
    covered[np.delete(slot, dropped)[np.delete(inside, dropped)]] = True
    n, add = len(points), np.flatnonzero(~covered)
    co = np.empty((n + len(add), 2), np.float32)
    points.foreach_get("co", co[:n].ravel())
    co[n:] = np.c_[frames[add], values[add]]
    attrs = {}
    for name, new in (("interpolation", "BEZIER"), ("handle_left_type", "AUTO_CLAMPED"),
                      ("handle_right_type", "AUTO_CLAMPED")):
        attrs[name] = np.full(n + len(add), _enum(name, new), np.int32)
        points.foreach_get(name, attrs[name][:n])
    points.add(len(add))
    points.foreach_set("co", co.ravel())
    for name, data in attrs.items():
        points.foreach_set(name, data)
    fc.update()


def _target_slot(action, source_slot, obj):
    """4.4+: the copy's slot matching the source's, or a new one; None before slotted actions."""
    if not hasattr(action, "slots"):
        return None
    if source_slot is not None:
        for slot in action.slots:
            if slot.identifier == source_slot.identifier:
                return slot
    return action.slots.new(id_type='OBJECT', name=obj.name)


def _writable_fcurves(action, slot):
    if slot is None:
        return action.fcurves
    from bpy_extras import anim_utils
    ensure = getattr(anim_utils, "action_ensure_channelbag_for_slot", None)
    if ensure is not None:
        return ensure(action, slot).fcurves
    layer = action.layers[0] if action.layers else action.layers.new("Layer")
    strip = layer.strips[0] if layer.strips else layer.strips.new(type='KEYFRAME')
    return strip.channelbag(slot, ensure=True).fcurves


def write_action(obj, clip: Clip, solution: retarget.Solution, source, source_slot, name: str):
    """A new action (and its slot, 4.4+): a copy of the source with the solved bones re-keyed over
    the clip's frames. Not assigned: the caller decides which result plays."""
    action = source.copy() if source is not None else bpy.data.actions.new(name)
    action.name = name
    action.use_fake_user = True
    slot = _target_slot(action, source_slot, obj)
    curves = _writable_fcurves(action, slot)
    rig, frames = clip.rig, clip.frames
    observed_bone = {int(b): clip.observed[:, j] for j, b in enumerate(rig.joint_bones) if not rig.joint_tails[j]}
    for k, b in enumerate(solution.bones):
        pbone = obj.pose.bones[b]
        reference = clip.quaternions[:, b] if pbone.rotation_mode == "QUATERNION" else clip.eulers[:, b]
        values = retarget.rotation_channels(solution.rotations[:, k], pbone.rotation_mode, reference)
        path = pbone.path_from_id(retarget.rotation_path(pbone.rotation_mode))
        for i in range(values.shape[1]):
            _bake(curves, path, i, pbone.name, frames, values[:, i], observed_bone[b])
    carrier = obj.pose.bones[solution.mover]
    for i in range(3):
        _bake(curves, carrier.path_from_id("location"), i, carrier.name, frames, solution.location[:, i],
              observed_bone[int(rig.joint_bones[0])])
    return action, slot


def assign(obj, action, slot=None) -> None:
    ad = obj.animation_data or obj.animation_data_create()
    ad.action = action
    if action is not None and hasattr(ad, "action_slot"):
        ad.action_slot = slot if slot is not None else (action.slots[0] if len(action.slots) else None)
