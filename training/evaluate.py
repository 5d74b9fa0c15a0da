"""The evaluation contract: every task of the model and its baselines on one set of motion, as JSON.

    python -m training.evaluate --data DIR|cache:SPLIT [--checkpoint PATH] [--json OUT] [--seed S]
                                [--plots DIR] [--fps FPS] [--max-clips N] [--threads N] [--library]

Protocol (LaFAN1-style; windows start every 40 frames of each clip, at 30 fps, positions in metres
with the clip's floor at y = 0, errors in mm on global joint positions unless said otherwise):
- inbetween: 71-frame windows (10 context + up to 60 gap + 1 target); for a gap g the first 10+g+1
  frames are used, so every gap length is scored on the same windows. Errors over the gap frames.
  The model is given exactly those 11+g frames (context and target observed, gap hidden).
  inbetween_by_action splits the errors by action label; inbetween_model_wins gives, per gap, the
  share of windows on which the model is closer than each baseline.
- sparse_keys: 121-frame windows keyed on every 10th or 20th frame only (the add-on's use: single
  keys, no context); errors over the frames between keys.
- predict: 60-frame windows, 30 frames (1 s) observed, 12 (400 ms) or 30 (1000 ms) predicted.
- complete: 128-frame windows, one body half hidden on every frame; error over the hidden joints.
- lift: 128-frame windows; see `project`. Error on pelvis-relative positions, pelvis excluded.
- diversity: the 30-frame in-betweening windows, 10 model samples each; diversity_predict: the same
  on the 1000 ms prediction windows.
- generate: 64-frame windows of real motion and as many generated from their labels alone, judged
  by training/classifier.py (accuracy; FID against the train split's features).
Windows and masks are fixed by the protocol (every mask from training/masks.py, as in training); the
seed drives the model's sampling, one seed per window whatever the batching. Hidden entries are
zeroed before the model sees them. A method that can't run (no checkpoint, no dataset cache for the
retrieval baselines, no rotations for SLERP) reports null; so does a metric that does not apply.
With --library every model row is the model with a motion library (model.library) of the same
motion motion_matching retrieves from: its fills between full-body keys averaged with a retrieved one,
and past the last key a recorded continuation taking over.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time

import numpy as np

from model.keys import velocity_fill
from model.library import MotionLibrary
from model.skeleton import FEET, INDEX
from training import metrics
from training.baselines import MeanDepth, MeanPose, interpolate, slerp_inbetween
from training.bvh import TARGET_FPS
from training.cli import run
from training.dataset import MotionDataset
from training.eval_clips import Clip, load_clips, run_model, spread, windows
from training.masks import complete_mask, frames_to_mask, generate_mask, inbetween_mask, lift_mask, predict_mask

CONTEXT, GAPS = 10, (5, 15, 30, 60)
PRED_CONTEXT, HORIZONS = 30, {"400ms": 12, "1000ms": 30}
LONG = 128
KEY_SPACINGS, KEYED_LEN = (10, 20), 121
IMAGE_M = 4.0  # the lifting camera's image spans 4 m x 4 m
DIVERSITY_GAP, DIVERSITY_SAMPLES = 30, 10
VARIETY = (2.0, 3.0)  # prior temperatures measured beside the model's own (the add-on's Variety)
GEN_LEN, GEN_DRAWS = 64, 3  # generation: draws per window the classifier's accuracy is over
PELVIS, L_THIGH, R_THIGH = INDEX["pelvis"], INDEX["l_thigh"], INDEX["r_thigh"]
MODEL_PATH = os.path.join(os.path.dirname(__file__), "..", "model", "weights", "motion_cvae.safetensors")


def _take(p: np.ndarray | None, *index) -> np.ndarray | None:
    return None if p is None else p[index]


def mm(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(1000.0 * x, 3)


def _npss(pred: np.ndarray, gt: np.ndarray, origin: np.ndarray) -> float:
    """NPSS of global positions over the gap, translated by the window's last context pelvis (the
    same shift for prediction and ground truth) so where the clip sits in the world doesn't weigh."""
    flat = lambda x: (x - origin[:, None, None]).reshape(len(x), x.shape[1], -1)
    return round(metrics.npss(flat(gt), flat(pred)), 5)


