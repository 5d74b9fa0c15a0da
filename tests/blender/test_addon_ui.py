"""The sidebar panels, the results list and the preferences draw without error (a recording stand-in
for the UI layout checks every property and operator they name), and the label dropdowns offer the
checkpoint's vocabulary."""
from __future__ import annotations

import json
import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

import blender_rigs as rigs
from .helpers import activate, play, run


class Layout:
    """Accepts what a UILayout accepts, and fails on a property or operator that does not exist."""

    def __init__(self, log: list):
        self.log = log

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.log.append(name)
            if name in ("prop", "prop_search"):
                data, prop = args[0], args[1]
                assert prop in data.bl_rna.properties, f"no property {prop!r} on {data}"
            if name == "operator":
                import bpy
                group, op = args[0].split(".")
                assert hasattr(getattr(bpy.ops, group), op) and getattr(getattr(bpy.ops, group), op).get_rna_type()
            return Layout(self.log)
        return call


@pytest.fixture(scope="module")
def armature(addon):
    rigs.new_scene("ui")
    clip = rigs.read_positions(addon, rigs.import_bvh(os.path.join(rigs.FIXTURES, "demo_walk.bvh")), np.arange(1, 42))
    obj = rigs.build_armature("UiRig", "unreal", root=True)
    action = rigs.bake_motion(addon, obj, clip, np.arange(1, 42), "UiWalk")
    rigs.thin(action, getattr(obj.animation_data, "action_slot", None), 20, 1)
    activate(obj)
    return obj


def test_label_dropdowns_offer_only_labels_the_model_trained_on(addon, weights, tmp_path):
    from model import checkpoint
    copy = str(tmp_path / "held_out_style.safetensors")
    shutil.copy(weights, copy)
    with open(checkpoint.sidecar(weights)) as f:
        meta = json.load(f)
    actions, styles = meta["actions"], meta["styles"]
    meta["trained_labels"] = {"actions": actions, "styles": styles[1:]}
    with open(checkpoint.sidecar(copy), "w") as f:
        json.dump(meta, f)
    assert addon.blender_motion_cvae.jobs.vocabularies(copy) == (actions, styles[1:])


def test_label_dropdowns_offer_the_checkpoint_vocabulary(addon, armature, weights):
    actions, styles = addon.blender_motion_cvae.jobs.vocabularies(weights)
    armature.motion_cvae.action_label = actions[0]
    armature.motion_cvae.style_label = styles[-1]
    assert run("fill_gaps", seed=2) == ({"FINISHED"}, "")
    meta = armature.animation_data.action["motion_cvae"]
    assert (meta["action"], meta["style"], meta["seed"], meta["mode"]) == (actions[0], styles[-1], 2, "fill")


def _written(addon, obj) -> np.ndarray:
    """Every key value of the action the armature now plays (its curves in a fixed order)."""
    fcurves = addon.blender_motion_cvae.rig_io.fcurves(obj.animation_data.action,
                                                      getattr(obj.animation_data, "action_slot", None))
    return np.concatenate([[k.co[1] for k in fc.keyframe_points]
                           for fc in sorted(fcurves, key=lambda f: (f.data_path, f.array_index))])


def test_variety_sets_how_far_seeds_differ(addon, armature):
    """Variety 0 is the model's most likely motion, the same for every seed; at 3 seeds differ. The
    value is recorded with the result and matches the generator's limit."""
    import bpy
    from model.generator import MAX_TEMPERATURE
    assert addon.blender_motion_cvae.properties.MAX_VARIETY == MAX_TEMPERATURE
    source, written = bpy.data.actions["UiWalk"], {}
    for variety in (0.0, 3.0):
        armature.motion_cvae.variety = variety
        for seed in (1, 2):
            play(armature, source)
            assert run("fill_gaps", seed=seed) == ({"FINISHED"}, "")
            written[variety, seed] = _written(addon, armature)
            assert armature.animation_data.action["motion_cvae"]["variety"] == variety
    armature.motion_cvae.variety = 1.0
    play(armature, source)
    np.testing.assert_array_equal(written[0.0, 1], written[0.0, 2])
    assert np.abs(written[3.0, 1] - written[3.0, 2]).max() > 1e-3
    assert run("fill_gaps", seed=1, variety=0.0) == ({"FINISHED"}, "")  # the operator's own property
    np.testing.assert_array_equal(_written(addon, armature), written[0.0, 1])


