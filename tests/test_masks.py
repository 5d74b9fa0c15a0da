"""Masks and the window representation, property-tested: the entries the network sees as observed are
exactly those the mask names, for every task, and observed entries come back exactly."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from model.keys import interpolate_observed, keep_key_velocities, smooth_hidden, velocity_fill
from model.representation import (MAX_DISTANCE, PELVIS, Stats, canonical_frame, canonical_mask, finish,
                                  from_output_features, full_mask, key_distance, prepare, to_output_features)
from model.skeleton import LOWER_BODY, NUM_JOINTS, UPPER_BODY
from training.masks import (TASK_WEIGHTS, complete_mask, inbetween_mask, lift_mask, predict_mask,
                            sample_mask, sample_masks)

J = NUM_JOINTS
tasks = st.sampled_from(list(TASK_WEIGHTS))
seeds = st.integers(0, 2**32 - 1)


def random_motion(rng, T=128):
    base = rng.normal(size=(1, J, 3)) * 0.3 + np.array([0, 1.0, 0])
    walk = np.cumsum(rng.normal(size=(T, 1, 3)) * 0.02, 0)
    return (base + walk + rng.normal(size=(T, J, 3)) * 0.01).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(tasks, seeds)
def test_network_sees_values_only_where_the_mask_observes(task, seed):
    rng = np.random.default_rng(seed)
    mask = sample_mask(task, 128, rng)
    assert mask.shape == (128, J, 3) and mask.dtype == bool
    x = random_motion(rng)
    win = prepare(x[None], mask[None])
    # hidden entries carry nothing of the ground truth: changing them changes no input
    y = np.where(mask, x, x + rng.normal(size=x.shape).astype(np.float32))
    win2 = prepare(y[None], mask[None])
    np.testing.assert_array_equal(win.inputs, win2.inputs)
    np.testing.assert_array_equal(win.prior, win2.prior)
    # and the observed entries are exactly what the mask names (x/z merge only under a turn)
    assert (win.mask <= mask[None]).all()
    if abs(np.sin(win.frame.yaw[0])) < 1e-9:
        np.testing.assert_array_equal(win.mask[0], mask)


@settings(max_examples=40, deadline=None)
@given(tasks, seeds)
def test_finish_returns_observed_entries_exactly(task, seed):
    rng = np.random.default_rng(seed)
    mask = sample_mask(task, 128, rng)
    x = random_motion(rng)
    win = prepare(x[None], mask[None])
    out = finish(rng.normal(size=win.prior.shape).astype(np.float32), win, x[None], mask[None])
    np.testing.assert_array_equal(out[0][mask], x[mask])


@settings(max_examples=30, deadline=None)
@given(seeds)
def test_canonical_frame_round_trip_and_facing(seed):
    rng = np.random.default_rng(seed)
    x = random_motion(rng)
    mask = np.ones_like(x, bool)
    frame = canonical_frame(x[None], mask[None])
    canon = frame.to_canonical(x[None].astype(np.float64))
    np.testing.assert_allclose(frame.to_world(canon)[0], x, atol=1e-5)
    across = canon[0, 0, 13] - canon[0, 0, 17]  # left thigh - right thigh points to +X
    assert abs(across[2]) < 1e-6 and across[0] > 0
    assert abs(canon[0, 0, 0, 0]) < 1e-6 and abs(canon[0, 0, 0, 2]) < 1e-6
    np.testing.assert_allclose(from_output_features(to_output_features(canon)), canon, atol=1e-9)


def test_side_view_is_centred_on_the_body():
    """Lifting sees (y, z) and never x: the window is still centred on the body's first observed
    pelvis z (not on the world origin, wherever the take was recorded), and not turned."""
    x = random_motion(np.random.default_rng(3)) + np.array([7.0, 0.0, -12.0])
    frame = canonical_frame(x[None], lift_mask(len(x))[None])
    assert frame.yaw[0] == 0.0 and frame.origin[0, 2] == x[0, 0, 2] and frame.origin[0, 0] == 0.0


def test_interpolation_is_linear_between_keys_and_held_outside():
    T = 10
    values = np.zeros((T, J, 3))
    values[2], values[6] = 1.0, 5.0
    mask = np.zeros((T, J, 3), bool)
    mask[[2, 6]] = True
    out = interpolate_observed(values, mask)
    np.testing.assert_allclose(out[:, 0, 0], [1, 1, 1, 2, 3, 4, 5, 5, 5, 5])
    assert (interpolate_observed(values, np.zeros_like(mask)) == 0).all()


def test_velocity_fill_uses_the_velocity_at_keys():
    """Single keys give the linear fill; consecutive keys give their velocity: uniform motion is
    filled exactly between keys and carries on (slowing) past the last; a curved path is followed
    more closely than by the linear fill; observed entries are untouched."""
    T = 40
    t = np.arange(T, dtype=np.float64)[:, None, None]
    mask = np.zeros((T, J, 3), bool)
    mask[[5, 20]] = True
    curve = np.broadcast_to(np.sin(t / 6.0), (T, J, 3)).copy()
    np.testing.assert_allclose(velocity_fill(curve, mask), interpolate_observed(curve, mask))
    mask[[4, 21]] = True
    uniform = np.broadcast_to(0.1 * t, (T, J, 3)).copy()
    out = velocity_fill(uniform, mask)
    np.testing.assert_allclose(out[4:22], uniform[4:22], atol=1e-12)
    tail = out[22:, 0, 0]
    assert (np.diff(tail) > 0).all() and (np.diff(tail, 2) < 0).all() and tail[-1] < uniform[-1, 0, 0]
    filled = velocity_fill(curve, mask)
    assert (filled[mask] == curve[mask]).all()
    gap = slice(6, 20)
    assert np.abs(filled[gap] - curve[gap]).mean() < 0.5 * np.abs(interpolate_observed(curve, mask)[gap] - curve[gap]).mean()


def test_key_velocities_are_kept_where_a_key_has_an_observed_neighbour():
    """Motion that kinks at its keys (the linear fill of a curve) leaves key 11 and reaches key 30,
    each with an observed neighbour, at nearly their keyed velocity; keys and frames `reach` away
    are untouched."""
    T, reach = 64, 8
    t = np.arange(T, dtype=np.float64)[:, None, None]
    curve = np.broadcast_to(np.sin(t / 6.0), (T, J, 3)).copy()
    mask = np.zeros((T, J, 3), bool)
    mask[[10, 11, 30, 31, 50]] = True
    kinked = interpolate_observed(curve, mask)
    out = keep_key_velocities(kinked, curve, mask, reach)
    for before, after, keyed in ((11, 12, curve[11] - curve[10]), (29, 30, curve[31] - curve[30])):
        made, kept = kinked[after] - kinked[before], out[after] - out[before]
        assert (np.abs(kept - keyed) < 0.25 * np.abs(made - keyed)).all()
    np.testing.assert_array_equal(out[mask], kinked[mask])
    np.testing.assert_array_equal(out[11 + reach:31 - reach], kinked[11 + reach:31 - reach])
    np.testing.assert_array_equal(out[31 + reach:50 - reach], kinked[31 + reach:50 - reach])
    np.testing.assert_array_equal(out[50 + reach:], kinked[50 + reach:])
    # a batch of outputs against one observation, as the generator's variations are
    batch = np.stack([kinked, kinked + 0.01])
    np.testing.assert_allclose(keep_key_velocities(batch, curve[None], mask[None], reach)[0], out)


def test_a_single_key_is_passed_through_not_kinked_at():
    """Keys with no observed neighbour (the add-on's usual case): the fill leaves and reaches each at
    the mean of its own velocities on either side, so the kink there falls to a quarter; keys, and frames
    `reach` away from every key, are untouched. A key on the window's edge has no other side."""
    T, reach = 64, 8
    t = np.arange(T, dtype=np.float64)[:, None, None]
    curve = np.broadcast_to(np.sin(t / 6.0), (T, J, 3)).copy()
    mask = np.zeros((T, J, 3), bool)
    mask[[0, 20, 40, 63]] = True
    kinked = interpolate_observed(curve, mask)
    out = keep_key_velocities(kinked, curve, mask, reach)
    kink = lambda m, k: np.abs(m[k + 1] - 2 * m[k] + m[k - 1]).max()
    for key in (20, 40):
        assert kink(out, key) < 0.3 * kink(kinked, key)
    np.testing.assert_array_equal(out[mask], kinked[mask])
    for far in (slice(reach, 20 - reach + 1), slice(20 + reach, 40 - reach + 1), slice(40 + reach, 63 - reach + 1)):
        np.testing.assert_array_equal(out[far], kinked[far])


def test_smoothing_takes_single_frame_jolts_out_between_keys_only():
    T = 40
    mask = np.zeros((T, J, 3), bool)
    mask[[5, 25]] = True
    values = np.broadcast_to(np.linspace(0.0, 1.0, T)[:, None, None], (T, J, 3)).copy()
    values[15] += 0.05                       # a jolt halfway between the keys
    values[32] += 0.05                       # past the last key: left as it is
    out = smooth_hidden(values, mask)
    assert np.abs(out[15] - np.linspace(0.0, 1.0, T)[15]).max() < 0.02
    np.testing.assert_allclose(out[8:13], np.linspace(0.0, 1.0, T)[8:13, None, None] * np.ones((J, 3)))  # lines stay
    np.testing.assert_array_equal(out[mask], values[mask])
    np.testing.assert_array_equal(out[26:], values[26:])
    np.testing.assert_array_equal(out[:5], values[:5])


def test_key_distance_counts_frames_to_the_nearest_key_and_a_joint_waits_for_the_pelvis():
    T = 100
    mask = np.zeros((T, J, 3), bool)
    mask[[10, 20]] = True
    mask[50, 3] = True                  # one joint keyed alone: its offset from the pelvis is still unknown
    d = key_distance(mask)
    assert d[10, 0, 0] == 0 and d[15, 0, 0] == 5 and d[12, 5, 1] == 2 and d[0, 7, 2] == 10
    assert d[99, PELVIS, 0] == min(79, MAX_DISTANCE)
    assert d[50, 3, 0] == 30 and d[51, 3, 0] == 31  # as far as the pelvis, the farther of the two
    assert (key_distance(np.zeros((T, J, 3), bool)) == MAX_DISTANCE).all()


def test_residual_scale_grows_with_distance_and_old_weights_keep_one_per_channel():
    rng = np.random.default_rng(0)
    ones = np.ones((J, 3), np.float32)
    table = np.cumsum(rng.uniform(0.001, 0.01, (MAX_DISTANCE + 1, J, 3)), 0).astype(np.float32)
    mask = np.zeros((2, 128, J, 3), bool)
    mask[:, ::10] = True
    scale = Stats(ones * 0, ones, ones * 0, ones, table).residual_scale(mask)
    assert scale.shape == mask.shape
    assert scale[0, 5, 4, 1] == table[5, 4, 1] and scale[1, 1, 9, 2] == table[1, 9, 2]
    legacy = Stats(ones * 0, ones, ones * 0, ones, ones * 0.3).residual_scale(mask)
    assert legacy.shape == mask.shape and (legacy == np.float32(0.3)).all()


def test_protocol_masks():
    m = inbetween_mask(128, 10, 30)
    frames = m[:, 0, 0]
    assert frames[:10].all() and not frames[10:40].any() and frames[40] and not frames[41:].any()
    assert predict_mask(128, 30)[:, 0, 0].sum() == 30
    upper_hidden = complete_mask(128, "upper_body")
    assert not upper_hidden[:, list(UPPER_BODY)].any() and upper_hidden[:, list(LOWER_BODY)].all()
    lift = lift_mask(128)
    assert not lift[..., 0].any() and lift[..., 1:].all()


def test_every_task_is_sampled_and_masks_broadcast():
    masks, names = sample_masks(400, 128, np.random.default_rng(0))
    assert masks.shape == (400, 128, J, 3) and set(names) == set(TASK_WEIGHTS)
    assert full_mask(np.ones(7, bool), 7).shape == (7, J, 3)
    assert full_mask(np.ones((7, J), bool), 7).shape == (7, J, 3)
    frame = canonical_frame(np.zeros((1, 5, J, 3)), np.zeros((1, 5, J, 3), bool))
    assert frame.yaw[0] == 0 and (canonical_mask(np.zeros((1, 5, J, 3), bool), frame) == 0).all()


def test_a_travelling_prior_walks_an_empty_window_ahead_and_leaves_observed_ones_alone():
    """With `travel`, a window with nothing observed gets a prior whose pelvis goes from the origin
    straight along +Z, its mean place ahead reached mid-window, so no two frames look alike to the
    network; a window with anything observed, or a model without it, keeps the still mean pose."""
    rng = np.random.default_rng(3)
    mean = rng.normal(0, 0.2, (J, 3)).astype(np.float32)
    mean[PELVIS] = [0.0, 0.85, 0.9]
    ones = np.ones((J, 3), np.float32)
    still, travel = (Stats(mean, ones, mean, ones, ones * 0.1, travel=t) for t in (False, True))
    world = np.stack([random_motion(rng), random_motion(rng)])
    mask = np.zeros((2, 128, J, 3), bool)
    mask[1, 40] = True                                   # window 1 keyed once
    moving, fixed = prepare(world, mask, travel), prepare(world, mask, still)
    path = moving.prior[0, :, PELVIS]
    np.testing.assert_allclose(path[:, [0, 1]], [[0.0, 0.85]] * 128, atol=1e-6)
    np.testing.assert_allclose(path[[0, -1], 2], [0.0, 1.8], atol=1e-5)
    assert (np.diff(path[:, 2]) > 0).all()
    np.testing.assert_allclose(moving.prior[0, :, 1:], fixed.prior[0, :, 1:])   # the pose about it: the mean
    np.testing.assert_array_equal(moving.prior[1], fixed.prior[1])
    assert np.ptp(fixed.prior[0, :, PELVIS], axis=0).max() == 0                 # still: one place every frame