def inbetween(clips, matcher, gen, seed, keep: int = 3) -> tuple[dict, dict, dict, dict]:
    """Scores per gap and method, a few gap-30 windows of every method for the filmstrips, each
    method's error per gap and action label, and per gap the share of windows on which the model is
    closer than each baseline (where a method wins and loses: a mean hides which windows)."""
    w, idx = windows(clips, CONTEXT + max(GAPS) + 1)
    ground = np.stack([clips[c].ground() for c, _ in idx]) if idx else None
    rot_ok = bool(idx) and all(clips[c].motion is not None for c, _ in idx)
    actions = np.array([str(clips[c].action) for c, _ in idx])
    out, film, by_action, wins = {}, {}, {}, {}
    for task, g in enumerate(GAPS):
        length = CONTEXT + g + 1
        win, gap, mask = w[:, :length], slice(CONTEXT, CONTEXT + g), inbetween_mask(length, CONTEXT, g)
        preds = {"model": _take(run_model(gen, win, mask, seed, task), slice(None), 0, gap),
                 "linear": interpolate(win, mask)[:, gap] if idx else None,
                 "velocity": interpolate(win, mask, velocity_fill)[:, gap] if idx else None,
                 "motion_matching": matcher.inbetween(win, CONTEXT - 1, g) if matcher and idx else None,
                 "slerp": np.stack([_slerp(clips[c], s + CONTEXT - 1, s + CONTEXT + g) for c, s in idx])
                 if rot_ok else None}
        gt = win[:, gap]
        with_keys = lambda p: np.concatenate([win[:, CONTEXT - 1:CONTEXT], p, win[:, -1:]], 1)[:, :, list(FEET)]
        res = {m: {"mpjpe_mm": mm(metrics.mpjpe(p, gt)), "npss": _npss(p, gt, win[:, CONTEXT - 1, PELVIS]),
                   "foot_skate_mm": mm(metrics.foot_skate(with_keys(p), ground))} if p is not None else
               {"mpjpe_mm": None, "npss": None, "foot_skate_mm": None} for m, p in preds.items()}
        res["ground_truth"] = {"mpjpe_mm": None, "npss": None,
                               "foot_skate_mm": mm(metrics.foot_skate(with_keys(gt), ground)) if idx else None}
        out[str(g)] = res
        per_window = {m: np.linalg.norm(p - gt, axis=-1).mean((1, 2)) for m, p in preds.items() if p is not None}
        by_action[str(g)] = {a: {"windows": int((actions == a).sum()),
                                 **{m: mm(e[actions == a].mean()) for m, e in per_window.items()}}
                             for a in sorted(set(actions))}
        wins[str(g)] = ({m: round(float((per_window["model"] < e).mean()), 4) for m, e in per_window.items()
                         if m != "model"} if "model" in per_window else {})
        if g == DIVERSITY_GAP and idx:
            pick = spread(len(idx), keep)
            film = {"ground_truth": win[pick]}
            film.update({m: np.concatenate([win[pick, :CONTEXT], p[pick], win[pick, -1:]], 1)
                         for m, p in preds.items() if p is not None})
    return out, film, by_action, wins


def _slerp(clip: Clip, k0: int, k1: int) -> np.ndarray:
    m = clip.motion
    pos = slerp_inbetween(m.quats, m.translations, m.hierarchy.parents, m.joint_nodes, k0, k1)
    return pos - np.array([0.0, clip.floor, 0.0])


