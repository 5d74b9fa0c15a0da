"""Bad input: one clear message each, and the scene exactly as it was; cancel; undo."""
from __future__ import annotations

import os
import shutil
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

import blender_rigs as rigs
from .helpers import Modal, activate, play, refused, state


def test_no_active_object(walk):
    import bpy
    bpy.context.view_layer.objects.active = None
    try:
        assert "Select an armature" in refused(None)
    finally:
        activate(walk)


def test_not_an_armature(walk):
    import bpy
    mesh = bpy.data.objects.new("Box", bpy.data.meshes.new("Box"))
    bpy.context.scene.collection.objects.link(mesh)
    bpy.context.view_layer.objects.active = mesh
    try:
        assert "mesh" in refused(None)
    finally:
        bpy.data.objects.remove(mesh)
        activate(walk)


def test_no_animation(walk):
    action = walk.animation_data.action
    walk.animation_data.action = None
    try:
        assert "has no animation" in refused(walk)
    finally:
        play(walk, action)


def test_one_key_only(walk, variant):
    rigs.thin(variant, getattr(walk.animation_data, "action_slot", None), 1000, 1)
    assert "only one keyed frame" in refused(walk)


def test_keys_outside_the_range(walk):
    assert "choose a range that includes" in refused(walk, frame_start=500, frame_end=600)


def test_range_of_20000_frames(walk):
    assert "Choose a shorter range" in refused(walk, frame_start=1, frame_end=20000)


def test_nan_in_an_fcurve(addon, walk, variant):
    fc = addon.blender_motion_cvae.rig_io.fcurves(variant, getattr(walk.animation_data, "action_slot", None))[5]
    co = np.empty(len(fc.keyframe_points) * 2)
    fc.keyframe_points.foreach_get("co", co)
    co[3] = np.nan
    fc.keyframe_points.foreach_set("co", co)
    assert "NaN or infinite" in refused(walk)


def test_linked_action(walk, tmp_path):
    import bpy
    path = str(tmp_path / "library.blend")
    bpy.data.libraries.write(path, {walk.animation_data.action})
    with bpy.data.libraries.load(path, link=True) as (src, dst):
        dst.actions = [walk.animation_data.action.name]
    linked = dst.actions[0]
    original = walk.animation_data.action
    play(walk, linked)
    try:
        assert "linked from another file" in refused(walk)
    finally:
        play(walk, original)
        bpy.data.libraries.remove(linked.library)


def test_unmappable_bones_are_listed(addon, walk):
    import bpy
    obj = rigs.build_armature("Odd", "mixamo")
    obj.data.bones["LeftForeArm"].name = "ElbowThing"
    obj.data.bones["RightUpLeg"].name = "LegTop"
    play(obj, walk.animation_data.action)
    activate(obj)
    try:
        message = refused(obj)
        assert "l_forearm" in message and "r_thigh" in message and "Bone Map" in message
    finally:
        bpy.data.objects.remove(obj)
        activate(walk)


def test_quadruped(walk):
    """A rig whose names map (Mixamo) but stands on four legs: spine level, front paws down."""
    import bpy
    obj = rigs.build_armature("Dog", "mixamo")
    bpy.ops.object.mode_set(mode='EDIT')
    bones = obj.data.edit_bones
    spine = {"Hips": (0, 0.4, 0.6), "Spine": (0, 0.2, 0.6), "Spine2": (0, 0.0, 0.6), "Neck": (0, -0.3, 0.6),
             "Head": (0, -0.45, 0.75)}
    for name, head in spine.items():
        bones[name].head = head
    for name, tail in (("Hips", "Spine"), ("Spine", "Spine2"), ("Spine2", "Neck"), ("Neck", "Head")):
        bones[name].tail = bones[tail].head
    bones["Head"].tail = (0, -0.6, 0.75)
    for side, x in (("Left", 0.1), ("Right", -0.1)):
        for chain, y in ((("Shoulder", "Arm", "ForeArm", "Hand"), -0.2), (("UpLeg", "Leg", "Foot", "ToeBase"), 0.4)):
            for k, part in enumerate(chain):
                b = bones[side + part]
                b.use_connect = False
                b.head, b.tail = (x, y, 0.6 - 0.19 * k), (x, y - (0.05 if k == 3 else 0), 0.6 - 0.19 * (k + 1) + 0.01)
    bpy.ops.object.mode_set(mode='OBJECT')
    obj.animation_data_create()
    for f in (1, 21):
        for pb in obj.pose.bones:
            pb.keyframe_insert("rotation_quaternion", frame=f)
    activate(obj)
    try:
        assert "standing biped" in refused(obj)
    finally:
        action = obj.animation_data.action
        bpy.data.objects.remove(obj)
        bpy.data.actions.remove(action)
        activate(walk)


