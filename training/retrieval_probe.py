"""Why a motion library helps the network (model.library), window by window:

    python -m training.retrieval_probe [--data cache:val_heldout] [--checkpoint PATH]

On the evaluation's in-betweening windows: the model's fill (one draw), motion matching's, their
average and the better of the two per window, overall and split into locomotion and the rest; then,
on the 30-frame gap, ten samples each of the model's draws, of the ten nearest distinct retrieved
segments, and of draw i averaged with segment i: the best of ten against a single one. Motion
matching retrieves from the train split minus the evaluated clips, as `training.evaluate` does.
"""
from __future__ import annotations

import argparse

import numpy as np

from model.library import MotionLibrary
from training import evaluate as ev
from training.cli import run
from training.dataset import MotionDataset
from training.eval_clips import load_clips, run_model, windows
from training.masks import inbetween_mask

SAMPLES = 10  # retrieved segments per window


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="cache:val_heldout")
    ap.add_argument("--checkpoint")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    clips, train = load_clips(args.data), MotionDataset.load()
    names = {c.name for c in clips}
    matcher = MotionLibrary([train.clip(i) for i in train.clips("train") if train.names[i] not in names])
    gen = ev.load_model(args.checkpoint, required=True)
    C = ev.CONTEXT
    w, idx = windows(clips, C + max(ev.GAPS) + 1)
    loco = np.array([str(clips[c].action).startswith(("walk", "run")) for c, _ in idx])
    mm = lambda e, s=slice(None): f"{1000 * e[s].mean():6.2f}"
    print("gap  model  motion_matching  average  better_of_two  corr | locomotion: model mm avg | other: model mm avg")
    for task, g in enumerate(ev.GAPS):
        win, gap = w[:, :C + g + 1], slice(C, C + g)
        model = run_model(gen, win, inbetween_mask(C + g + 1, C, g), 0, task)[:, 0, gap]
        retrieved = matcher.inbetween(win, C - 1, g)
        err = lambda p: np.linalg.norm(p - win[:, gap], axis=-1).mean((1, 2))
        e_model, e_mm, e_avg = err(model), err(retrieved), err((model + retrieved) / 2)
        print(f"{g:3d} {mm(e_model)} {mm(e_mm)} {mm(e_avg)} {mm(np.minimum(e_model, e_mm))} "
              f"{np.corrcoef(e_model, e_mm)[0, 1]:5.2f} | {mm(e_model, loco)} {mm(e_mm, loco)} {mm(e_avg, loco)} "
              f"| {mm(e_model, ~loco)} {mm(e_mm, ~loco)} {mm(e_avg, ~loco)}", flush=True)
    g = ev.DIVERSITY_GAP
    win, idx = windows(clips, C + g + 1)
    gap = slice(C, C + g)
    draws = run_model(gen, win, inbetween_mask(C + g + 1, C, g), 0, 40, n=SAMPLES)[:, :, gap]
    picks = matcher.nearest(win, C - 1, g, SAMPLES)
    segments = np.stack([matcher.paste(win, C - 1, g, picks[:, k]) for k in range(SAMPLES)], 1)
    print(f"\n{g}-frame gap, {len(win)} windows: single / best of {SAMPLES} (mm), ratio")
    for name, s in (("model draws", draws), ("retrieved", segments), ("draw i + segment i", (draws + segments) / 2)):
        e = np.linalg.norm(s - win[:, None, gap], axis=-1).mean((2, 3))
        print(f"{name:20s} {1000 * e[:, 0].mean():6.2f} {1000 * e.min(1).mean():6.2f} {e.min(1).mean() / e[:, 0].mean():.3f}")


if __name__ == "__main__":
    run(main)