def predict(clips, gen, seed) -> dict:
    w, idx = windows(clips, PRED_CONTEXT + max(HORIZONS.values()))
    out = {}
    for task, (name, h) in enumerate(HORIZONS.items(), start=10):
        win, future = w[:, :PRED_CONTEXT + h], slice(PRED_CONTEXT, PRED_CONTEXT + h)
        mask = predict_mask(PRED_CONTEXT + h, PRED_CONTEXT)
        preds = {"model": _take(run_model(gen, win, mask, seed, task), slice(None), 0),
                 "zero_velocity": interpolate(win, mask) if idx else None,
                 "velocity": interpolate(win, mask, velocity_fill) if idx else None}
        out[name] = {m: {"mpjpe_mm": mm(metrics.mpjpe(p[:, future], win[:, future])) if p is not None else None}
                     for m, p in preds.items()}
    return out


def extend(clips, gen, seed) -> dict:
    """Extend past PRED_CONTEXT keyed frames to a whole window: the joints' speed relative to the pelvis
    in each of the three seconds after the keys (m/s), beside the real motion's. Error alone rewards
    the mean, which is a body slowing to a stop; an animator extending a walk wants it to go on."""
    w, idx = windows(clips, LONG)
    second = int(TARGET_FPS)
    seconds = {f"body_speed_{k + 1}s_mps": slice(PRED_CONTEXT + second * k, PRED_CONTEXT + second * (k + 1))
               for k in range(3)}
    speed = lambda x: ({k: round(metrics.body_speed(x[:, s], TARGET_FPS, PELVIS), 4) for k, s in seconds.items()}
                       if x is not None and idx else dict.fromkeys(seconds))
    model = _take(run_model(gen, w, predict_mask(LONG, PRED_CONTEXT), seed, 12), slice(None), 0)
    return {"model": speed(model), "ground_truth": speed(w)}


def sparse_keys(clips, gen, seed) -> dict:
    """The add-on's case: single keys every 10 or 20 frames (nothing gives a key a velocity) over
    121-frame windows; errors over the frames between keys, and the joints' acceleration (mm per
    frame squared) at the inner keys and over every frame: a kink or a jolt is a spike above real
    motion's."""
    w, idx = windows(clips, KEYED_LEN)
    out = {}
    for task, every in enumerate(KEY_SPACINGS, start=60):
        keyed = np.zeros(KEYED_LEN, bool)
        keyed[::every] = True
        inner = np.flatnonzero(keyed)[1:-1]
        mask = frames_to_mask(keyed)
        preds = {"model": _take(run_model(gen, w, mask, seed, task), slice(None), 0),
                 "linear": interpolate(w, mask) if idx else None, "ground_truth": w if idx else None}
        out[str(every)] = {m: {"mpjpe_mm": mm(metrics.mpjpe(p[:, ~keyed], w[:, ~keyed]))
                               if p is not None and m != "ground_truth" else None,
                               "accel_at_keys_mm": mm(metrics.acceleration(p, inner)) if p is not None else None,
                               "accel_mm": mm(metrics.acceleration(p)) if p is not None else None}
                           for m, p in preds.items()}
    return out


def complete(clips, mean_pose, gen, seed) -> dict:
    w, idx = windows(clips, LONG)
    out = {}
    for task, part in enumerate(("lower_body", "upper_body"), start=20):
        mask = complete_mask(LONG, part)
        preds = {"model": _take(run_model(gen, w, mask, seed, task), slice(None), 0),
                 "mean_pose": mean_pose.complete(w, part) if mean_pose and idx else None}
        h = ~mask[0].all(-1)  # the hidden joints
        out[part] = {m: {"mpjpe_mm": mm(metrics.mpjpe(p[:, :, h], w[:, :, h])) if p is not None else None}
                     for m, p in preds.items()}
    return out


def project(win: np.ndarray) -> np.ndarray:
    """The lifting input: an orthographic side camera looking along world X; image coords (z, y)
    normalised to 0-1 by a 4 m x 4 m image centred on the window's first-frame pelvis (not clipped:
    a walker may leave the image). (N, T, J, 3) -> (N, T, J, 2)."""
    centre = win[:, :1, PELVIS:PELVIS + 1, [2, 1]]
    return (win[..., [2, 1]] - centre) / IMAGE_M + 0.5


