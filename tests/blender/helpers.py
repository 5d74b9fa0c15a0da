"""Small helpers shared by the tests/blender modules."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np

import blender_rigs

POSE_CHANNELS = ("location", "rotation_quaternion", "rotation_euler", "rotation_axis_angle", "scale")


def activate(obj) -> None:
    import bpy
    bpy.context.window.scene = obj.users_scene[0]
    bpy.context.view_layer.objects.active = obj


def run(op: str, **props) -> tuple[set[str], str]:
    """Call bpy.ops.motion_cvae.<op>; (result, error message or '')."""
    import bpy
    try:
        return getattr(bpy.ops.motion_cvae, op)(**props), ""
    except RuntimeError as exc:
        return {"CANCELLED"}, str(exc)


def play(obj, action) -> None:
    (obj.animation_data or obj.animation_data_create()).action = action
    if hasattr(obj.animation_data, "action_slot") and action is not None:
        obj.animation_data.action_slot = action.slots[0]


def pose(obj) -> bytes:
    """The armature's pose channels as they are now, keyed or not."""
    out = []
    for name in POSE_CHANNELS:
        buf = np.empty(len(obj.pose.bones) * (3 if name in ("location", "rotation_euler", "scale") else 4))
        obj.pose.bones.foreach_get(name, buf)
        out.append(buf)
    return np.concatenate(out).tobytes()


def state(obj) -> tuple:
    """What a refused operator must leave exactly as it was: every action's F-curves, which one
    plays, the frame, the results list and the pose (an animator's unkeyed pose too)."""
    import bpy
    bpy.context.view_layer.update()  # pending evaluation is Blender's, not a change the operator made
    ad = obj.animation_data if obj is not None else None
    action = ad.action if ad else None
    armature = obj is not None and obj.type == 'ARMATURE'
    return (tuple(sorted(a.name for a in bpy.data.actions)), blender_rigs.checksums(),
            action.name if action else None, bpy.context.scene.frame_current,
            len(obj.motion_cvae.results) if armature else None, pose(obj) if armature else None)


def refused(obj, op: str = "fill_gaps", **props) -> str:
    """Run an operator that must refuse: returns its one message; the scene must not change."""
    before = state(obj)
    result, message = run(op, **props)
    assert result == {"CANCELLED"} and message, "the operator should have refused"
    assert state(obj) == before
    assert "Traceback" not in message and message.count("\n") <= 1
    return message


class Modal:
    """Drives the operators' modal logic as Blender's event loop would (headless bpy has none).

    With pause=True the worker stops at its first progress report (the first window is done) until
    `release` is set, so a test can press Esc in the middle of a run without racing the model."""

    def __init__(self, addon, obj, pause: bool = False, **options):
        import bpy
        ops, tasks, jobs = (getattr(addon.blender_motion_cvae, m) for m in ("operators", "tasks", "jobs"))
        op = type("Op", (ops._MotionOperator,), {"bl_label": "Fill Gaps"})()
        op.reports, op.report = [], lambda kind, text: op.reports.append((kind, text))
        weights = bpy.context.preferences.addons[blender_rigs.MODULE].preferences.weights_path
        options = {"variations": 2, **options}
        op._plan = tasks.plan(bpy.context, obj, "fill", tasks.Options(**options, weights=weights))
        op._object, op._timer, op._job = obj.name, None, jobs.Job(op._plan.request)
        self.fractions: list[float] = []
        self.reached, self.release = threading.Event(), threading.Event()
        if pause:
            report = op._job._progress

            def paused(fraction: float) -> bool:
                self.fractions.append(fraction)
                self.reached.set()
                self.release.wait(120)
                return report(fraction)
            op._job._progress = paused
        op._job.start()
        ops._running.append(op._job)
        self.op, self.running, self.status = op, ops._running, []
        self.context = SimpleNamespace(window_manager=SimpleNamespace(event_timer_remove=lambda timer: None),
                                       workspace=SimpleNamespace(status_text_set=self.status.append))

    def event(self, kind: str, value: str = 'NOTHING') -> set[str]:
        return self.op.modal(self.context, SimpleNamespace(type=kind, value=value))

    def until_done(self) -> set[str]:
        deadline = time.time() + 120
        while time.time() < deadline:
            result = self.event('TIMER')
            if result != {'RUNNING_MODAL'}:
                return result
            time.sleep(0.02)
        raise TimeoutError
