"""The operators on three namings (Bandai BVH import, Mixamo and Unreal built in code), T and A rest
poses, quaternion and Euler bones, object scale, object rotation, scene unit scale and a 24 fps scene:
keys kept to < 1 mm, originals untouched, new actions that play, retargeting within 5 mm."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest

import blender_rigs as rigs
from .helpers import activate, run

STEP = 20  # keep one key every STEP frames
RIGS = {
    "bandai_bvh": {},
    "mixamo_T": dict(naming="mixamo", pose="T", unit=0.01, fingers=True, face=True, extra_spine=True,
                     connect=True, rotation_mode="QUATERNION"),
    "unreal_A": dict(naming="unreal", pose="A", unit=0.01, root=True, rotation_mode="XYZ"),
}


@dataclass
class Rigged:
    obj: object
    source: object      # the thinned action: the user's keys
    keyed: np.ndarray   # keyed frames
    truth: np.ndarray   # (F, 21, 3) the dense animation before thinning, frames keyed[0]..keyed[-1]
    checksum: str


@pytest.fixture(scope="module")
def demo_clip(addon):
    rigs.new_scene("demo_source")
    src = rigs.import_bvh(os.path.join(rigs.FIXTURES, "demo_walk.bvh"))
    end = int(src.animation_data.action.frame_range[1])
    return rigs.read_positions(addon, src, np.arange(1, end + 1))


@pytest.fixture(scope="module", params=list(RIGS))
def rigged(request, addon, demo_clip) -> Rigged:
    import bpy
    name = request.param
    if name == "bandai_bvh":
        rigs.new_scene(name)
        obj = rigs.import_bvh(os.path.join(rigs.FIXTURES, "demo_walk.bvh"))
        action = obj.animation_data.action
        end = int(action.frame_range[1])
    else:
        fps = 24 if name.startswith("unreal") else 30
        rigs.new_scene(name, fps=fps, unit_scale=0.01 if name.startswith("unreal") else 1.0)
        obj = rigs.build_armature(name, **RIGS[name])
        if name.startswith("mixamo"):
            obj.scale = (0.01, 0.01, 0.01)          # bones in cm, like an FBX import
        else:
            obj.rotation_euler.z = np.pi / 2         # facing +X
            obj.location = (150.0, -40.0, 0.0)
        bpy.context.view_layer.update()
        end = int((len(demo_clip) - 1) * fps / 30) + 1
        action = rigs.bake_motion(addon, obj, demo_clip, np.arange(1, end + 1), name.split("_")[0].title())
    slot = getattr(obj.animation_data, "action_slot", None)
    keyed = np.arange(1, end + 1, STEP)
    truth = rigs.read_positions(addon, obj, np.arange(1, keyed[-1] + 1))
    rigs.thin(action, slot, STEP, 1)
    activate(obj)
    assert run("fill_gaps", variations=2, seed=3) == ({"FINISHED"}, "")
    return Rigged(obj, action, keyed, truth, rigs.checksum(action, slot))


def _play(obj, action):
    obj.animation_data.action = action
    if hasattr(obj.animation_data, "action_slot"):
        obj.animation_data.action_slot = action.slots[0]


def test_fill_makes_new_actions_and_leaves_the_source(rigged):
    import bpy
    base = rigged.source.name
    results = [bpy.data.actions.get(f"{base}.fill.00{k}") for k in (1, 2)]
    assert all(a is not None and a.use_fake_user for a in results)
    assert rigged.obj.animation_data.action == results[0]
    assert [r.action for r in rigged.obj.motion_cvae.results][-2:] == results
    slot = getattr(rigged.obj.animation_data, "action_slot", None)
    assert rigs.checksum(rigged.source, slot) == rigged.checksum


def test_keys_are_reproduced_and_the_gaps_play(addon, rigged):
    import bpy
    activate(rigged.obj)
    _play(rigged.obj, bpy.data.actions[f"{rigged.source.name}.fill.001"])
    frames = np.arange(rigged.keyed[0], rigged.keyed[-1] + 1)
    got = rigs.read_positions(addon, rigged.obj, frames)
    at_keys = rigged.keyed - rigged.keyed[0]
    assert np.abs(got[at_keys] - rigged.truth[at_keys]).max() < 1e-3
    assert np.isfinite(got).all()
    gap = np.setdiff1d(np.arange(len(frames)), at_keys)
    assert np.abs(np.diff(got[gap], axis=0)).max() > 0  # something moves between the keys


def test_unmapped_bones_keep_the_original_interpolation(addon, rigged):
    """Fingers, face, root and twist bones: their local transform on every frame is the original's."""
    import bpy
    obj = rigged.obj
    io, retarget = addon.blender_motion_cvae.rig_io, addon.blender_motion_cvae.retarget
    rig = io.build_rig(obj, io.bone_mapping(obj))
    touched = set(retarget.aims(rig)) | {retarget.mover(rig)}
    frames = np.arange(rigged.keyed[0], rigged.keyed[-1] + 1)
    bases = []
    for action in (rigged.source, bpy.data.actions[f"{rigged.source.name}.fill.002"]):
        _play(obj, action)
        bases.append(rigs.read_basis(obj, frames))
    kept = [b for b in range(len(rig.names)) if b not in touched]
    assert kept
    assert np.abs(bases[0][:, kept] - bases[1][:, kept]).max() < 1e-5