def unproject(image: np.ndarray, win_first_pelvis: np.ndarray) -> np.ndarray:
    """Image coords back to metres with the (calibrated) camera centre: (N, T, J, 2) -> (y, z)."""
    zy = (image - 0.5) * IMAGE_M + win_first_pelvis[:, None, None, [2, 1]]
    return zy[..., ::-1]


def lift(clips, mean_depth, gen, seed) -> dict:
    w, idx = windows(clips, LONG)
    if not idx:
        return {m: {"mpjpe_mm": None} for m in ("model", "mean_depth")}
    yz = unproject(project(w), w[:, 0, PELVIS])
    rel = lambda p: (p - p[:, :, PELVIS:PELVIS + 1])[:, :, [j for j in range(w.shape[2]) if j != PELVIS]]
    observed = np.concatenate([np.zeros(yz.shape[:-1] + (1,)), yz], -1)  # depth (x) never observed
    preds = {"model": _take(run_model(gen, observed, lift_mask(LONG), seed, 30), slice(None), 0),
             "mean_depth": mean_depth.lift(yz) if mean_depth else None}
    return {m: {"mpjpe_mm": mm(metrics.mpjpe(rel(p), rel(w))) if p is not None else None} for m, p in preds.items()}


def diversity(clips, gen, seed, setting: str = "inbetween") -> dict:
    """10 samples per window at the model's own temperature ("model") and at the VARIETY ones
    ("model_t2", ...): how far samples differ (APD), the best and the average one's error, and whether
    more spread costs realism (foot skate, from the last observed frame on). `setting`: the 30-frame
    gap, whose two ends leave little room to differ, or 1000 ms prediction, whose open end is where
    plausible motions part (the regime of the paper's diversity figures)."""
    keys = ("apd_mm", "min_of_10_mpjpe_mm", "single_mpjpe_mm", "keyframe_error_mm", "foot_skate_mm")
    names = {1.0: "model", **{t: f"model_t{t:g}" for t in VARIETY}}
    if setting == "inbetween":
        context, length, task = CONTEXT, CONTEXT + DIVERSITY_GAP + 1, 40
        mask = inbetween_mask(length, CONTEXT, DIVERSITY_GAP)
    else:
        context, length, task = PRED_CONTEXT, PRED_CONTEXT + HORIZONS["1000ms"], 41
        mask = predict_mask(length, PRED_CONTEXT)
    w, idx = windows(clips, length)
    frames = mask.all((1, 2))                                             # the observed frames
    ground = np.stack([clips[c].ground() for c, _ in idx]) if idx else None
    out = {}
    for temperature, name in names.items():
        s = run_model(gen, w, mask, seed, task, n=DIVERSITY_SAMPLES, temperature=temperature)  # (N, n, L, J, 3)
        if s is None:
            out[name] = dict.fromkeys(keys)
            continue
        hidden, gt = s[:, :, ~frames], w[:, None, ~frames]
        err = np.linalg.norm(hidden - gt, axis=-1).mean((-2, -1))        # (N, n)
        key_err = np.linalg.norm(s[:, :, frames] - w[:, None, frames], axis=-1).max()
        skate = metrics.foot_skate(s[:, :, context - 1:][..., list(FEET), :], ground[:, None])
        vals = (np.mean([metrics.apd(x) for x in hidden]), err.min(1).mean(), err.mean(), key_err, skate)
        out[name] = dict(zip(keys, (mm(v) for v in vals)))
    out["ground_truth"] = {**dict.fromkeys(keys), "foot_skate_mm": mm(metrics.foot_skate(
        w[:, context - 1:][..., list(FEET), :], ground)) if idx else None}
    return out


