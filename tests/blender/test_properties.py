"""Property tests of Fill Gaps in real Blender: random key masks (which bones are keyed on which
frames, whole poses and parts of the body), ranges, scene frame rates (23.976 through fps_base)
and rigs (extra unmapped bones, cm and m, object and unit scale, Euler and quaternion bones).

For every draw: the model's inputs have the right shapes and observe exactly the keyed joints;
the result keys every frame of the range and nothing outside it changes; each user key inside the
range is still there with its value; every joint whose position the user's keys fix (its bone and
every solved bone above it keyed on that frame) stays within 1 mm; no existing F-curve changes.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import blender_rigs as rigs
from .helpers import activate, play

LAST = 301  # every rig is baked densely on frames 1..LAST
RIGS = {
    "mixamo_m": (dict(naming="mixamo", connect=True), 1.0, 1.0),
    "mixamo_cm_object_extras": (dict(naming="mixamo", unit=0.01, fingers=True, face=True, extra_spine=True,
                                     connect=True), 0.01, 1.0),
    "unreal_cm_units_euler": (dict(naming="unreal", pose="A", unit=0.01, root=True, rotation_mode="XYZ"), 1.0, 0.01),
    "mixamo_tall_root_yxz": (dict(naming="mixamo", fingers=True, toe_ends=True, root=True, rotation_mode="YXZ"),
                             1.25, 1.0),
}
RATES = [(24, 1.0), (25, 1.0), (30, 1.0), (50, 1.0), (60, 1.0), (24, 1.001)]
GROUPS = {
    "left_arm": ("l_collar", "l_upperarm", "l_forearm", "l_hand"),
    "right_leg": ("r_thigh", "r_shin", "r_foot", "r_toe"),
    "lower_body": ("pelvis", "l_thigh", "l_shin", "l_foot", "l_toe", "r_thigh", "r_shin", "r_foot", "r_toe"),
    "upper_body": ("spine", "chest", "neck", "head", "l_collar", "l_upperarm", "l_forearm", "l_hand",
                   "r_collar", "r_upperarm", "r_forearm", "r_hand"),
    "one_forearm": ("r_forearm",),
}


class Rigs:
    """Each rig is built and baked once, on first use, in a scene of its own."""

    def __init__(self, addon):
        self.addon, self.built = addon, {}
        rigs.new_scene("properties_source")
        src = rigs.import_bvh(os.path.join(rigs.FIXTURES, "demo_walk.bvh"))
        walk = rigs.read_positions(addon, src, np.arange(1, int(src.animation_data.action.frame_range[1]) + 1))
        self.motion = np.concatenate([walk, walk[::-1][1:]])  # there and back: 395 frames at 30 fps

    def __call__(self, name: str):
        if name not in self.built:
            import bpy
            options, object_scale, unit_scale = RIGS[name]
            rigs.new_scene(name, unit_scale=unit_scale)
            obj = rigs.build_armature(name, **options)
            obj.scale = (object_scale,) * 3
            bpy.context.view_layer.update()
            action = rigs.bake_motion(self.addon, obj, self.motion, np.arange(1, LAST + 1), name)
            self.built[name] = (obj, action)
        return self.built[name]


@pytest.fixture(scope="module")
def built(addon):
    return Rigs(addon)


@st.composite
def draws(draw):
    start = draw(st.integers(1, LAST - 1))
    end = draw(st.integers(start + 1, min(LAST, start + 220)))
    poses = draw(st.lists(st.integers(max(1, start - 10), min(LAST, end + 10)), min_size=1, max_size=5, unique=True))
    parts = draw(st.lists(st.tuples(st.integers(start, end), st.sampled_from(sorted(GROUPS))), max_size=4))
    inside = {f for f in poses if start <= f <= end} | {f for f, _ in parts}
    assume(len(inside) >= 2)
    return dict(rig=draw(st.sampled_from(sorted(RIGS))), rate=draw(st.sampled_from(RATES)), start=start, end=end,
                poses=sorted(poses), parts=parts, seed=draw(st.integers(0, 2**16)))


def keep_only(addon, action, slot, rig, poses, parts) -> dict[str, set[int]]:
    """Delete the mapped bones' keys except whole poses on `poses` and each part's bones on its
    frame; unmapped bones (fingers, face, root) keep theirs. Returns bone -> keyed frames, for the
    mapped bones that have curves (hands, head and toes are never solved, so never baked)."""
    from model.skeleton import INDEX
    io = addon.blender_motion_cvae.rig_io
    mapped = {rig.names[b] for b in rig.joint_bones}
    keep = {bone: set(poses) for bone in mapped}
    for frame, group in parts:
        for joint in GROUPS[group]:
            keep[rig.names[rig.joint_bones[INDEX[joint]]]].add(frame)
    animated = set()
    for fc in io.fcurves(action, slot):
        bone = io.bone_name(fc.data_path)
        if bone in keep:
            animated.add(bone)
            co = io.curve_frames(fc)
            co = co[np.isin(np.rint(co[:, 0]).astype(int), sorted(keep[bone]))]
            fc.keyframe_points.clear()
            fc.keyframe_points.add(len(co))
            fc.keyframe_points.foreach_set("co", co.ravel())
            fc.update()
    return {bone: frames for bone, frames in keep.items() if bone in animated}


def curves_by_path(addon, action, slot) -> dict[tuple[str, int], np.ndarray]:
    io = addon.blender_motion_cvae.rig_io
    return {(fc.data_path, fc.array_index): io.curve_frames(fc) for fc in io.fcurves(action, slot)}


@settings(max_examples=12, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=draws())
def test_fill_gaps_properties(addon, built, case):
    import bpy
    ui = addon.blender_motion_cvae
    obj, dense = built(case["rig"])
    activate(obj)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = case["rate"]
    work = dense.copy()
    play(obj, work)
    slot = getattr(obj.animation_data, "action_slot", None)
    rig = ui.rig_io.build_rig(obj, ui.rig_io.bone_mapping(obj))
    keep = keep_only(addon, work, slot, rig, case["poses"], case["parts"])
    start, end = case["start"], case["end"]
    digests, names = rigs.checksums(), set(bpy.data.actions.keys())
    try:
        # The model's inputs: (L, 21, 3) on the 30 fps grid, observing exactly the keyed joints: a key
        # on a joint's bone, or (joints at a bone's head) on the bone that aims at it, its parent joint's.
        plan = ui.tasks.plan(bpy.context, obj, "fill", ui.tasks.Options(frame_start=start, frame_end=end))
        fps = scene.render.fps / scene.render.fps_base
        length = int(round((end - start) * 30 / fps)) + 1
        assert plan.request.observed.shape == (length, 21, 3) and plan.request.mask.shape == (length, 21)
        assert np.isfinite(plan.request.observed).all()
        parents = addon.model.skeleton.PARENTS
        for j, b in enumerate(rig.joint_bones):
            by = [b] + ([rig.joint_bones[parents[j]]] if parents[j] >= 0 and not rig.joint_tails[j] else [])
            frames = [f for k in by for f in keep.get(rig.names[k], ()) if start <= f <= end]
            expected = {min(int(np.rint((f - start) * 30 / fps)), length - 1) for f in frames}
            assert set(np.flatnonzero(plan.request.mask[:, j]).tolist()) == expected

        assert bpy.ops.motion_cvae.fill_gaps(frame_start=start, frame_end=end, seed=case["seed"]) == {"FINISHED"}
        result = obj.animation_data.action
        assert result.name not in names and rigs.checksums().items() >= digests.items()
        check_result(addon, obj, rig, work, result, slot, keep, start, end)
    finally:
        for name in set(bpy.data.actions.keys()) - names:
            bpy.data.actions.remove(bpy.data.actions[name])
        play(obj, dense)


def check_result(addon, obj, rig, source, result, slot, keep, start, end) -> None:
    ui = addon.blender_motion_cvae
    before, after = curves_by_path(addon, source, slot), curves_by_path(addon, result, slot)
    aims, mover = ui.retarget.aims(rig), ui.retarget.mover(rig)
    solved = set(aims) | {mover}
    baked = {obj.pose.bones[rig.names[b]].path_from_id(ui.retarget.rotation_path(obj.pose.bones[rig.names[b]].rotation_mode))
             for b in aims} | {obj.pose.bones[rig.names[mover]].path_from_id("location")}
    for (path, index), old in before.items():
        new = after[(path, index)]
        if path not in baked:  # unmapped and unsolved bones: the source's curve as it was
            np.testing.assert_array_equal(new, old)
            continue
        assert np.isfinite(new).all()
        frames = np.rint(new[:, 0]).astype(int)
        outside = (old[:, 0] < start) | (old[:, 0] > end)
        np.testing.assert_array_equal(new[(frames < start) | (frames > end)], old[outside])
        assert set(range(start, end + 1)) <= set(frames.tolist()), f"{path}[{index}] misses frames of the range"
        for f, value in old[~outside]:
            assert np.abs(new[frames == int(round(f)), 1] - value).min() < 1e-6, f"{path}[{index}] lost its key at {f}"
    # Joints the user's keys fix: the joint's bone and every solved bone above it keyed there.
    frames = sorted({f for fs in keep.values() for f in fs if start <= f <= end})
    fixed = np.zeros((len(frames), len(rig.joint_bones)), bool)
    for j, b in enumerate(rig.joint_bones):
        chain = [rig.names[c] for c in [int(b)] + rig.ancestors(int(b)) if c in solved]
        fixed[:, j] = [all(f in keep.get(name, ()) for name in chain) for f in frames]
    if fixed.any():
        play(obj, source)
        want = rigs.read_positions(addon, obj, frames)
        play(obj, result)
        got = rigs.read_positions(addon, obj, frames)
        assert np.abs(got - want)[fixed].max() < 1e-3
