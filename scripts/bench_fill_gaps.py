"""Fill Gaps end to end on a 240-frame, 60-bone rig (Mixamo names, fingers, face), keys every 20
frames, through the installed extension; times after the model is loaded. Prints JSON. With a
motion library (training.library), the same fill is also timed with it, alternating, in this run.

    python scripts/bench_fill_gaps.py [--runs 7] [--weights PATH] [--library PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blender_rigs as rigs  # noqa: E402


def clip_240(addon) -> np.ndarray:
    """The demo walk, stretched in time to 241 frames (30 fps grid), model space."""
    rigs.new_scene("source")
    src = rigs.import_bvh(os.path.join(rigs.FIXTURES, "demo_walk.bvh"))
    end = int(src.animation_data.action.frame_range[1])
    pos = rigs.read_positions(addon, src, np.arange(1, end + 1))
    u = np.linspace(0, len(pos) - 1, 241)
    lo = np.floor(u).astype(int).clip(0, len(pos) - 2)
    w = (u - lo)[:, None, None]
    return (1 - w) * pos[lo] + w * pos[lo + 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--weights", default="", help="checkpoint to use instead of the shipped weights")
    ap.add_argument("--library", default="", help="a motion library to time beside the model alone")
    args = ap.parse_args()
    addon = rigs.session(weights=args.weights)
    import bpy
    bpy.context.preferences.addons[rigs.MODULE].preferences.library_path = os.path.abspath(args.library) \
        if args.library else ""
    positions = clip_240(addon)
    rigs.new_scene("bench")
    obj = rigs.build_armature("Bench", "mixamo", fingers=True, face=True, extra_spine=True, root=True,
                              toe_ends=True, connect=True)
    action = rigs.bake_motion(addon, obj, positions, np.arange(1, 242), "Walk")
    rigs.thin(action, obj.animation_data.action_slot if hasattr(obj.animation_data, "action_slot") else None, 20, 1)

    def play_source() -> None:
        obj.animation_data.action = action
        if hasattr(obj.animation_data, "action_slot"):
            obj.animation_data.action_slot = action.slots[0]

    def fill(use_library: bool = False) -> float:
        play_source()
        start = time.perf_counter()
        result = bpy.ops.motion_cvae.fill_gaps(seed=0, use_library=use_library)
        elapsed = time.perf_counter() - start
        assert result == {"FINISHED"}, result
        bpy.data.actions.remove(obj.animation_data.action)
        return elapsed

    def phases() -> list[float]:
        """The operator's three steps timed apart: read + validate, model, retarget + write."""
        ui = addon.blender_motion_cvae
        weights = bpy.context.preferences.addons[rigs.MODULE].preferences.weights_path
        play_source()
        t0 = time.perf_counter()
        plan = ui.tasks.plan(bpy.context, obj, "fill", ui.tasks.Options(seed=0, weights=weights))
        t1 = time.perf_counter()
        motion = ui.jobs.Job(plan.request).run()
        t2 = time.perf_counter()
        created = ui.tasks.finish(obj, plan, motion)
        t3 = time.perf_counter()
        for new in created:
            bpy.data.actions.remove(new)
        return [t1 - t0, t2 - t1, t3 - t2]

    load = fill()  # imports torch and loads the weights
    library_first = fill(True) if args.library else None  # reads the library, builds its search features
    times, with_library = [], []
    for _ in range(args.runs):
        times.append(fill())
        if args.library:
            with_library.append(fill(True))
    steps = np.median([phases() for _ in range(args.runs)], axis=0)
    import torch
    print(json.dumps({
        "bench": "fill_gaps", "blender": bpy.app.version_string, "frames": 241, "bones": len(obj.data.bones),
        "keys": 13, "first_call_s": round(load, 3), "runs": args.runs,
        "median_s": round(float(np.median(times)), 4), "min_s": round(min(times), 4),
        "max_s": round(max(times), 4), "target_s": 0.3, "median_read_s": round(steps[0], 4),
        "median_model_s": round(steps[1], 4), "median_write_s": round(steps[2], 4),
        "load_average": round(os.getloadavg()[0], 2), "torch_threads": torch.get_num_threads(),
        "device": "cpu", "cpu_count": os.cpu_count(),
        **({"library": os.path.basename(args.library), "library_first_call_s": round(library_first, 3),
            "library_median_s": round(float(np.median(with_library)), 4)} if args.library else {}),
    }))


if __name__ == "__main__":
    main()
