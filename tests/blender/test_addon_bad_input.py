"""The rest of issue 6's bad-input matrix (test_addon_errors.py holds the first part): zero-length
bones, centimetres vs metres vs a scaled object, inf in an F-curve, linked data, tampered weights,
the animator's unkeyed pose, and Esc in the middle of a run. A refusal is one message, no
traceback, and every action's F-curves (and the pose) exactly as they were."""
from __future__ import annotations

import json
import os
import pickle
import shutil

import numpy as np
import pytest

import blender_rigs as rigs
from .helpers import Modal, activate, play, refused, run, state


@pytest.fixture(autouse=True)
def walk_active(walk):
    """Tests that build their own rig leave it active: each test starts from the walk."""
    activate(walk)


@pytest.fixture(scope="module")
def motion(addon, walk) -> np.ndarray:
    """The walk's joints (80 frames, model space) to bake onto other rigs."""
    return rigs.read_positions(addon, walk, np.arange(1, 81))


def rig_with(addon, motion, name: str, unit: float = 1.0, scene_unit: float = 1.0):
    return baked(addon, built(name, unit, scene_unit), motion)


def baked(addon, obj, motion):
    """The walk baked on the rig and thinned to a key every 20 frames; the rig made active."""
    action = rigs.bake_motion(addon, obj, motion, np.arange(1, 81), obj.name)
    rigs.thin(action, getattr(obj.animation_data, "action_slot", None), 20, 1)
    activate(obj)
    return obj


def built(name: str, unit: float = 1.0, scene_unit: float = 1.0, edit=None):
    """A Mixamo rig in a scene of its own, `edit(edit_bones)` applied to its rest pose."""
    import bpy
    rigs.new_scene(name, unit_scale=scene_unit)
    obj = rigs.build_armature(name, "mixamo", unit=unit)
    obj.scale = (unit,) * 3 if scene_unit == 1.0 else (1.0,) * 3
    if edit is not None:
        bpy.ops.object.mode_set(mode='EDIT')
        edit(obj.data.edit_bones)
        bpy.ops.object.mode_set(mode='OBJECT')
    bpy.context.view_layer.update()
    return obj


def filled(addon, obj) -> None:
    """Fill Gaps succeeds: the source is untouched, the result is finite and reproduces the keys."""
    source, slot = obj.animation_data.action, getattr(obj.animation_data, "action_slot", None)
    digest = rigs.checksum(source, slot)
    truth = rigs.read_positions(addon, obj, np.arange(1, 62, 20))
    assert run("fill_gaps") == ({"FINISHED"}, "")
    result = obj.animation_data.action
    assert result != source and rigs.checksum(source, slot) == digest
    for fc in addon.blender_motion_cvae.rig_io.fcurves(result, getattr(obj.animation_data, "action_slot", None)):
        assert np.isfinite(addon.blender_motion_cvae.rig_io.curve_frames(fc)).all(), fc.data_path
    got = rigs.read_positions(addon, obj, np.arange(1, 62, 20))
    assert np.abs(got - truth).max() < 1e-3


def test_zero_length_bones(addon, motion, walk):
    """A mapped hand, a forearm whose hand sits on the elbow, an unmapped stub under the hips: 4.4+
    keeps a zero-length bone at ~2e-6 and the rig fills without NaN; 4.2 deletes zero-length bones
    when Edit Mode ends, and the message names the joints that went with them."""
    def edit(bones):
        bones["LeftHand"].tail = bones["LeftHand"].head
        forearm, hand = bones["RightForeArm"], bones["RightHand"]
        hand.use_connect = False
        forearm.tail = forearm.head
        hand.head = forearm.head
        stub = bones.new("Stub")
        stub.head = stub.tail = bones["Hips"].head
        stub.parent = bones["Hips"]
    obj = built("Stubby", edit=edit)
    if "LeftHand" not in obj.data.bones:
        play(obj, walk.animation_data.action)
        activate(obj)
        message = refused(obj)
        assert "l_hand" in message and "r_forearm" in message
        return
    baked(addon, obj, motion)
    assert min(b.length for b in obj.data.bones) < 1e-4
    filled(addon, obj)


