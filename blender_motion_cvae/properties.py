"""Settings stored on the armature object (so they travel with it in the .blend): the panel's inputs,
the Bone Map overrides, the result actions and what Resample needs to redo the last fill."""
from __future__ import annotations

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty,
                       StringProperty)

from . import jobs
from .prefs import addon_prefs

DEVICES = [("AUTO", "Auto", "CUDA when available, else the CPU"), ("CPU", "CPU", "Run on the CPU"),
           ("CUDA", "CUDA", "Run on an NVIDIA GPU")]
MAX_VARIETY = 4.0  # model.generator.MAX_TEMPERATURE (a test keeps them equal; the model loads lazily)
VARIETY_HELP = ("How far results may stray from the most likely motion: 0 gives that one motion for any seed, "
                "1 the model's own spread, more makes variations differ more and keep less close to real motion")
PLANT_FEET_HELP = ("Hold each generated foot still while it bears weight (keys stay exact); off leaves the feet "
                   "as the model made them, for slides and spins")
LIBRARY_HELP = ("Average each gap between full-body keys with the nearest recorded motion of the motion library, "
                "and continue past the last key with it (the add-on preferences' library, else one bundled with "
                "this release; the seed picks which of its ten nearest, Variety 0 the nearest); off, or no library: "
                "the model alone")
_items_alive: dict[str, list] = {}  # Blender keeps no reference to dynamic enum items: we must


def _label_items(kind: str):
    def items(self, context):
        prefs = addon_prefs(context)
        actions, styles = jobs.vocabularies(prefs.weights_path if prefs else "")
        labels = actions if kind == "action" else styles
        _items_alive[kind] = [("any", "Any", f"Let the model choose the {kind}")] + \
            [(label, label.replace("-", " ").title(), "") for label in labels]
        return _items_alive[kind]
    return items


class MotionCVAEBoneItem(bpy.types.PropertyGroup):
    joint: StringProperty(name="Joint", description="Canonical joint")  # type: ignore[valid-type]
    bone: StringProperty(name="Bone", description="Bone of this rig that plays the joint; empty: automatic")  # type: ignore[valid-type]
    use_tail: BoolProperty(name="Tail", description="The joint is the bone's tail, not its head")  # type: ignore[valid-type]


class MotionCVAEResult(bpy.types.PropertyGroup):
    action: PointerProperty(type=bpy.types.Action)  # type: ignore[valid-type]


class MotionCVAESettings(bpy.types.PropertyGroup):
    use_key_range: BoolProperty(name="Key Range", default=True,
                                description="Use the frames from the first to the last key")  # type: ignore[valid-type]
    frame_start: IntProperty(name="Start", default=1)  # type: ignore[valid-type]
    frame_end: IntProperty(name="End", default=120)  # type: ignore[valid-type]
    action_label: EnumProperty(name="Action", items=_label_items("action"),
                               description="What the motion does (from the model's vocabulary)")  # type: ignore[valid-type]
    style_label: EnumProperty(name="Style", items=_label_items("style"),
                              description="How the motion is performed")  # type: ignore[valid-type]
    variations: IntProperty(name="Variations", default=1, min=1, max=16,
                            description="How many results, each its own action")  # type: ignore[valid-type]
    seed: IntProperty(name="Seed", default=0, min=0)  # type: ignore[valid-type]
    variety: FloatProperty(name="Variety", default=1.0, min=0.0, max=MAX_VARIETY, step=10,
                           description=VARIETY_HELP)  # type: ignore[valid-type]
    plant_feet: BoolProperty(name="Plant Feet", default=True,
                             description=PLANT_FEET_HELP)  # type: ignore[valid-type]
    use_library: BoolProperty(name="Motion Library", default=True,
                              description=LIBRARY_HELP)  # type: ignore[valid-type]
    device: EnumProperty(name="Device", items=DEVICES, default="AUTO")  # type: ignore[valid-type]
    extend_frames: IntProperty(name="Extend Frames", default=30, min=1, max=3000,
                               description="Frames generated past the last key")  # type: ignore[valid-type]
    bone_map: CollectionProperty(type=MotionCVAEBoneItem)  # type: ignore[valid-type]
    results: CollectionProperty(type=MotionCVAEResult)  # type: ignore[valid-type]
    result_index: IntProperty()  # type: ignore[valid-type]
    # The last fill, which Resample repeats with a new seed.
    last_source: PointerProperty(type=bpy.types.Action)  # type: ignore[valid-type]
    last_frame_start: IntProperty()  # type: ignore[valid-type]
    last_frame_end: IntProperty()  # type: ignore[valid-type]
    last_seed: IntProperty()  # type: ignore[valid-type]


CLASSES = (MotionCVAEBoneItem, MotionCVAEResult, MotionCVAESettings)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Object.motion_cvae = PointerProperty(type=MotionCVAESettings)


def unregister():
    del bpy.types.Object.motion_cvae
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
