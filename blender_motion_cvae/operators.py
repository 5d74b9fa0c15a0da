"""The four operators (a contract: ids and properties are used by scripts): validate -> job -> write.

From a script, execute() runs synchronously; from the UI, invoke() runs the model on a worker
thread while a modal timer shows progress in the status bar and Esc cancels. Either way every
refusal is one self.report({'ERROR'}, ...) with nothing changed.
"""
from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from . import jobs, rig_io, tasks
from .prefs import addon_prefs
from .properties import DEVICES, LIBRARY_HELP, MAX_VARIETY, PLANT_FEET_HELP, VARIETY_HELP
from .rig_io import RigError

_running: list[jobs.Job] = []  # at most one job at a time: the model and the rig are shared


class _MotionOperator:
    bl_options = {'REGISTER', 'UNDO'}
    mode = ""

    frame_start: IntProperty(name="Start", description="First frame (default: the first key)")  # type: ignore[valid-type]
    frame_end: IntProperty(name="End", description="Last frame (default: the last key)")  # type: ignore[valid-type]
    action_label: StringProperty(name="Action", description="Action label, empty or 'any' for any")  # type: ignore[valid-type]
    style_label: StringProperty(name="Style", description="Style label, empty or 'any' for any")  # type: ignore[valid-type]
    variations: IntProperty(name="Variations", default=1, min=1, max=16)  # type: ignore[valid-type]
    seed: IntProperty(name="Seed", default=0, min=0)  # type: ignore[valid-type]
    variety: FloatProperty(name="Variety", default=1.0, min=0.0, max=MAX_VARIETY, step=10,
                           description=VARIETY_HELP)  # type: ignore[valid-type]
    plant_feet: BoolProperty(name="Plant Feet", default=True, description=PLANT_FEET_HELP)  # type: ignore[valid-type]
    use_library: BoolProperty(name="Motion Library", default=True, description=LIBRARY_HELP)  # type: ignore[valid-type]
    device: EnumProperty(name="Device", items=DEVICES, default="AUTO")  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        if obj is None or obj.type != 'ARMATURE':
            cls.poll_message_set("Select an armature: the active object is "
                                 + ("missing" if obj is None else f"'{obj.name}', a {obj.type.lower()}"))
            return False
        if obj.mode == 'EDIT':
            cls.poll_message_set("Leave Edit Mode first")
            return False
        if _running:
            cls.poll_message_set("A Motion CVAE job is already running")
            return False
        return True

    def _options(self, context) -> tasks.Options:
        given = {name: getattr(self, name) if self.properties.is_property_set(name) else None
                 for name in ("frame_start", "frame_end", "action_label", "style_label", "variations",
                              "seed", "variety", "plant_feet", "use_library", "device", "frames") if hasattr(self, name)}
        prefs = addon_prefs(context)
        return tasks.Options(**given, weights=prefs.weights_path if prefs else "",
                             library=prefs.library_path if prefs else "")

    def _fail(self, exc: Exception) -> set[str]:
        if isinstance(exc, jobs.Cancelled):
            self.report({'WARNING'}, str(exc))
        elif isinstance(exc, (RigError, jobs.ModelError)):
            self.report({'ERROR'}, str(exc))
        else:  # a bug, but the user gets a sentence, not a traceback
            self.report({'ERROR'}, f"Motion CVAE failed ({type(exc).__name__}: {exc}); nothing was changed.")
        return {'CANCELLED'}

    def _finish(self, obj, plan, motion) -> set[str]:
        try:
            created = tasks.finish(obj, plan, motion)
        except Exception as exc:
            return self._fail(exc)
        self.report({'INFO'}, f"Created {', '.join(a.name for a in created)}")
        return {'FINISHED'}

    def execute(self, context):
        try:
            plan = tasks.plan(context, context.active_object, self.mode, self._options(context))
            motion = jobs.Job(plan.request).run()
        except Exception as exc:
            return self._fail(exc)
        return self._finish(context.active_object, plan, motion)

    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        try:
            self._plan = tasks.plan(context, context.active_object, self.mode, self._options(context))
        except Exception as exc:
            return self._fail(exc)
        self._object = context.active_object.name  # the user may change the selection meanwhile
        self._job = jobs.Job(self._plan.request)
        self._job.start()
        _running.append(self._job)
        self._timer = context.window_manager.event_timer_add(0.1, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        if event.type == 'ESC' and event.value == 'PRESS':
            self._job.cancel()
        if event.type != 'TIMER':
            return {'RUNNING_MODAL'} if event.type == 'ESC' else {'PASS_THROUGH'}
        if not self._job.done():
            context.workspace.status_text_set(
                f"Motion CVAE: {self.bl_label} {self._job.fraction:.0%}  (Esc to cancel)")
            return {'RUNNING_MODAL'}
        self._stop(context)
        if self._job.error is not None:
            return self._fail(self._job.error)
        obj = bpy.data.objects.get(self._object)
        if obj is None:
            self.report({'ERROR'}, f"'{self._object}' was deleted while the motion was generated; nothing was written.")
            return {'CANCELLED'}
        return self._finish(obj, self._plan, self._job.result)

    def cancel(self, context):
        """Blender ends the modal (a file is loaded, the window closes): stop the job, write nothing."""
        self._job.cancel()
        self._stop(context)

    def _stop(self, context) -> None:
        context.window_manager.event_timer_remove(self._timer)
        context.workspace.status_text_set(None)
        _running.remove(self._job)


class MOTION_CVAE_OT_fill_gaps(_MotionOperator, bpy.types.Operator):
    """Generate the frames between the keys; keyed bones stay exactly as keyed"""
    bl_idname = "motion_cvae.fill_gaps"
    bl_label = "Fill Gaps"
    mode = "fill"


class MOTION_CVAE_OT_resample(_MotionOperator, bpy.types.Operator):
    """New variations of the last fill, with a new seed, each its own action"""
    bl_idname = "motion_cvae.resample"
    bl_label = "Resample"
    mode = "resample"


class MOTION_CVAE_OT_extend(_MotionOperator, bpy.types.Operator):
    """Continue the motion past the last key"""
    bl_idname = "motion_cvae.extend"
    bl_label = "Extend"
    mode = "extend"

    frames: IntProperty(name="Frames", default=30, min=1, max=3000, description="Frames past the last key")  # type: ignore[valid-type]


class MOTION_CVAE_OT_generate(_MotionOperator, bpy.types.Operator):
    """Generate motion over the range from the action and style labels alone"""
    bl_idname = "motion_cvae.generate"
    bl_label = "Generate"
    mode = "generate"


class MOTION_CVAE_OT_result(bpy.types.Operator):
    """Play or delete a result action of this armature"""
    bl_idname = "motion_cvae.result"
    bl_label = "Result Action"
    bl_options = {'REGISTER', 'UNDO'}

    index: IntProperty()  # type: ignore[valid-type]
    delete: bpy.props.BoolProperty()  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context):
        return context.active_object is not None and context.active_object.type == 'ARMATURE'

    def execute(self, context):
        obj = context.active_object
        results = obj.motion_cvae.results
        if not 0 <= self.index < len(results) or results[self.index].action is None:
            self.report({'ERROR'}, "That result no longer exists.")
            return {'CANCELLED'}
        action = results[self.index].action
        if not self.delete:
            rig_io.assign(obj, action, tasks.source_slot(obj, action))
            return {'FINISHED'}
        results.remove(self.index)
        source = obj.motion_cvae.last_source
        if rig_io.animation(obj)[0] == action and source is not None:
            rig_io.assign(obj, source, tasks.source_slot(obj, source))  # back to what was filled
        bpy.data.actions.remove(action)
        return {'FINISHED'}


class MOTION_CVAE_OT_edit_bone_map(bpy.types.Operator):
    """List every canonical joint with the bone it maps to, to correct or complete by hand"""
    bl_idname = "motion_cvae.edit_bone_map"
    bl_label = "Edit Bone Map"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return context.active_object is not None and context.active_object.type == 'ARMATURE'

    def execute(self, context):
        from ..model.skeleton import JOINTS, map_joint_names, split_end_site
        obj = context.active_object
        names = [b.name for b in obj.data.bones]
        found = map_joint_names(names, required=())
        items = obj.motion_cvae.bone_map
        items.clear()
        for joint in JOINTS:
            item = items.add()
            item.joint = joint
            if joint in found:
                item.bone, item.use_tail = split_end_site(found[joint])
        return {'FINISHED'}


CLASSES = (MOTION_CVAE_OT_fill_gaps, MOTION_CVAE_OT_resample, MOTION_CVAE_OT_extend, MOTION_CVAE_OT_generate,
           MOTION_CVAE_OT_result, MOTION_CVAE_OT_edit_bone_map)