@pytest.mark.parametrize("unit, scene_unit", [(1.0, 1.0), (0.01, 1.0), (0.01, 0.01)],
                         ids=["metres", "centimetres_object_scale", "centimetres_unit_scale"])
def test_scales_that_measure_a_human_are_filled(addon, motion, unit, scene_unit):
    filled(addon, rig_with(addon, motion, f"Scale_{unit}_{scene_unit}", unit=unit, scene_unit=scene_unit))


@pytest.mark.parametrize("unit, object_scale, size", [(0.01, 1.0, "146 m"), (1.0, 0.01, "0.0146 m")],
                         ids=["centimetres_read_as_metres", "metres_scaled_down"])
def test_scales_off_by_100_are_refused(addon, motion, unit, object_scale, size):
    obj = rig_with(addon, motion, f"Wrong_{unit}", unit=unit)
    obj.scale = (object_scale,) * 3
    message = refused(obj)
    assert size in message and "Unit Scale 0.01" in message


@pytest.mark.parametrize("index, value", [(3, np.inf), (3, -np.inf), (2, np.nan)], ids=["inf", "-inf", "nan_frame"])
def test_inf_in_an_fcurve(addon, walk, variant, index, value):
    fc = addon.blender_motion_cvae.rig_io.fcurves(variant, getattr(walk.animation_data, "action_slot", None))[7]
    co = np.empty(len(fc.keyframe_points) * 2)
    fc.keyframe_points.foreach_get("co", co)
    co[index] = value
    fc.keyframe_points.foreach_set("co", co)
    assert "NaN or infinite" in refused(walk)


def test_nan_in_a_handle(addon, walk, variant):
    """A free handle at NaN makes the curve NaN between its keys: refused, not baked into a result."""
    fc = addon.blender_motion_cvae.rig_io.fcurves(variant, getattr(walk.animation_data, "action_slot", None))[7]
    key = fc.keyframe_points[1]
    key.handle_right_type = 'FREE'
    key.handle_right = (key.co[0] + 3, float("nan"))
    assert "NaN or infinite" in refused(walk)


@pytest.fixture(scope="module")
def library(walk, tmp_path_factory) -> str:
    """A .blend holding the collection 'Char': an armature playing a copy of the walk."""
    import bpy
    obj = walk.copy()
    obj.animation_data.action = walk.animation_data.action.copy()
    collection = bpy.data.collections.new("Char")
    collection.objects.link(obj)
    path = str(tmp_path_factory.mktemp("library") / "char.blend")
    bpy.data.libraries.write(path, {collection})
    action = obj.animation_data.action
    bpy.data.objects.remove(obj)
    bpy.data.actions.remove(action)
    bpy.data.collections.remove(collection)
    return path


def linked_char(path: str):
    import bpy
    with bpy.data.libraries.load(path, link=True) as (src, dst):
        dst.collections = ["Char"]
    return dst.collections[0]


def test_linked_armature(walk, library):
    import bpy
    char = linked_char(library)
    bpy.context.scene.collection.children.link(char)
    obj = next(o for o in char.objects if o.type == 'ARMATURE')
    bpy.context.view_layer.objects.active = obj
    try:
        assert "is linked from another file" in refused(obj)
    finally:
        bpy.context.scene.collection.children.unlink(char)
        bpy.data.libraries.remove(char.library)
        activate(walk)


def test_override_playing_a_linked_action(walk, library):
    """A library override of the armature may be filled, but its action is still read-only."""
    import bpy
    char = linked_char(library)
    override = char.override_hierarchy_create(bpy.context.scene, bpy.context.view_layer)
    obj = next(o for o in override.objects if o.type == 'ARMATURE')
    assert obj.override_library is not None and obj.animation_data.action.library is not None
    bpy.context.view_layer.objects.active = obj
    try:
        assert "linked from another file (read-only)" in refused(obj)
    finally:
        bpy.data.objects.remove(obj)
        bpy.data.collections.remove(override)
        bpy.data.libraries.remove(char.library)
        activate(walk)


def _flip_bytes(path: str) -> None:
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        f.write(b"\xff\xfe\xfd\xfc")


