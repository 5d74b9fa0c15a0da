"""A body is measured against the training skeletons on the bones observed whole, and mapped onto the
nearest one's proportions and back."""
from __future__ import annotations

import os

import numpy as np

from model.body_size import (BONE_PARENTS, CHILDREN, body_fit, bone_lengths, distinct_skeletons, from_skeleton, rigid_bones,
                             to_skeleton)
from tests.conftest import FIXTURES
from training.bvh import load_bvh

WALK = load_bvh(os.path.join(FIXTURES, "demo_walk.bvh")).positions[:128]
DANCE = load_bvh(os.path.join(FIXTURES, "cmu", "salsa", "01.bvh")).positions[:40]


def size_ratio(observed, mask, skeletons):
    return body_fit(observed, mask, skeletons)[0]


def long_forearms(body: np.ndarray) -> np.ndarray:
    """The left forearm and hand twice as far from the elbow: another rig's proportions."""
    out = body.copy()
    out[:, [7, 8]] = out[:, [6]] + 2.0 * (out[:, [7, 8]] - out[:, [6]])
    return out


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
    assert abs(float(size_ratio(1.1 * long_forearms(WALK), full, skeletons)) - 1.1) < 1e-4
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


def test_each_bone_is_put_at_the_skeletons_length_and_back():
    skeletons = np.array(distinct_skeletons([WALK, DANCE]))
    full = np.ones(WALK.shape, bool)
    body = 1.1 * long_forearms(WALK)
    ratio, scale = body_fit(body, full, skeletons)
    forearm = np.isin(CHILDREN, [7, 8])
    np.testing.assert_allclose(scale[forearm], 2.2, rtol=1e-4)
    np.testing.assert_allclose(scale[~forearm], 1.1, rtol=1e-4)
    np.testing.assert_allclose(to_skeleton(body, full, ratio, scale), WALK, atol=1e-4)  # the training body (lengths kept to 0.01 mm)
    np.testing.assert_allclose(from_skeleton(to_skeleton(body, full, ratio, scale), ratio, scale), body, atol=1e-5)
    # a generated frame at the skeleton's proportions comes back at the body's
    back = from_skeleton(WALK, ratio, scale)
    np.testing.assert_allclose(bone_lengths(back), bone_lengths(body), rtol=1e-4)
    # hidden entries are scaled as the legs; so is everything when no bone is seen whole (side view)
    keys = np.zeros(WALK.shape, bool)
    keys[::20] = True
    np.testing.assert_allclose(to_skeleton(body, keys, ratio, scale)[1:20], body[1:20] / 1.1, atol=1e-4)
    side_view = full.copy()
    side_view[..., 0] = False
    ratio, scale = body_fit(2 * WALK, side_view, skeletons)
    np.testing.assert_allclose(scale, 1.0)
    np.testing.assert_allclose(from_skeleton(to_skeleton(2 * WALK, side_view, ratio, scale), ratio, scale), 2 * WALK)


def test_the_benchmarks_bodies_keep_the_legs_and_change_the_other_bones_within_their_spread():
    from model.body_size import LEGS
    from training.bench_sizes import bodies
    w = np.stack([WALK, WALK[::-1]])
    made = dict(bodies(w, sizes=(1.1,), spreads=(0.25,)))
    np.testing.assert_allclose(made["size 1.1"], 1.1 * w)
    ratio = bone_lengths(made["bones +-0.25"]) / bone_lengths(w)
    np.testing.assert_allclose(ratio[:, LEGS], 1.0, rtol=1e-5)
    assert np.all(np.abs(np.log(ratio[:, ~LEGS])) <= 0.25 + 1e-5) and np.abs(np.log(ratio[:, ~LEGS])).max() > 0.1


def test_bones_seen_from_the_side_are_made_rigid_on_the_networks_side():
    """Lifting's view hides x: an output whose bones stretch in x gets one length per bone over the
    motion and x on the side it had; the seen axes and every other mask are left alone."""
    side_view = np.ones(WALK.shape, bool)
    side_view[..., 0] = False
    rng = np.random.default_rng(0)
    out = WALK.copy()
    out[..., 0] += rng.normal(0, 0.01, out[..., 0].shape)  # a network's few cm of stretch in depth
    fixed = rigid_bones(out, np.where(side_view, WALK, 0.0), side_view)
    np.testing.assert_array_equal(fixed[..., 1:], WALK[..., 1:])
    bones = lambda x: np.linalg.norm(x[:, CHILDREN] - x[:, BONE_PARENTS], axis=-1)
    assert bones(fixed).std(0).max() < 2e-3 < bones(out).std(0).max()
    rel = lambda x: x - x[:, :1]
    assert np.abs(rel(fixed) - rel(WALK)).mean() < 0.85 * np.abs(rel(out) - rel(WALK)).mean()
    keys = np.zeros(WALK.shape, bool)
    keys[::20] = True  # whole joints hidden: nothing to fix
    np.testing.assert_array_equal(rigid_bones(out, WALK, keys), out)