def test_torch_missing(walk, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    assert "Install PyTorch" in refused(walk)


def test_weights_missing(walk):
    import bpy
    prefs = bpy.context.preferences.addons[rigs.MODULE].preferences
    shipped, prefs.weights_path = prefs.weights_path, "/nonexistent/motion_cvae.safetensors"
    try:
        assert "weights not found" in refused(walk)
    finally:
        prefs.weights_path = shipped


def test_weights_corrupt(walk, weights, tmp_path):
    import bpy
    broken = str(tmp_path / "broken.safetensors")
    shutil.copy(weights, broken)
    shutil.copy(os.path.splitext(weights)[0] + ".json", str(tmp_path / "broken.json"))
    with open(broken, "r+b") as f:
        f.seek(os.path.getsize(broken) // 2)
        f.write(b"\xff\xfe\xfd\xfc")
    prefs = bpy.context.preferences.addons[rigs.MODULE].preferences
    shipped, prefs.weights_path = prefs.weights_path, broken
    try:
        assert "corrupt" in refused(walk)
    finally:
        prefs.weights_path = shipped


def test_install_torch_needs_online_access(walk):
    import bpy
    if bpy.app.online_access:
        pytest.skip("online access is on: the button would really download PyTorch")
    assert "Online access is off" in refused(walk, op="install_torch")


def test_edit_mode_is_refused(walk):
    import bpy
    bpy.ops.object.mode_set(mode='EDIT')
    try:
        assert "Leave Edit Mode" in refused(walk)
    finally:
        bpy.ops.object.mode_set(mode='OBJECT')


def test_unknown_label(walk):
    assert "this model knows" in refused(walk, action_label="moonwalk")


def test_cancel_writes_nothing(addon, walk):
    """Esc in the modal operator cancels the job; the same Job is exercised here directly."""
    import bpy
    tasks, jobs = addon.blender_motion_cvae.tasks, addon.blender_motion_cvae.jobs
    before = state(walk)
    weights = bpy.context.preferences.addons[rigs.MODULE].preferences.weights_path
    plan = tasks.plan(bpy.context, walk, "fill", tasks.Options(variations=3, weights=weights))
    job = jobs.Job(plan.request)
    job.cancel()
    job.start()
    deadline = time.time() + 60
    while not job.done() and time.time() < deadline:
        time.sleep(0.01)
    assert isinstance(job.error, jobs.Cancelled) and job.result is None
    assert state(walk) == before


def test_invoke_from_a_script_runs_to_the_end(walk):
    import bpy
    before = len(bpy.data.actions)
    assert bpy.ops.motion_cvae.fill_gaps('INVOKE_DEFAULT') == {"FINISHED"}
    assert len(bpy.data.actions) == before + 1
    play(walk, walk.motion_cvae.last_source)


def test_modal_finishes_with_progress_in_the_status_bar(addon, walk):
    import bpy
    before = len(bpy.data.actions)
    modal = Modal(addon, walk)
    assert modal.until_done() == {'FINISHED'}
    assert len(bpy.data.actions) == before + 2 and not modal.running
    assert modal.status[-1] is None and all("Esc to cancel" in s for s in modal.status[:-1])
    play(walk, walk.motion_cvae.last_source)


def test_esc_cancels_the_modal_and_writes_nothing(addon, walk):
    before = state(walk)
    modal = Modal(addon, walk)
    assert modal.op.modal(modal.context, SimpleNamespace(type='ESC', value='PRESS')) == {'RUNNING_MODAL'}
    assert modal.until_done() == {'CANCELLED'}
    assert modal.op.reports == [({'WARNING'}, "Cancelled: nothing was changed.")]
    assert state(walk) == before and not modal.running


def test_undo_restores_the_previous_state(walk):
    """Last: undo reloads the file state, so every Python reference is re-fetched by name."""
    import bpy
    name, source = walk.name, walk.animation_data.action.name
    actions = sorted(a.name for a in bpy.data.actions)
    bpy.ops.ed.undo_push(message="before fill")
    assert bpy.ops.motion_cvae.fill_gaps('EXEC_DEFAULT', True, seed=5) == {"FINISHED"}
    assert sorted(a.name for a in bpy.data.actions) != actions
    bpy.ops.ed.undo()
    assert sorted(a.name for a in bpy.data.actions) == actions
    assert bpy.data.objects[name].animation_data.action.name == source

