"""Rigs and clips for the demo, the benchmark and tests/blender: a Blender session with the built
extension installed, humanoid armatures of several namings built in code, a real clip baked onto
them through the add-on's own retargeting, and key thinning. Not shipped in the extension.
"""
from __future__ import annotations

import importlib
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
MODULE = "bl_ext.user_default.motion_cvae"

# Rest joints, metres, Blender axes (Z up, the character faces -Y, its left is +X), T pose.
REST = {
    "pelvis": (0, 0, 1.0), "spine": (0, 0.01, 1.1), "chest": (0, 0, 1.3), "neck": (0, 0, 1.5), "head": (0, -0.01, 1.6),
    "l_collar": (0.03, 0, 1.45), "l_upperarm": (0.18, 0, 1.45), "l_forearm": (0.46, 0, 1.45), "l_hand": (0.72, 0, 1.45),
    "l_thigh": (0.1, 0, 0.95), "l_shin": (0.1, 0, 0.52), "l_foot": (0.1, 0.03, 0.09), "l_toe": (0.1, -0.1, 0.02),
}
for _j in list(REST):
    if _j.startswith("l_"):
        REST["r_" + _j[2:]] = (-REST[_j][0],) + REST[_j][1:]
CHILD = {"pelvis": "spine", "spine": "chest", "chest": "neck", "neck": "head", "collar": "upperarm",
         "upperarm": "forearm", "forearm": "hand", "thigh": "shin", "shin": "foot", "foot": "toe"}
LEAF = {"head": (0, 0, 0.18), "hand": (0.09, 0, 0), "toe": (0, -0.07, 0)}
FINGERS = ("Thumb", "Index", "Middle", "Ring", "Pinky")

NAMINGS = {
    "mixamo": {"pelvis": "Hips", "spine": "Spine", "chest": "Spine2", "neck": "Neck", "head": "Head",
               "collar": "{Side}Shoulder", "upperarm": "{Side}Arm", "forearm": "{Side}ForeArm", "hand": "{Side}Hand",
               "thigh": "{Side}UpLeg", "shin": "{Side}Leg", "foot": "{Side}Foot", "toe": "{Side}ToeBase"},
    "unreal": {"pelvis": "pelvis", "spine": "spine_01", "chest": "spine_03", "neck": "neck_01", "head": "head",
               "collar": "clavicle_{s}", "upperarm": "upperarm_{s}", "forearm": "lowerarm_{s}", "hand": "hand_{s}",
               "thigh": "thigh_{s}", "shin": "calf_{s}", "foot": "foot_{s}", "toe": "ball_{s}"},
}


def session(zip_path: str | None = None, weights: str = ""):
    """Import bpy with private user resources, install the built zip like a user, point it at
    `weights` when given (else the shipped ones); returns the add-on package
    (bl_ext.user_default.motion_cvae)."""
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="motion_cvae_user_"))
    import bpy
    import addon_utils
    if MODULE not in sys.modules:
        if zip_path is None:
            sys.path.insert(0, os.path.join(ROOT, "scripts"))
            from build_extension import build
            zip_path = build(tempfile.mkdtemp(prefix="motion_cvae_dist_"))
        bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
        if MODULE not in sys.modules:
            raise RuntimeError(f"installing {zip_path} did not load {MODULE}")
    addon_utils.enable(MODULE, default_set=True)
    addon_utils.enable("io_anim_bvh", default_set=True)
    if weights:
        bpy.context.preferences.addons[MODULE].preferences.weights_path = os.path.abspath(weights)
    return importlib.import_module(MODULE)


def new_scene(name: str, fps: int = 30, unit_scale: float = 1.0):
    import bpy
    scene = bpy.data.scenes.new(name)
    scene.render.fps, scene.render.fps_base = fps, 1.0
    scene.unit_settings.scale_length = unit_scale
    bpy.context.window.scene = scene
    return scene


def _side(template: str, side: str) -> str:
    return template.format(Side="Left" if side == "l" else "Right", s=side)


