"""Feet that bear weight stay put: a drifting fill of a real walk gets its planted feet back, keys and
bone lengths kept, and nothing but the legs below the hips moves."""
from __future__ import annotations

import os

import numpy as np

from model.feet import LEGS, MAX_SHIFT, plant_feet
from model.skeleton import FEET, INDEX
from tests.conftest import FIXTURES
from training.bvh import load_bvh
from training.dataset import floor_height
from training.metrics import foot_skate

WALK = load_bvh(os.path.join(FIXTURES, "demo_walk.bvh")).positions[:96].astype(np.float64)
WALK[..., 1] -= floor_height(WALK)
HIDDEN = slice(20, 76)
LEG_JOINTS = sorted({j for leg in LEGS for j in leg[1:]})  # knees, ankles, toes


def drifting(walk: np.ndarray, per_frame: float) -> tuple[np.ndarray, np.ndarray]:
    """The walk with its hidden frames carried sideways at `per_frame` m a frame and back (the kind
    of wander a fill adds): every joint moves, so planted feet slide."""
    mask = np.ones(walk.shape, bool)
    mask[HIDDEN] = False
    t = np.arange(HIDDEN.stop - HIDDEN.start)
    offset = per_frame * np.minimum(t + 1, len(t) - t)  # meets the keys at both ends
    out = walk.copy()
    out[HIDDEN, :, 0] += offset[:, None]
    return out, mask


def skate(x: np.ndarray) -> float:
    return foot_skate(x[HIDDEN][:, list(FEET)], np.percentile(WALK[:, FEET, 1], 5, axis=0))


def lengths(x: np.ndarray, a: str, b: str) -> np.ndarray:
    return np.linalg.norm(x[:, INDEX[a]] - x[:, INDEX[b]], axis=-1)


def test_a_drifting_fill_gets_its_planted_feet_back():
    drifted, mask = drifting(WALK, 0.006)
    planted = plant_feet(drifted, mask)
    assert skate(drifted) > skate(WALK) + 0.002  # the drift made the feet slide
    assert skate(planted) < skate(WALK) + 0.0005, (skate(WALK), skate(drifted), skate(planted))
    np.testing.assert_array_equal(planted[mask], drifted[mask])  # keys exact
    step = lambda x: np.linalg.norm(np.diff(x[:, list(FEET)], axis=0), axis=-1).max()
    assert step(planted) <= step(drifted) + 0.005  # holds are eased in and out: no foot pops
    others = [j for j in range(WALK.shape[1]) if j not in LEG_JOINTS]
    np.testing.assert_array_equal(planted[:, others], drifted[:, others])  # hips, spine, arms untouched
    for side in "lr":  # the knee was put back: thigh and shin keep their lengths
        for a, b in (("thigh", "shin"), ("shin", "foot")):
            np.testing.assert_allclose(lengths(planted, f"{side}_{a}", f"{side}_{b}"),
                                       lengths(drifted, f"{side}_{a}", f"{side}_{b}"), atol=1e-6)


def test_a_swinging_foot_and_a_motion_without_slide_are_left_alone():
    mask = np.ones(WALK.shape, bool)
    mask[HIDDEN] = False
    planted = plant_feet(WALK, mask)  # captured motion: its feet land and roll, and keep doing so
    assert np.linalg.norm(planted - WALK, axis=-1)[HIDDEN][:, LEG_JOINTS].mean() < 0.01
    assert skate(planted) <= skate(WALK)
    lifted = WALK.copy()
    lifted[HIDDEN, :, 1] += 0.3  # a jump: nothing near the ground on the hidden frames
    lifted[HIDDEN, :, 0] += 0.01 * np.arange(HIDDEN.stop - HIDDEN.start)[:, None]
    np.testing.assert_allclose(plant_feet(lifted, mask)[HIDDEN], lifted[HIDDEN], atol=1e-6)


def test_between_keys_a_planted_foot_goes_where_the_keys_say():
    """A stance keyed at both ends (a foot rolling forward 4 cm) and hidden between: the fill's
    wander is taken out, the foot moves from key to key at a steady pace."""
    T, foot = 24, [INDEX["l_foot"], INDEX["l_toe"]]
    x = np.repeat(WALK[:1], T, 0)
    x[:, foot, 0] += (np.linspace(0.0, 0.04, T) + 0.02 * np.sin(np.linspace(0, np.pi, T)))[:, None]  # wander
    mask = np.zeros(x.shape, bool)
    mask[[0, T - 1]] = True
    out = plant_feet(x, mask)
    np.testing.assert_allclose(out[:, foot, 0], WALK[0, foot, 0] + np.linspace(0.0, 0.04, T)[:, None], atol=1e-9)
    np.testing.assert_array_equal(out[[0, T - 1]], x[[0, T - 1]])


def test_a_hold_that_would_move_a_foot_far_is_a_misread_contact():
    """A standing body gliding 60 cm over 40 frames (a skater, say): low and slow feet, but holding
    them would drag them further than a step; they glide with it."""
    T = 40
    x = np.repeat(WALK[:1], T, 0)
    x[..., 2] += np.linspace(0.0, 4 * MAX_SHIFT, T)[:, None]
    np.testing.assert_allclose(plant_feet(x, np.zeros(x.shape, bool)), x, atol=1e-6)


def test_batches_are_planted_one_by_one():
    drifted, mask = drifting(WALK, 0.006)
    batch = np.stack([drifted, WALK])
    np.testing.assert_allclose(plant_feet(batch, mask), np.stack([plant_feet(drifted, mask), plant_feet(WALK, mask)]))


def test_a_stretching_leg_is_made_rigid_at_the_lengths_its_keys_show():
    """The network's shins stretch by centimetres; a rig's don't, so its retargeted foot would land
    elsewhere. Every generated frame gets the keyed frames' thigh, shin and foot lengths."""
    stretched, mask = WALK.copy(), np.ones(WALK.shape, bool)
    mask[HIDDEN] = False
    for side in "lr":
        knee, ankle, toe = (INDEX[f"{side}_{n}"] for n in ("shin", "foot", "toe"))
        grow = 1.0 + 0.15 * np.sin(np.linspace(0, np.pi, HIDDEN.stop - HIDDEN.start))[:, None]
        shin = (stretched[HIDDEN, ankle] - stretched[HIDDEN, knee]) * (grow - 1.0)
        stretched[HIDDEN, ankle] += shin
        stretched[HIDDEN, toe] += shin
    out = plant_feet(stretched, mask)
    for side in "lr":
        for a, b in (("thigh", "shin"), ("shin", "foot"), ("foot", "toe")):
            np.testing.assert_allclose(lengths(out, f"{side}_{a}", f"{side}_{b}"),
                                       lengths(WALK, f"{side}_{a}", f"{side}_{b}"), atol=1e-6)