def generate(clips, gen, judge, seed) -> dict:
    """Motion from labels alone: recognised as them (accuracy, over GEN_DRAWS draws per window: with
    one, a val_takes figure moved 0.02 from seed to seed), like real motion (FID, on the first draws:
    as many windows as the real motion's, since FID's bias depends on the count), and moving: joints'
    speed relative to the pelvis (m/s), the pelvis's over the ground (m/s) and the share of the windows
    that travel going backwards, beside real motion's."""
    keys = ("action_accuracy", "style_accuracy", "fid", "body_speed_mps", "ground_speed_mps", "backward_share")
    out = {"model": dict.fromkeys(keys), "real": dict.fromkeys(keys)}
    w, idx = windows(clips, GEN_LEN)
    speed = lambda x: round(metrics.body_speed(x, TARGET_FPS, PELVIS), 4)
    ground = lambda x: round(metrics.ground_speed(x, TARGET_FPS, PELVIS), 4)
    backward = lambda x: metrics.backward_share(x, L_THIGH, R_THIGH, PELVIS)
    if not idx:
        return out
    out["real"].update(body_speed_mps=speed(w), ground_speed_mps=ground(w), backward_share=backward(w))
    if judge is None:
        return out
    labels = [(clips[c].action, clips[c].style) for c, _ in idx]
    out["real"].update(_judged(judge, w, labels))
    if gen is None:
        return out
    # labels the model never learned are left out of its conditioning (held-out "youthful": any style)
    asked = [(a if a in gen.trained_actions else None, s if s in gen.trained_styles else None) for a, s in labels]
    fake = run_model(gen, np.zeros_like(w), generate_mask(GEN_LEN), seed, 50, n=GEN_DRAWS,
                     actions=[a for a, _ in asked], styles=[s for _, s in asked])
    if fake is not None:
        draws = fake.reshape((-1,) + fake.shape[2:])  # window-major: every GEN_DRAWS-th row is a first draw
        out["model"] = {**_judged(judge, draws, [l for l in asked for _ in range(GEN_DRAWS)], fid_every=GEN_DRAWS),
                        "body_speed_mps": speed(fake[:, 0]), "ground_speed_mps": ground(fake[:, 0]),
                        "backward_share": backward(fake[:, 0])}
    return out


def _judged(judge, w: np.ndarray, labels: list[tuple[str | None, str | None]], fid_every: int = 1) -> dict:
    """Classifier accuracy on the windows whose label it knows (null if none) and FID to train, on
    every `fid_every`-th window (one draw per window of generated motion)."""
    feats, pa, ps = judge(w)
    feats = feats[::fid_every]
    def acc(pred, vocab, k):
        known = [(i, vocab.index(l[k])) for i, l in enumerate(labels) if l[k] in vocab]
        return round(float(np.mean([pred[i] == t for i, t in known])), 4) if known else None
    fid = metrics.fid(*metrics.feature_stats(feats), judge.fid_mu, judge.fid_sigma) if len(feats) > 1 else None
    return {"action_accuracy": acc(pa, judge.actions, 0), "style_accuracy": acc(ps, judge.styles, 1),
            "fid": None if fid is None else round(fid, 4)}


def evaluate(clips: list[Clip], train: MotionDataset | None = None, gen=None, judge=None, seed: int = 0,
             plots: str | None = None, library: bool = False) -> dict:
    """Every task on `clips`; `train` (the dataset cache) feeds the retrieval and mean baselines, its
    train split only, minus any clip evaluated here (matched by name). With `library`, the model's
    gap fills draw on that same retrieval (Generator.library): the model with a motion library."""
    matcher = mean_depth = mean_pose = None
    if train is not None:
        names = {c.name for c in clips}
        keep = [i for i in train.clips("train") if train.names[i] not in names]
        matcher = MotionLibrary([train.clip(i) for i in keep])
        mean_depth, mean_pose = MeanDepth(matcher.positions), MeanPose(matcher.positions)
    if library:
        if gen is None or matcher is None:
            raise FileNotFoundError("--library needs a model and the dataset cache (python -m training.dataset)")
        gen = copy.copy(gen)  # the caller's generator keeps its own library
        gen.library = matcher
    inb, film, inb_actions, inb_wins = inbetween(clips, matcher, gen, seed)
    result = {"clips": len(clips), "frames": int(sum(len(c.positions) for c in clips)), "library": library,
              "inbetween": inb,
              "inbetween_by_action": inb_actions, "inbetween_model_wins": inb_wins,
              "sparse_keys": sparse_keys(clips, gen, seed), "predict": predict(clips, gen, seed),
              "extend": extend(clips, gen, seed),
              "complete": complete(clips, mean_pose, gen, seed),
              "lift": lift(clips, mean_depth, gen, seed), "diversity": diversity(clips, gen, seed),
              "diversity_predict": diversity(clips, gen, seed, "predict"),
              "generate": generate(clips, gen, judge, seed)}
    if plots:
        from training.plots import error_vs_gap, filmstrips
        os.makedirs(plots, exist_ok=True)
        error_vs_gap(inb, os.path.join(plots, "inbetween_error_vs_gap.png"))
        if film:
            filmstrips(film, plots, CONTEXT)
    return result