def test_fast_reader_matches_the_depsgraph(addon, rigged):
    """The add-on reads channels with Pose.apply_pose_from_action: the same as frame_set gives."""
    import bpy
    obj = rigged.obj
    io = addon.blender_motion_cvae.rig_io
    rig = io.build_rig(obj, io.bone_mapping(obj))
    _play(obj, rigged.source)
    frames = np.arange(rigged.keyed[0], rigged.keyed[-1] + 1)
    clip = io.read_clip(bpy.context, obj, rig, frames, {}, None, rigged.source, curves(addon, rigged.source, obj))
    assert np.abs(clip.basis - rigs.read_basis(obj, frames)).max() < 1e-5


def test_positions_to_rotations_to_fk_within_5mm(addon, rigged):
    """The real clip's joints (this rig's own dense animation) -> bone rotations -> Blender's FK."""
    import bpy
    obj = rigged.obj
    io, retarget = addon.blender_motion_cvae.rig_io, addon.blender_motion_cvae.retarget
    rig = io.build_rig(obj, io.bone_mapping(obj))
    _play(obj, rigged.source)
    slot = getattr(obj.animation_data, "action_slot", None)
    frames = np.arange(rigged.keyed[0], rigged.keyed[-1] + 1)
    clip = io.read_clip(bpy.context, obj, rig, frames, {}, None, rigged.source, curves(addon, rigged.source, obj))
    back = np.linalg.inv(clip.to_model)
    targets = np.einsum("fij,fkj->fki", back[:, :3, :3], rigged.truth) + back[:, None, :3, 3]
    action, new_slot = io.write_action(obj, clip, retarget.solve(rig, clip.basis, targets), rigged.source, slot,
                                       "roundtrip")
    io.assign(obj, action, new_slot)
    got = rigs.read_positions(addon, obj, frames)
    bpy.data.actions.remove(action)
    _play(obj, rigged.source)
    assert np.abs(got - rigged.truth).max() < 5e-3


def test_resample_extend_generate(addon, rigged):
    obj, base = rigged.obj, rigged.source.name
    slot = getattr(obj.animation_data, "action_slot", None)
    activate(obj)
    assert run("resample") == ({"FINISHED"}, "")
    assert obj.animation_data.action.name == f"{base}.fill.003"
    assert obj.motion_cvae.last_seed == 4  # the fill's seed 3, plus one
    _play(obj, rigged.source)
    assert run("extend", frames=15) == ({"FINISHED"}, "")
    extended = obj.animation_data.action
    assert extended.name == f"{base}.extend.001"
    assert max(fc.range()[1] for fc in curves(addon, extended, obj)) >= rigged.keyed[-1] + 15
    _play(obj, rigged.source)
    assert run("generate", frame_start=1, frame_end=40) == ({"FINISHED"}, "")
    assert obj.animation_data.action.name == f"{base}.gen.001"
    # it starts where the character stood on frame 1, facing its way (however the armature is placed)
    start, stood = rigs.read_positions(addon, obj, [1])[0], rigged.truth[0]
    pelvis, l_thigh, r_thigh = (addon.model.skeleton.INDEX[j] for j in ("pelvis", "l_thigh", "r_thigh"))
    assert np.abs(start[pelvis, [0, 2]] - stood[pelvis, [0, 2]]).max() < 0.02
    across = lambda p: (p[l_thigh] - p[r_thigh])[[0, 2]]
    cosine = across(start) @ across(stood) / (np.linalg.norm(across(start)) * np.linalg.norm(across(stood)))
    assert cosine > np.cos(np.radians(8))
    assert rigs.checksum(rigged.source, slot) == rigged.checksum