def _bones(naming: str, pose: str, fingers: bool, face: bool) -> list[tuple[str, str | None, tuple, tuple]]:
    """(name, parent, head, tail) in metres; canonical bones first, then the unmapped extras."""
    rest = {j: np.array(p, float) for j, p in REST.items()}
    if pose == "A":  # arms 45 degrees down, turned about each shoulder
        for side in "lr":
            pivot = rest[f"{side}_upperarm"]
            for j in ("forearm", "hand"):
                d = rest[f"{side}_{j}"] - pivot
                rest[f"{side}_{j}"] = pivot + np.array([d[0] * np.sqrt(0.5), d[1], -abs(d[0]) * np.sqrt(0.5)])
    names = {}
    for joint in rest:
        key = joint[2:] if joint[:2] in ("l_", "r_") else joint
        names[joint] = _side(NAMINGS[naming][key], joint[0]) if joint[:2] in ("l_", "r_") else NAMINGS[naming][key]
    parent_of = {"pelvis": None, "spine": "pelvis", "chest": "spine", "neck": "chest", "head": "neck"}
    for s in "lr":
        parent_of.update({f"{s}_collar": "chest", f"{s}_upperarm": f"{s}_collar", f"{s}_forearm": f"{s}_upperarm",
                          f"{s}_hand": f"{s}_forearm", f"{s}_thigh": "pelvis", f"{s}_shin": f"{s}_thigh",
                          f"{s}_foot": f"{s}_shin", f"{s}_toe": f"{s}_foot"})
    out = []
    for joint, head in rest.items():
        key = joint[2:] if joint[:2] in ("l_", "r_") else joint
        if key in CHILD:
            tail = rest[(joint[:2] if joint[:2] in ("l_", "r_") else "") + CHILD[key]]
        else:
            leaf = np.array(LEAF[key], float)
            if key == "hand":
                leaf = (rest[joint] - rest[joint[:2] + "forearm"]) / np.linalg.norm(rest[joint] - rest[joint[:2] + "forearm"]) * 0.09
            tail = head + leaf
        parent = parent_of[joint]
        out.append((names[joint], names[parent] if parent else None, tuple(head), tuple(tail)))
    if fingers:
        for side in "lr":
            hand = rest[f"{side}_hand"]
            along = (hand - rest[f"{side}_forearm"]) / np.linalg.norm(hand - rest[f"{side}_forearm"])
            for k, finger in enumerate(FINGERS):
                base = hand + along * 0.09 + np.array([0, -0.04 + 0.02 * k, 0])
                parent = names[f"{side}_hand"]
                for seg in range(1, 4):
                    name = f"{'Left' if side == 'l' else 'Right'}Hand{finger}{seg}"
                    tail = base + along * 0.03
                    out.append((name, parent, tuple(base), tuple(tail)))
                    parent, base = name, tail
    if face:
        head = names["head"]
        top = rest["head"] + np.array(LEAF["head"])
        out += [("HeadTop_End", head, tuple(top), tuple(top + [0, 0, 0.05])),
                ("LeftEye", head, (0.03, -0.08, 1.7), (0.03, -0.1, 1.7)),
                ("RightEye", head, (-0.03, -0.08, 1.7), (-0.03, -0.1, 1.7)),
                ("Jaw", head, (0, -0.02, 1.63), (0, -0.09, 1.6)), ("JawEnd", "Jaw", (0, -0.09, 1.6), (0, -0.11, 1.6))]
    return out


def build_armature(name: str, naming: str, pose: str = "T", *, unit: float = 1.0, fingers: bool = False,
                   face: bool = False, extra_spine: bool = False, root: bool = False, connect: bool = False,
                   toe_ends: bool = False, rotation_mode: str = "QUATERNION"):
    """An armature in the active scene, bones `unit` metres per Blender unit of its own data."""
    import bpy
    bones = _bones(naming, pose, fingers, face)
    if toe_ends:
        for side in "lr":
            toe = _side(NAMINGS[naming]["toe"], side)
            tail = next(b[3] for b in bones if b[0] == toe)
            bones.append((toe + "_End", toe, tail, tuple(np.array(tail) + [0, -0.03, 0])))
    if extra_spine:  # Mixamo's Spine1 between Spine and Spine2
        spine, chest = NAMINGS[naming]["spine"], NAMINGS[naming]["chest"]
        i = next(k for k, b in enumerate(bones) if b[0] == spine)
        _, parent, head, tail = bones[i]
        mid = tuple((np.array(head) + np.array(tail)) / 2)
        bones[i] = (spine, parent, head, mid)
        bones.insert(i + 1, ("Spine1", spine, mid, tail))
        bones = [(b[0], "Spine1" if b[0] == chest else b[1], b[2], b[3]) for b in bones]
    if root:
        bones = [("root", None, (0, 0, 0), (0, 0, 0.2))] + [(b[0], b[1] or "root", b[2], b[3]) for b in bones]
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode='EDIT')
    for bone_name, parent, head, tail in bones:
        eb = data.edit_bones.new(bone_name)
        eb.head, eb.tail = np.array(head) / unit, np.array(tail) / unit
    for bone_name, parent, head, tail in bones:
        if parent:
            eb = data.edit_bones[bone_name]
            eb.parent = data.edit_bones[parent]
            eb.use_connect = connect and np.allclose(eb.head, eb.parent.tail)
    bpy.ops.object.mode_set(mode='OBJECT')
    for pb in obj.pose.bones:
        pb.rotation_mode = rotation_mode
    return obj


def import_bvh(path: str, frame_start: int = 1):
    import bpy
    bpy.ops.import_anim.bvh(filepath=path, global_scale=0.01, frame_start=frame_start, update_scene_fps=True,
                            rotate_mode="NATIVE")
    return bpy.context.active_object