def table(result: dict) -> str:
    """The JSON as aligned text: one line per (task, setting, method)."""
    lines = [f"{result['clips']} clips, {result['frames']} frames"]
    cells = lambda vals: "  ".join(f"{k} {'-' if v is None else f'{v:.4g}'}" for k, v in vals.items())
    def rows(task: str, groups: dict) -> None:
        for setting, methods in groups.items():
            for method, vals in methods.items():
                lines.append(f"{task:10s} {setting:11s} {method:16s} {cells(vals)}")
    for task in ("inbetween", "sparse_keys", "predict", "complete"):
        rows(task, result[task])
    for gap, groups in result["inbetween_by_action"].items():
        lines.extend(f"{'by action':10s} {gap:3s} {action:19s} {cells(vals)}" for action, vals in groups.items())
    for gap, shares in result["inbetween_model_wins"].items():
        lines.append(f"{'model wins':10s} {gap:3s} {'share of windows':19s} {cells(shares)}")
    rows("extend", {"3 s": result["extend"]})
    rows("lift", {"": result["lift"]})
    rows("diversity", {"gap 30": result["diversity"], "1000 ms": result["diversity_predict"]})
    rows("generate", {"": result["generate"]})
    return "\n".join(lines)


def load_model(path: str | None, required: bool):
    """The generator, or None when no checkpoint was asked for and none is shipped."""
    path = path or MODEL_PATH
    if not os.path.exists(path):
        if required:
            raise FileNotFoundError(f"No checkpoint at {path}")
        return None
    from model.generator import Generator
    return Generator.load(path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Evaluate the model and its baselines on a folder of BVH files "
                                             "or a cached split (cache:val_heldout).")
    ap.add_argument("--data", required=True, help="folder of .bvh (recursive) or cache:SPLIT")
    ap.add_argument("--checkpoint", help="model weights (default: the shipped model, if present)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plots", help="folder for PNG plots")
    ap.add_argument("--fps", type=float, help="override every file's frame rate")
    ap.add_argument("--max-clips", type=int, help="evaluate this many clips, spread over the sorted list")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: the add-on's policy, half the cores "
                                                "and at most 4; threads competing for busy cores run many times slower)")
    ap.add_argument("--library", action="store_true",
                    help="the model with a motion library: its gap fills averaged with motion matching's, "
                         "its continuations past the last key recorded ones")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads or max(1, min(4, (os.cpu_count() or 2) // 2)))
    t0 = time.time()
    clips = load_clips(args.data, args.fps, args.max_clips)
    try:
        train = MotionDataset.load()
    except FileNotFoundError as exc:
        print(f"{exc}\nmotion_matching, mean_depth and mean_pose will be null.", file=sys.stderr)
        train = None
    gen = load_model(args.checkpoint, required=args.checkpoint is not None)
    from training.classifier import DEFAULT_PATH as JUDGE_PATH
    judge = None
    if os.path.exists(JUDGE_PATH):
        from training.classifier import Judge
        judge = Judge(JUDGE_PATH)
    else:
        print(f"No classifier at {JUDGE_PATH} (python -m training.classifier): generate is null.", file=sys.stderr)
    t1 = time.time()
    result = evaluate(clips, train, gen, judge, args.seed, args.plots, args.library)
    print(table(result))
    print(f"loaded in {t1 - t0:.1f}s, evaluated in {time.time() - t1:.1f}s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    run(main)
