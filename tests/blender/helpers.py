"""Small helpers shared by the tests/blender modules."""
from __future__ import annotations

import blender_rigs


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


def state(obj) -> tuple:
    """What a refused operator must leave exactly as it was."""
    import bpy
    ad = obj.animation_data if obj is not None else None
    action = ad.action if ad else None
    slot = getattr(ad, "action_slot", None) if ad else None
    return (tuple(sorted(a.name for a in bpy.data.actions)), action.name if action else None,
            blender_rigs.checksum(action, slot) if action else None, bpy.context.scene.frame_current,
            len(obj.motion_cvae.results) if obj is not None and obj.type == 'ARMATURE' else None)