def test_plant_feet_is_a_choice_recorded_with_the_result(addon, armature):
    """On by default; off gives the feet as the network made them. Read back from the written action,
    bone by bone, the rig's feet are where the generator held them (its legs are made rigid at the
    rig's lengths, so retargeting can put them there), and they slide less than without."""
    import bpy
    from model.skeleton import FEET
    from training.metrics import foot_skate
    ui, source = addon.blender_motion_cvae, bpy.data.actions["UiWalk"]
    assert armature.motion_cvae.plant_feet
    skate = {}
    for plant in (True, False):
        play(armature, source)
        plan = ui.tasks.plan(bpy.context, armature, "fill", ui.tasks.Options(seed=1, plant_feet=plant))
        generated = ui.jobs.Job(plan.request).run()[0][:, list(FEET)]
        assert run("fill_gaps", seed=1, plant_feet=plant) == ({"FINISHED"}, "")
        assert armature.animation_data.action["motion_cvae"]["plant_feet"] == plant
        feet = rigs.read_positions(addon, armature, np.arange(1, 42))[:, list(FEET)]
        skate[plant] = foot_skate(feet, np.percentile(feet[..., 1], 5, axis=0))
        if plant:
            off = np.linalg.norm(feet - generated, axis=-1)
            assert off.mean() < 1e-3 and off.max() < 5e-3, (off.mean(), off.max())
    play(armature, source)
    assert skate[True] < skate[False], skate


def test_a_motion_library_is_a_choice_recorded_with_the_result(addon, armature, tmp_path):
    """With a library in the preferences, fills and Extend draw on it unless Motion Library is off;
    the file is named in the result's provenance. A missing file is refused with the fix, and nothing changes."""
    import bpy
    from training.library import build
    ui, source = addon.blender_motion_cvae, bpy.data.actions["UiWalk"]
    prefs = bpy.context.preferences.addons[rigs.MODULE].preferences
    library = str(tmp_path / "walks.safetensors")
    build(rigs.FIXTURES, library)
    written = {}
    try:
        prefs.library_path = library
        for use in (True, False):
            play(armature, source)
            assert run("fill_gaps", seed=1, use_library=use) == ({"FINISHED"}, "")
            assert armature.animation_data.action["motion_cvae"]["library"] == ("walks.safetensors" if use else "")
            written[use] = _written(addon, armature)
        assert np.abs(written[True] - written[False]).max() > 1e-3
        for seed in (1, 2):  # the seed picks the segment, but Variety 0 is the most likely motion for any seed
            for variety in (0.0, 1.0):
                play(armature, source)
                assert run("fill_gaps", seed=seed, variety=variety) == ({"FINISHED"}, "")
                written[seed, variety] = _written(addon, armature)
        np.testing.assert_array_equal(written[1, 0.0], written[2, 0.0])
        assert np.abs(written[1, 1.0] - written[2, 1.0]).max() > 1e-3
        play(armature, source)
        plan = ui.tasks.plan(bpy.context, armature, "fill", ui.tasks.Options(seed=3, variety=0.0, variations=3,
                                                                              library=library))
        same = ui.jobs.Job(plan.request).run()
        assert same.shape[0] == 3 and (same == same[:1]).all()
        for use in (True, False):  # Extend continues past the last key with it
            play(armature, source)
            assert run("extend", frames=30, seed=1, use_library=use) == ({"FINISHED"}, "")
            assert armature.animation_data.action["motion_cvae"]["library"] == ("walks.safetensors" if use else "")
            written["extend", use] = _written(addon, armature)
        assert np.abs(written["extend", True] - written["extend", False]).max() > 1e-3
        prefs.library_path = str(tmp_path / "gone.safetensors")
        play(armature, source)
        before = len(bpy.data.actions)
        result, message = run("fill_gaps", seed=1)
        assert result == {"CANCELLED"} and "Motion library not found" in message and "panel" in message
        assert len(bpy.data.actions) == before and armature.animation_data.action == source
    finally:
        prefs.library_path = ""
        play(armature, source)


def test_panels_and_preferences_draw(addon, armature):
    import bpy
    ui = addon.blender_motion_cvae
    assert run("edit_bone_map") == ({"FINISHED"}, "")
    assert [i.joint for i in armature.motion_cvae.bone_map][:2] == ["pelvis", "spine"]
    log: list = []
    for panel in ui.panel.CLASSES:
        if hasattr(panel, "draw") and panel is not ui.panel.MOTION_CVAE_UL_results:
            panel.draw(SimpleNamespace(layout=Layout(log)), bpy.context)
    item = armature.motion_cvae.results[0]
    ui.panel.MOTION_CVAE_UL_results.draw_item(None, bpy.context, Layout(log), None, item, 0, None, "", 0)
    prefs = bpy.context.preferences.addons[rigs.MODULE].preferences
    ui.prefs.MotionCVAEPreferences.draw(SimpleNamespace(layout=Layout(log), bl_rna=prefs.bl_rna), bpy.context)
    assert log.count("operator") >= 8 and "template_list" in log and "prop_search" in log


def test_results_list_assigns_and_deletes(armature):
    import bpy
    results = armature.motion_cvae.results
    first, count = results[0].action.name, len(results)
    assert run("result", index=0) == ({"FINISHED"}, "")
    assert armature.animation_data.action.name == first
    assert run("result", index=0, delete=True) == ({"FINISHED"}, "")
    assert first not in bpy.data.actions and len(results) == count - 1
    assert armature.animation_data.action == armature.motion_cvae.last_source
