"""The Motion tab of the 3D Viewport sidebar, for the active armature."""
from __future__ import annotations

import bpy

from . import jobs
from .prefs import addon_prefs


def _armature(context):
    obj = context.active_object
    return obj if obj is not None and obj.type == 'ARMATURE' else None


class _Sidebar:
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "Motion"


class _ArmatureSubPanel(_Sidebar):
    bl_parent_id = "MOTION_CVAE_PT_main"

    @classmethod
    def poll(cls, context):
        return _armature(context) is not None


class MOTION_CVAE_PT_main(_Sidebar, bpy.types.Panel):
    bl_label = "Motion CVAE"

    def draw(self, context):
        layout = self.layout
        obj = _armature(context)
        if obj is None:
            layout.label(text="Select an armature", icon='INFO')
            return
        missing = jobs.missing_runtime()
        if missing:
            box = layout.box()
            box.label(text=f"{', '.join(missing)} not installed", icon='ERROR')
            box.operator("motion_cvae.install_torch", icon='IMPORT')
        s = obj.motion_cvae
        col = layout.column(align=True)
        col.prop(s, "use_key_range")
        row = col.row(align=True)
        row.enabled = not s.use_key_range
        row.prop(s, "frame_start")
        row.prop(s, "frame_end")
        col = layout.column()
        col.prop(s, "action_label")
        col.prop(s, "style_label")
        col.prop(s, "variations")
        col.prop(s, "seed")
        col.prop(s, "variety", slider=True)
        col.prop(s, "plant_feet")
        prefs = addon_prefs(context)
        row = col.row()
        row.enabled = bool(jobs.library_path(prefs.library_path if prefs else ""))  # set, or bundled
        row.prop(s, "use_library")
        col.prop(s, "device")
        col = layout.column(align=True)
        col.enabled = not missing
        row = col.row(align=True)
        row.operator("motion_cvae.fill_gaps", icon='IPO_BEZIER')
        row.operator("motion_cvae.resample", icon='FILE_REFRESH')
        row = col.row(align=True)
        row.operator("motion_cvae.extend", icon='FORWARD')
        row.prop(s, "extend_frames", text="")
        col.operator("motion_cvae.generate", icon='ARMATURE_DATA')


class MOTION_CVAE_UL_results(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        action = item.action
        if action is None:
            layout.label(text="(deleted)", icon='ERROR')
            return
        playing = _armature(context).animation_data and _armature(context).animation_data.action == action
        layout.label(text=action.name, icon='PLAY' if playing else 'ACTION')
        op = layout.operator("motion_cvae.result", text="", icon='CHECKMARK', emboss=False)
        op.index, op.delete = index, False
        op = layout.operator("motion_cvae.result", text="", icon='TRASH', emboss=False)
        op.index, op.delete = index, True


class MOTION_CVAE_PT_results(_ArmatureSubPanel, bpy.types.Panel):
    bl_label = "Results"

    def draw(self, context):
        s = context.active_object.motion_cvae
        self.layout.template_list("MOTION_CVAE_UL_results", "", s, "results", s, "result_index", rows=3)


class MOTION_CVAE_PT_bone_map(_ArmatureSubPanel, bpy.types.Panel):
    bl_label = "Bone Map"
    bl_options = {'DEFAULT_CLOSED'}

    def draw(self, context):
        obj = context.active_object
        layout = self.layout
        if not len(obj.motion_cvae.bone_map):
            layout.label(text="Bones are matched by name.")
        layout.operator("motion_cvae.edit_bone_map",
                        text="Detect Again" if len(obj.motion_cvae.bone_map) else "Edit Bone Map")
        col = layout.column(align=True)
        for item in obj.motion_cvae.bone_map:
            row = col.row(align=True)
            row.alert = not item.bone
            row.prop_search(item, "bone", obj.data, "bones", text=item.joint.replace("_", " "))
            row.prop(item, "use_tail", text="", icon='BONE_DATA')


CLASSES = (MOTION_CVAE_PT_main, MOTION_CVAE_UL_results, MOTION_CVAE_PT_results, MOTION_CVAE_PT_bone_map)
