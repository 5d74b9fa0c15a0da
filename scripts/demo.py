"""The main job, headless, through the INSTALLED extension: a Bandai walk imported from BVH and a
Mixamo-named rig built in code keep one key in 20 frames; Fill Gaps fills them again, and Resample
makes two more takes at a higher Variety; with `--library`, one more Fill Gaps draws on it.
Saves the .blend, renders a filmstrip (keys only vs filled) and prints the error on the removed
frames beside linear interpolation's.

    python scripts/demo.py [--out out/demo] [--weights PATH] [--library PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blender_rigs as rigs  # noqa: E402

STEP = 20
RESAMPLE_VARIETY = 3.0  # at the model's own 1.0 takes differ by a few millimetres


def linear(truth: np.ndarray, keyed: np.ndarray) -> np.ndarray:
    """Positions interpolated linearly between the kept keys (index 0 = first key)."""
    t = np.arange(len(truth))
    flat = truth.reshape(len(truth), -1)
    return np.stack([np.interp(t, keyed, flat[keyed, c]) for c in range(flat.shape[1])], 1).reshape(truth.shape)


def error_mm(a: np.ndarray, b: np.ndarray, frames: np.ndarray) -> float:
    return float(np.linalg.norm(a[frames] - b[frames], axis=-1).mean() * 1000)


def run_rig(addon, obj, source, library: bool) -> dict:
    """Thin, Fill Gaps, Resample (the model alone); errors on the removed frames (mm, mean over joints
    and frames) and how far apart the two resampled takes are there; with a library, the error of
    one more Fill Gaps that draws on it."""
    import bpy
    bpy.context.window.scene = obj.users_scene[0]
    bpy.context.view_layer.objects.active = obj
    slot = getattr(obj.animation_data, "action_slot", None)
    end = int(source.frame_range[1])
    keyed = np.arange(1, end + 1, STEP)
    frames = np.arange(1, keyed[-1] + 1)
    truth = rigs.read_positions(addon, obj, frames)
    rigs.thin(source, slot, STEP, 1)
    if bpy.ops.motion_cvae.fill_gaps(seed=0, use_library=False) != {"FINISHED"}:
        raise SystemExit("Fill Gaps failed")
    filled = obj.animation_data.action
    if bpy.ops.motion_cvae.resample(variations=2, variety=RESAMPLE_VARIETY, use_library=False) != {"FINISHED"}:
        raise SystemExit("Resample failed")
    removed = np.setdiff1d(np.arange(len(frames)), keyed - 1)
    row = {"rig": obj.name, "bones": len(obj.data.bones), "frames": len(frames), "keys": len(keyed),
           "linear_mm": error_mm(linear(truth, keyed - 1), truth, removed)}
    takes = []
    for action in [filled] + [r.action for r in obj.motion_cvae.results][-2:]:
        obj.animation_data.action = action
        if slot is not None:
            obj.animation_data.action_slot = action.slots[0]
        takes.append(rigs.read_positions(addon, obj, frames))
        row[action.name] = error_mm(takes[-1], truth, removed)
    row["resampled_apart_mm"] = error_mm(takes[1], takes[2], removed)
    if library:
        obj.animation_data.action = source
        if slot is not None:
            obj.animation_data.action_slot = source.slots[0]
        if bpy.ops.motion_cvae.fill_gaps(seed=0, use_library=True) != {"FINISHED"}:
            raise SystemExit("Fill Gaps with the motion library failed")
        row["library_mm"] = error_mm(rigs.read_positions(addon, obj, frames), truth, removed)
    obj.animation_data.action = filled
    if slot is not None:
        obj.animation_data.action_slot = filled.slots[0]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(rigs.ROOT, "out", "demo"))
    ap.add_argument("--weights", default="", help="checkpoint to use instead of the shipped weights")
    ap.add_argument("--library", default="", help="a motion library (python -m training.library) for one more fill")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    addon = rigs.session(weights=args.weights)
    import bpy
    bpy.context.preferences.addons[rigs.MODULE].preferences.library_path = os.path.abspath(args.library) \
        if args.library else ""
    import filmstrip

    rigs.new_scene("Bandai")
    bandai = rigs.import_bvh(os.path.join(rigs.FIXTURES, "demo_walk.bvh"))
    bandai_source = bandai.animation_data.action
    clip = rigs.read_positions(addon, bandai, np.arange(1, int(bandai_source.frame_range[1]) + 1))
    rigs.new_scene("Mixamo")
    mixamo = rigs.build_armature("Mixamo", "mixamo", fingers=True, face=True, extra_spine=True, connect=True)
    mixamo_source = rigs.bake_motion(addon, mixamo, clip, np.arange(1, len(clip) + 1), "MixamoWalk")
    rows = [run_rig(addon, bandai, bandai_source, bool(args.library)),
            run_rig(addon, mixamo, mixamo_source, bool(args.library))]

    blend = os.path.join(args.out, "motion_cvae_demo.blend")
    bpy.ops.wm.save_as_mainfile(filepath=blend, copy=True)
    bpy.context.window.scene = bandai.users_scene[0]
    shown = list(range(41, 62, 4))
    filled = bandai.animation_data.action
    bandai.animation_data.action = bandai_source  # the camera follows the keyed motion
    if hasattr(bandai.animation_data, "action_slot"):
        bandai.animation_data.action_slot = bandai_source.slots[0]
    pelvis = rigs.read_positions(addon, bandai, shown)
    pelvis = np.stack([pelvis[:, 0, 0], -pelvis[:, 0, 2], pelvis[:, 0, 1]], -1)  # model -> Blender axes
    png = filmstrip.render(bandai, filmstrip.dress(bandai), [bandai_source, filled], shown,
                           set(range(1, 400, STEP)), pelvis, os.path.join(args.out, "filmstrip.png"))

    print(f"\n{'rig':<22}{'frames':>7}{'keys':>6}{'linear mm':>11}   generated mm (per result action)")
    for row in rows:
        results = {k: v for k, v in row.items() if "." in k}
        print(f"{row['rig']:<22}{row['frames']:>7}{row['keys']:>6}{row['linear_mm']:>11.1f}   " +
              ", ".join(f"{k} {v:.1f}" for k, v in results.items()) +
              f"; the two Variety {RESAMPLE_VARIETY:g} takes {row['resampled_apart_mm']:.1f} mm apart" +
              (f"; with the motion library {row['library_mm']:.1f}" if "library_mm" in row else ""))
    print(f"\nsaved {blend}\nfilmstrip {png} (top: keys only, Blender's interpolation; bottom: Fill Gaps)")
    with open(os.path.join(args.out, "errors.json"), "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