def curves(addon, action, obj):
    return addon.blender_motion_cvae.rig_io.fcurves(action, getattr(obj.animation_data, "action_slot", None))


def test_partial_body_keys_constrain_their_joints(addon, rigged):
    """A key on the left arm alone, mid-gap: those joints are observed there (the hand too: the
    forearm's key places it), and the new action holds that key's exact values."""
    import bpy
    obj = rigged.obj
    io = addon.blender_motion_cvae.rig_io
    activate(obj)
    work = rigged.source.copy()
    _play(obj, work)
    frame = int(rigged.keyed[0] + STEP // 2)
    rig = io.build_rig(obj, io.bone_mapping(obj))
    skeleton = addon.model.skeleton
    arm = [rig.names[rig.joint_bones[skeleton.INDEX[j]]] for j in ("l_upperarm", "l_forearm")]
    bpy.context.scene.frame_set(frame)
    for name in arm:
        pb = obj.pose.bones[name]
        path = addon.blender_motion_cvae.retarget.rotation_path(pb.rotation_mode)
        pb.keyframe_insert(path, frame=frame, group=name)
    tasks = addon.blender_motion_cvae.tasks
    plan = tasks.plan(bpy.context, obj, "fill", tasks.Options())
    k = int(round((frame - plan.clip.frames[0]) * 30 / plan.clip.fps))
    observed = [skeleton.JOINTS[j] for j in np.flatnonzero(plan.request.mask[k])]
    assert observed == ["l_upperarm", "l_forearm", "l_hand"]
    assert run("fill_gaps", seed=1) == ({"FINISHED"}, "")
    result = obj.animation_data.action
    for name in arm:
        pb = obj.pose.bones[name]
        path = pb.path_from_id(addon.blender_motion_cvae.retarget.rotation_path(pb.rotation_mode))
        for fc in [c for c in curves(addon, work, obj) if c.data_path == path]:
            new = next(c for c in curves(addon, result, obj) if c.data_path == path and c.array_index == fc.array_index)
            assert new.evaluate(frame) == pytest.approx(fc.evaluate(frame), abs=1e-6)


def test_a_gap_cut_into_mocap_leaves_and_reaches_its_seams_at_their_velocity(addon):
    """Every frame of a take keyed but 41-70 (a bad stretch cut out): the fill leaves frame 40 and
    reaches frame 71 at the velocity the keyed frames beside them give, not with a kink."""
    rigs.new_scene("mocap_gap")
    obj = rigs.import_bvh(os.path.join(rigs.FIXTURES, "demo_walk.bvh"))
    frames = np.arange(37, 75)                  # frame 40 is index 3, frame 71 index 34
    truth = rigs.read_positions(addon, obj, frames)
    rigs.cut(obj.animation_data.action, getattr(obj.animation_data, "action_slot", None), 41, 70)
    activate(obj)
    assert run("fill_gaps", seed=0) == ({"FINISHED"}, "")
    got = rigs.read_positions(addon, obj, frames)
    straight = (truth[34] - truth[3]) / 31     # a kinked fill's velocity at both seams
    for keyed, filled in ((truth[3] - truth[2], got[4] - got[3]), (truth[35] - truth[34], got[34] - got[33])):
        assert np.abs(filled - keyed).mean() < 0.35 * np.abs(straight - keyed).mean()
