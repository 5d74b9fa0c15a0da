"""A body is measured against the training skeletons on the bones observed whole."""
from __future__ import annotations

import os

import numpy as np

from model.body_size import bone_lengths, distinct_skeletons, size_ratio
from tests.conftest import FIXTURES
from training.bvh import load_bvh

WALK = load_bvh(os.path.join(FIXTURES, "demo_walk.bvh")).positions[:128]
DANCE = load_bvh(os.path.join(FIXTURES, "cmu", "salsa", "01.bvh")).positions[:40]


def test_skeletons_are_told_apart_by_size_and_deduplicated():
    skeletons = distinct_skeletons([WALK, DANCE, WALK[:60], 1.003 * WALK])
    assert len(skeletons) == 2
    np.testing.assert_allclose(skeletons[0], bone_lengths(WALK), atol=1e-5)  # sorted by size: Bandai first


def test_the_ratio_is_to_the_nearest_skeleton_on_the_bones_observed():
    skeletons = np.array(distinct_skeletons([WALK, DANCE]))
    full = np.ones(WALK.shape, bool)
    assert abs(float(size_ratio(1.07 * WALK, full, skeletons)) - 1.07) < 1e-4
    assert abs(float(size_ratio(DANCE * 0.97, np.ones(DANCE.shape, bool), skeletons)) - 0.97) < 1e-4
    # keys on a few frames, one leg only: measured on that leg's bones
    keys = np.zeros(WALK.shape, bool)
    keys[::20, [0, 13, 14, 15, 16]] = True
    scaled = WALK.copy()
    scaled[:, 13:17] = scaled[:, :1] + 1.02 * (scaled[:, 13:17] - scaled[:, :1])  # a longer left leg (nearer Bandai than CMU, whose legs are 6% longer)
    assert abs(float(size_ratio(scaled, keys, skeletons)) - 1.02) < 1e-4
    # the size is the legs': a rig whose shoulders sit elsewhere (longer upper arms) is not larger
    arms = WALK.copy()
    arms[:, [7, 8]] = arms[:, [6]] + 2.0 * (arms[:, [7, 8]] - arms[:, [6]])
    assert abs(float(size_ratio(1.1 * arms, full, skeletons)) - 1.1) < 1e-4
    arm_keys = np.zeros(WALK.shape, bool)
    arm_keys[::20, 5:9] = True
    assert float(size_ratio(2 * WALK, arm_keys, skeletons)) == 1.0  # no leg observed: taken as given


def test_without_a_whole_bone_or_a_known_skeleton_the_ratio_is_one():
    skeletons = np.array(distinct_skeletons([WALK]))
    side_view = np.ones(WALK.shape, bool)
    side_view[..., 0] = False  # lifting: depth never seen
    assert float(size_ratio(2 * WALK, side_view, skeletons)) == 1.0
    assert float(size_ratio(2 * WALK, np.zeros(WALK.shape, bool), skeletons)) == 1.0
    assert float(size_ratio(2 * WALK, np.ones(WALK.shape, bool), np.zeros((0, 20)))) == 1.0
    batch = size_ratio(np.stack([WALK, 1.1 * WALK]), np.ones((2,) + WALK.shape, bool), skeletons)
    np.testing.assert_allclose(batch, [1.0, 1.1], rtol=1e-4)