def read_positions(addon, obj, frames) -> np.ndarray:
    """The rig's canonical joints (F, 21, 3) in model space (metres, Y up), read independently of the
    add-on's reader: frame_set, bone heads and tails, matrix_world, the scene's unit scale."""
    import bpy
    skeleton = addon.model.skeleton
    mapping = skeleton.map_joint_names([b.name for b in obj.data.bones])
    index = {b.name: i for i, b in enumerate(obj.pose.bones)}
    picks = [skeleton.split_end_site(mapping[j]) for j in skeleton.JOINTS]
    scene, bones = bpy.context.scene, obj.pose.bones
    ends = {"head": np.empty(len(bones) * 3), "tail": np.empty(len(bones) * 3)}
    out = np.empty((len(frames), len(picks), 3))
    current = scene.frame_current
    for k, f in enumerate(frames):
        scene.frame_set(int(f))
        for name, buf in ends.items():
            bones.foreach_get(name, buf)
        world = np.array(obj.matrix_world)
        local = np.array([ends["tail" if tail else "head"].reshape(-1, 3)[index[b]] for b, tail in picks])
        out[k] = (local @ world[:3, :3].T + world[:3, 3]) * scene.unit_settings.scale_length
    scene.frame_set(current)
    return np.stack([out[..., 0], out[..., 2], -out[..., 1]], -1)


def read_basis(obj, frames) -> np.ndarray:
    """(F, B, 4, 4) local bone matrices, evaluated by the depsgraph frame by frame."""
    import bpy
    scene, bones = bpy.context.scene, obj.pose.bones
    out = np.empty((len(frames), len(bones) * 16))
    current = scene.frame_current
    for k, f in enumerate(frames):
        scene.frame_set(int(f))
        bones.foreach_get("matrix_basis", out[k])
    scene.frame_set(current)
    return out.reshape(len(frames), -1, 4, 4).transpose(0, 1, 3, 2)


def bake_motion(addon, obj, positions: np.ndarray, frames, name: str):
    """Animate an armature from model-space positions on the 30 fps grid, through the add-on's own
    retargeting, keys on every scene frame; plus a finger curl, so unmapped bones move too."""
    import bpy
    io, retarget = addon.blender_motion_cvae.rig_io, addon.blender_motion_cvae.retarget
    rig = io.build_rig(obj, io.bone_mapping(obj))
    clip = io.read_clip(bpy.context, obj, rig, np.asarray(frames), {}, None)
    solution = retarget.solve(rig, clip.basis, clip.targets(positions[:clip.model_length]))
    action, slot = io.write_action(obj, clip, solution, None, None, name)
    io.assign(obj, action, slot)
    curl = [pb for pb in obj.pose.bones if "Hand" in pb.name and pb.name[-1].isdigit()]
    for f in frames[::5]:
        for pb in curl:
            pb.rotation_quaternion = (np.cos(0.4 * np.sin(f / 9)), 0.4 * np.sin(0.4 * np.sin(f / 9)), 0, 0)
            pb.keyframe_insert("rotation_quaternion", frame=int(f), group=pb.name)
    return action


def _curves(action, slot):
    """The action's F-curves for the slot: channelbag on 4.4+, action.fcurves before."""
    from bpy_extras import anim_utils
    getter = getattr(anim_utils, "action_get_channelbag_for_slot", None)
    if getter and slot is not None:
        bag = getter(action, slot)
        return bag.fcurves if bag is not None else []
    return action.fcurves


def _keep_keys(action, slot, keep) -> None:
    """Delete every key whose frame `keep` (int frames -> bool) rejects (in place: test setup only)."""
    for fc in _curves(action, slot):
        co = np.empty(len(fc.keyframe_points) * 2)
        fc.keyframe_points.foreach_get("co", co)
        kept = co.reshape(-1, 2)
        kept = kept[keep(np.rint(kept[:, 0]).astype(int))]
        fc.keyframe_points.clear()
        fc.keyframe_points.add(len(kept))
        fc.keyframe_points.foreach_set("co", kept.ravel())
        fc.update()


def thin(action, slot, step: int, first: int):
    """Delete every key not on frame first + k*step (in place: test setup only)."""
    _keep_keys(action, slot, lambda frame: (frame - first) % step == 0)


def cut(action, slot, first: int, last: int):
    """Delete every key on frames first..last (in place: test setup only), as a bad stretch of a
    mocap take is cut out before Fill Gaps."""
    _keep_keys(action, slot, lambda frame: (frame < first) | (frame > last))


def checksums() -> dict[str, str]:
    """checksum() of every action in the file, each slot apart (4.4+), keyed by library, name and slot."""
    import bpy
    out = {}
    for action in bpy.data.actions:
        where = action.library.filepath if action.library else ""
        slots = list(action.slots) if hasattr(action, "slots") else [None]
        for slot in slots:
            out[f"{where}:{action.name}:{slot.identifier if slot else ''}"] = checksum(action, slot)
    return out


def checksum(action, slot) -> str:
    """Digest of every key of every F-curve (values, handles, interpolation) of the action's slot."""
    import hashlib
    h = hashlib.sha256()
    for fc in _curves(action, slot):
        h.update(f"{fc.data_path}[{fc.array_index}]".encode())
        for attr, width, dtype in (("co", 2, np.float32), ("handle_left", 2, np.float32),
                                   ("handle_right", 2, np.float32), ("interpolation", 1, np.int32)):
            buf = np.empty(len(fc.keyframe_points) * width, dtype)
            fc.keyframe_points.foreach_get(attr, buf)
            h.update(buf.tobytes())
    return h.hexdigest()
