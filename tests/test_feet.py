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
    np.testing.assert_array_equal(plant_feet(lifted, mask)[HIDDEN], lifted[HIDDEN])


def test_between_keys_a_planted_foot_goes_where_the_keys_say():
    """A stance keyed at both ends (a foot rolling forward 4 cm) and hidden between: the fill's
    wander is taken out, the foot moves from key to key at a steady pace."""
    T, toe = 24, INDEX["l_toe"]
    x = np.repeat(WALK[:1], T, 0)
    x[:, toe, 0] = np.linspace(0.0, 0.04, T) + 0.02 * np.sin(np.linspace(0, np.pi, T))  # wander in between
    x[:, toe, 1] = np.percentile(WALK[:, toe, 1], 5)
    mask = np.zeros(x.shape, bool)
    mask[[0, T - 1]] = True
    out = plant_feet(x, mask)
    np.testing.assert_allclose(out[:, toe, 0], np.linspace(0.0, 0.04, T), atol=1e-9)
    np.testing.assert_array_equal(out[[0, T - 1]], x[[0, T - 1]])


def test_a_hold_that_would_move_a_foot_far_is_a_misread_contact():
    T, ankle = 40, INDEX["r_foot"]
    x = np.repeat(WALK[:1], T, 0)
    x[:, ankle, 1] = np.percentile(WALK[:, ankle, 1], 5)
    x[:, ankle, 2] = np.linspace(0.0, 4 * MAX_SHIFT, T)  # slow, low, and far: 1.2 m/s over 40 frames
    out = plant_feet(x, np.zeros(x.shape, bool))
    np.testing.assert_array_equal(out[:, ankle], x[:, ankle])


def test_batches_are_planted_one_by_one():
    drifted, mask = drifting(WALK, 0.006)
    batch = np.stack([drifted, WALK])
    np.testing.assert_allclose(plant_feet(batch, mask), np.stack([plant_feet(drifted, mask), plant_feet(WALK, mask)]))