def _edit_meta(path: str, **changes) -> None:
    meta_path = os.path.splitext(path)[0] + ".json"
    with open(meta_path) as f:
        meta = json.load(f)
    meta.update(changes)
    with open(meta_path, "w") as f:
        json.dump(meta, f)


def _resign(path: str) -> None:
    """What a tamperer who also rewrote the sidecar would do: the sha256 matches the new file."""
    from model.checkpoint import sha256
    _edit_meta(path, sha256=sha256(path))


class _Payload:
    """Pickled, this runs code when unpickled: it must never be unpickled."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (shutil.copy, (__file__, self.marker))


def _pickle_in_disguise(path: str) -> None:
    with open(path, "wb") as f:
        pickle.dump({"generator.x": _Payload(path + ".pwned")}, f)
    _resign(path)


def _tensor_reshaped(path: str) -> None:
    from safetensors.numpy import load_file, save_file
    tensors = load_file(path)
    name = next(k for k, v in tensors.items() if k.startswith("generator.") and v.ndim == 2)
    tensors[name] = tensors[name][:, :1].copy()
    save_file(tensors, path)
    _resign(path)


TAMPERS = {
    "flipped_bytes": (_flip_bytes, "checksum mismatch"),
    "truncated_resigned": (lambda p: (os.truncate(p, os.path.getsize(p) // 3), _resign(p)), "not a readable safetensors"),
    "pickle_resigned": (_pickle_in_disguise, "not a readable safetensors"),
    "tensor_reshaped_resigned": (_tensor_reshaped, "corrupt or incompatible"),
    "future_format": (lambda p: _edit_meta(p, format_version=99), "format version 99 is not supported"),
    "no_sidecar": (lambda p: os.remove(os.path.splitext(p)[0] + ".json"), "metadata file"),
}


@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_tampered_weights(walk, weights, tmp_path, tamper):
    """Through the operator: one message naming the problem, nothing unpickled, nothing changed."""
    import bpy
    broken = str(tmp_path / "broken.safetensors")
    shutil.copy(weights, broken)
    shutil.copy(os.path.splitext(weights)[0] + ".json", str(tmp_path / "broken.json"))
    change, expected = TAMPERS[tamper]
    change(broken)
    prefs = bpy.context.preferences.addons[rigs.MODULE].preferences
    shipped, prefs.weights_path = prefs.weights_path, broken
    try:
        assert expected in refused(walk)
    finally:
        prefs.weights_path = shipped
    assert not os.path.exists(broken + ".pwned")


def _tweak(obj) -> None:
    """An animator's pose change on a keyed bone, not keyed yet."""
    import bpy
    bpy.context.scene.frame_set(10)
    obj.pose.bones["LeftArm"].rotation_quaternion = (0.8, 0.6, 0.0, 0.0)
    obj.pose.bones["Hips"].location = (0.1, 0.2, 0.3)


def test_unkeyed_pose_survives_a_refusal(walk):
    """Refused after the rig was read (an unknown label): the pose the animator left is still there."""
    _tweak(walk)
    assert "this model knows" in refused(walk, action_label="moonwalk")
    assert tuple(walk.pose.bones["LeftArm"].rotation_quaternion) == pytest.approx((0.8, 0.6, 0.0, 0.0))


def test_esc_in_the_middle_writes_nothing(addon, walk):
    """400 frames are four model windows: Esc after the first one, with an unkeyed pose tweak."""
    _tweak(walk)
    before = state(walk)
    modal = Modal(addon, walk, pause=True, frame_start=1, frame_end=400)
    assert state(walk) == before  # reading the rig changed nothing
    assert modal.reached.wait(120)
    assert modal.event('TIMER') == {'RUNNING_MODAL'}
    assert modal.event('ESC', 'PRESS') == {'RUNNING_MODAL'}
    modal.release.set()
    assert modal.until_done() == {'CANCELLED'}
    assert len(modal.fractions) == 1 and 0 < modal.fractions[0] < 1
    assert modal.op.reports == [({'WARNING'}, "Cancelled: nothing was changed.")]
    assert state(walk) == before and not modal.running
