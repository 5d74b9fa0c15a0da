"""What each operator asks of the model, and what it does with the answer.

`plan` validates the rig and the range, reads the clip and builds the generator request (main
thread, nothing written); `finish` turns each generated variation into a NEW action. Everything
that can be refused is refused in `plan`, so a refusal leaves the scene exactly as it was.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

import bpy
import numpy as np

from . import checks, jobs, retarget, rig_io
from .rig_io import RigError

TAGS = {"fill": "fill", "resample": "fill", "extend": "extend", "generate": "gen"}


@dataclass
class Options:
    """Operator inputs; None means "as set in the panel" (or, for Resample's seed, the last one + 1)."""
    frame_start: int | None = None
    frame_end: int | None = None
    action_label: str | None = None
    style_label: str | None = None
    variations: int | None = None
    seed: int | None = None
    variety: float | None = None
    plant_feet: bool | None = None
    use_library: bool | None = None
    device: str | None = None
    frames: int | None = None   # Extend only
    weights: str = ""
    library: str = ""           # the preferences' motion library, used when use_library


def resolve(settings, mode: str, opts: Options) -> Options:
    """Fill what the caller left unset from the armature's settings."""
    def pick(value, default):
        return default if value is None else value
    label = lambda value, default: None if pick(value, default) in ("", "any") else pick(value, default)
    seed = settings.last_seed + 1 if mode == "resample" else settings.seed
    return Options(opts.frame_start, opts.frame_end, label(opts.action_label, settings.action_label),
                   label(opts.style_label, settings.style_label), pick(opts.variations, settings.variations),
                   pick(opts.seed, seed), pick(opts.variety, settings.variety),
                   pick(opts.plant_feet, settings.plant_feet), pick(opts.use_library, settings.use_library),
                   pick(opts.device, settings.device).lower(), pick(opts.frames, settings.extend_frames), opts.weights,
                   opts.library)


@dataclass
class Plan:
    mode: str
    source: object      # the action read (never modified); None for Generate on an unanimated rig
    slot: object
    clip: rig_io.Clip
    request: jobs.Request


def source_slot(obj, action):
    """4.4+: the source's slot the armature uses (by identifier), else its first one."""
    if action is None or not hasattr(action, "slots") or not len(action.slots):
        return None
    current = getattr(obj.animation_data, "action_slot", None)
    for slot in action.slots:
        if current is not None and slot.identifier == current.identifier:
            return slot
    return action.slots[0]


@contextmanager
def evaluating(obj, action, slot):
    """Temporarily play `action` (Resample reads the last fill's source, not the active result)."""
    active, active_slot = rig_io.animation(obj)
    if action is None or action == active:
        yield
        return
    try:
        rig_io.assign(obj, action, slot)
        yield
    finally:
        rig_io.assign(obj, active, active_slot)


def _range(settings, opts: Options, keys: list[int], scene) -> tuple[int, int]:
    """Explicit frames win; then the panel's range, or the keys' (the scene's with no keys)."""
    if not settings.use_key_range:
        start, end = settings.frame_start, settings.frame_end
    elif keys:
        start, end = keys[0], keys[-1]
    else:
        start, end = scene.frame_start, scene.frame_end
    return (opts.frame_start if opts.frame_start is not None else start,
            opts.frame_end if opts.frame_end is not None else end)


def plan(context, obj, mode: str, opts: Options) -> Plan:
    settings = obj.motion_cvae
    opts = resolve(settings, mode, opts)
    if mode == "resample":
        if settings.last_source is None:
            raise RigError("Nothing to resample: run Fill Gaps first.")
        source = settings.last_source
        opts.frame_start, opts.frame_end = settings.last_frame_start, settings.last_frame_end
    else:
        source = rig_io.animation(obj)[0]
    slot = source_slot(obj, source)
    curves = rig_io.fcurves(source, slot) if source is not None else []
    rig_io.check_source(obj, source, curves)
    if source is None and mode != "generate":
        raise RigError(f"'{obj.name}' has no animation: key at least two poses first, or use Generate.")
    rig = rig_io.build_rig(obj, rig_io.bone_mapping(obj))
    keys_by_bone = rig_io.keyed_frames(curves)
    mapped = {rig.names[b] for b in rig.joint_bones}
    keys = sorted(set().union(*(keys_by_bone.get(b, set()) for b in mapped)))
    start, end = _range(settings, opts, keys, context.scene)
    inside = [k for k in keys if start <= k <= end]
    need = {"generate": 0, "extend": 1}.get(mode, 2)
    if need and not keys:
        raise RigError(f"Action '{source.name}' has no keys on the mapped bones: key at least two poses.")
    if len(keys) < need:
        raise RigError(f"Action '{source.name}' has only one keyed frame ({keys[0]}): filling needs a key on "
                       "each side of a gap. Key at least one more pose, or use Extend.")
    if len(inside) < need:
        raise RigError(f"Frames {start}-{end} hold {len(inside)} keyed frame(s) but the keys lie at "
                       f"{keys[0]}-{keys[-1]}: choose a range that includes at least {need} keys.")
    end_out = end + (opts.frames if mode == "extend" else 0)
    if end_out < start + 1:
        raise RigError(f"The range {start}-{end_out} is empty: the end must come after the start.")
    seconds = (end_out - start) * context.scene.render.fps_base / context.scene.render.fps
    if seconds * rig_io.MODEL_FPS + 1 > rig_io.MAX_MODEL_FRAMES:
        raise RigError(f"The range {start}-{end_out} is {end_out - start + 1} frames ({seconds:.0f} s); the limit "
                       f"is {rig_io.MAX_MODEL_FRAMES / rig_io.MODEL_FPS:.0f} s. Choose a shorter range.")
    frames = np.arange(start, end_out + 1)
    with evaluating(obj, source, slot):
        clip = rig_io.read_clip(context, obj, rig, frames, keys_by_bone,
                                None if mode == "generate" else end, source, curves)
    checks.check_size(obj, clip, context.scene)
    checks.check_biped(obj, clip)
    observed, mask = clip.model_inputs()
    request = jobs.Request(observed, mask, opts.action_label, opts.style_label, opts.variations, opts.seed,
                           opts.device, opts.weights, opts.variety, opts.plant_feet,
                           jobs.library_path(opts.library) if opts.use_library else "")
    return Plan(mode, source, slot, clip, request)


def finish(obj, plan: Plan, motion: np.ndarray) -> list:
    """One new action per variation; the first becomes active. Nothing is left behind on failure."""
    base = plan.source.name if plan.source is not None else obj.name
    created = []
    try:
        for variation in motion:
            if plan.mode == "generate":
                variation = plan.clip.placed(variation)
            solution = retarget.solve(plan.clip.rig, plan.clip.basis, plan.clip.targets(variation))
            name = rig_io.unique_name(base, TAGS[plan.mode])
            created.append(rig_io.write_action(obj, plan.clip, solution, plan.source, plan.slot, name))
    except Exception:
        for action, _ in created:
            bpy.data.actions.remove(action)
        raise
    rig_io.assign(obj, *created[0])
    r, settings = plan.request, obj.motion_cvae
    frames = [int(plan.clip.frames[0]), int(plan.clip.frames[-1])]
    for action, _ in created:
        action["motion_cvae"] = {"mode": plan.mode, "source": base, "seed": r.seed, "variety": r.variety,
                                 "plant_feet": r.plant_feet, "library": os.path.basename(r.library),
                                 "action": r.action or "any", "style": r.style or "any", "frames": frames}  # provenance, for users and scripts
        settings.results.add().action = action
    if plan.mode in ("fill", "resample"):
        settings.last_source = plan.source
        settings.last_frame_start, settings.last_frame_end = frames
        settings.last_seed = plan.request.seed
    return [action for action, _ in created]
