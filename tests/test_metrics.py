"""The metric definitions on hand-made cases whose answers are worked out by hand."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from training import metrics


def test_mpjpe_is_the_mean_euclidean_distance():
    gt = np.zeros((2, 5, 21, 3))
    pred = gt + np.array([3.0, 4.0, 0.0])  # every joint 5 away
    assert metrics.mpjpe(pred, gt) == pytest.approx(5.0)
    pred[0] = gt[0]  # half the frames exact
    assert metrics.mpjpe(pred, gt) == pytest.approx(2.5)


def test_npss_is_zero_for_identical_and_rescaled_motion():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(3, 16, 6))
    assert metrics.npss(gt, gt) == pytest.approx(0.0)
    assert metrics.npss(gt, 2.0 * gt) == pytest.approx(0.0)  # spectra are normalised


def test_npss_hand_computed_and_power_weighted():
    # dim 0: gt impulse (flat spectrum, power 4 over 4 bins) vs constant (all power at DC):
    # cdfs (.25,.5,.75,1) vs (1,1,1,1): EMD 1.5. dim 1: both constant: EMD 0, gt power 16.
    gt = np.array([[[1.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]])
    pred = np.ones((1, 4, 2))
    assert metrics.npss(gt, pred) == pytest.approx(1.5 * 4 / 20)


def test_foot_skate_counts_only_grounded_steps():
    t = np.arange(6, dtype=float)
    planted = np.stack([0.01 * t, np.full(6, 0.10), np.zeros(6)], -1)   # ankle resting at 10 cm, sliding 1 cm/frame
    flying = np.stack([0.50 * t, np.full(6, 0.60), np.zeros(6)], -1)    # toe in the air, fast
    feet = np.stack([planted, flying], 1)                                # (T, K, 3)
    ground = np.array([0.09, 0.02])
    assert metrics.foot_skate(feet, ground) == pytest.approx(0.01)
    lifted = feet.copy(); lifted[3, 0, 1] = 0.5  # lifting the ankle at frame 3 removes steps 2->3 and 3->4
    lifted[4:, 0, 0] += 1.0                       # ...so a jump across them is not counted
    assert metrics.foot_skate(lifted, ground) == pytest.approx(0.01)
    assert np.isnan(metrics.foot_skate(feet + np.array([0, 1.0, 0]), ground))


def test_apd_of_evenly_spaced_samples():
    base = np.zeros((4, 21, 3))
    samples = np.stack([base, base + [1.0, 0, 0], base + [2.0, 0, 0]])
    assert metrics.apd(samples) == pytest.approx((1 + 2 + 1) / 3)
    assert metrics.apd(np.stack([base, base])) == 0.0
    with pytest.raises(ValueError):
        metrics.apd(samples[:1])


def test_fid_closed_forms():
    mu, eye = np.zeros(3), np.eye(3)
    assert metrics.fid(mu, eye, mu, eye) == pytest.approx(0.0, abs=1e-9)
    assert metrics.fid(mu, eye, mu + [1.0, 2.0, 2.0], eye) == pytest.approx(9.0)
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])  # diagonal: sum (sqrt a - sqrt b)^2
    assert metrics.fid(mu, np.diag(a), mu, np.diag(b)) == pytest.approx(1 + 0 + 4)


def test_feature_stats_match_numpy_and_fid_of_samples_is_small():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(4000, 4))
    mu, sigma = metrics.feature_stats(f)
    assert np.allclose(mu, f.mean(0)) and np.allclose(sigma, np.cov(f.T))
    g = rng.normal(size=(4000, 4))
    assert metrics.fid(mu, sigma, *metrics.feature_stats(g)) < 0.02
    assert metrics.fid(mu, sigma, *metrics.feature_stats(g + 1.0)) == pytest.approx(4.0, abs=0.1)


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 12), st.floats(-3, 3))
def test_mpjpe_symmetric_and_translation_equals_offset(frames, shift):
    rng = np.random.default_rng(frames)
    a = rng.normal(size=(frames, 21, 3))
    b = a + np.array([0.0, shift, 0.0])
    assert metrics.mpjpe(a, b) == pytest.approx(abs(shift))
    c = rng.normal(size=a.shape)
    assert metrics.mpjpe(a, c) == pytest.approx(metrics.mpjpe(c, a))


def test_body_speed_ignores_the_root_and_counts_the_pose():
    t = np.arange(31)[:, None, None] / 30.0
    travelling = np.zeros((31, 3, 3)) + np.array([2.0, 0, 0]) * t  # every joint carried at 2 m/s
    assert metrics.body_speed(travelling, 30.0) == pytest.approx(0.0)
    waving = travelling.copy()
    waving[:, 2, 1] += 0.5 * t[:, 0, 0]                     # one of the two non-root joints rises 0.5 m/s
    assert metrics.body_speed(waving, 30.0) == pytest.approx(0.25)
    assert metrics.body_speed(waving, 60.0) == pytest.approx(0.5)


def test_ground_speed_counts_the_roots_travel_not_its_sway_or_height():
    t = np.arange(61)[:, None, None] / 30.0
    walking = np.zeros((61, 3, 3)) + np.array([0.0, 0, 1.2]) * t   # the root carried 1.2 m/s along z
    walking[:, 0, 1] += 0.05 * np.sin(2 * np.pi * 2 * t[:, 0, 0])  # bobbing up and down
    assert metrics.ground_speed(walking, 30.0) == pytest.approx(1.2)
    walking[:, 0, 0] += 0.03 * np.sin(2 * np.pi * t[:, 0, 0])      # swaying from side to side each stride
    assert metrics.ground_speed(walking, 30.0) == pytest.approx(1.2)
    on_the_spot = walking - np.array([0.0, 0, 1.2]) * t              # bobbing and swaying, going nowhere
    assert metrics.ground_speed(on_the_spot, 30.0) < 1e-6


def test_backward_share_counts_windows_travelling_against_their_first_facing():
    t = np.arange(31)[:, None] / 30.0
    def window(facing: float, heading: float, speed: float) -> np.ndarray:
        w = np.zeros((31, 3, 3))                                   # root, left hip, right hip
        w[:, 0, [0, 2]] = speed * t * np.array([np.sin(heading), np.cos(heading)])
        left = np.array([np.cos(facing), 0.0, -np.sin(facing)])    # +X when facing +Z
        w[:, 1], w[:, 2] = w[:, 0] + 0.1 * left, w[:, 0] - 0.1 * left
        return w
    forward, backward = window(0.5, 0.5, 1.2), window(0.5, 0.5 + np.pi, 1.2)
    on_the_spot = window(0.0, np.pi, 0.1)                          # 0.1 m: not travelling
    assert metrics.backward_share(np.stack([forward, forward, backward, on_the_spot]), 1, 2) == pytest.approx(1 / 3)
    assert metrics.backward_share(np.stack([window(2.0, 2.0 + 1.3, 1.0)]), 1, 2) == 0.0  # sideways and ahead
    assert metrics.backward_share(np.stack([on_the_spot]), 1, 2) is None


def test_acceleration_is_zero_at_constant_velocity_and_spikes_at_a_kink():
    t = np.arange(20, dtype=np.float64)[:, None, None]
    straight = np.broadcast_to(t * [0.01, 0.0, 0.02], (20, 3, 3)).copy()
    assert metrics.acceleration(straight) == pytest.approx(0.0, abs=1e-12)
    kinked = straight.copy()
    kinked[10:] += (t[10:] - 10) * [0.01, 0.0, 0.0]  # speeds up at frame 10
    assert metrics.acceleration(kinked, [10]) == pytest.approx(0.01)
    assert metrics.acceleration(kinked, [5, 15]) == pytest.approx(0.0, abs=1e-12)
    assert metrics.acceleration(kinked) == pytest.approx(0.01 / 18)
