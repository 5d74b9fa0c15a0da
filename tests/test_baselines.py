"""Baselines on cases with a known answer: each must be exact where its assumption holds."""
import os

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from model.representation import canonical_frame, Frame
from training import metrics
from model.library import APART, MotionLibrary, facing_frame
from training.baselines import MeanDepth, MeanPose, interpolate, slerp, slerp_inbetween
from training.bvh import load_bvh

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "bandai_walk_tiny.bvh")


@pytest.fixture(scope="module")
def walk():
    return load_bvh(FIXTURE)


def turned(pos: np.ndarray, yaw: float, shift=(1.5, 0.0, -2.0)) -> np.ndarray:
    """The same motion turned about Y and moved on the floor."""
    return Frame(np.zeros(3), np.array(yaw)).to_world(pos[None])[0] + np.array(shift)


def test_interpolate_is_exact_for_constant_velocity_and_holds_for_prediction():
    t = np.arange(20, dtype=float)[None, :, None, None]
    w = np.broadcast_to(t * np.array([0.01, 0.0, 0.02]), (2, 20, 21, 3)).copy()
    keys = np.zeros(20, bool); keys[:10] = True; keys[-1] = True
    assert np.allclose(interpolate(w, keys), w)
    past = np.arange(20) < 10
    assert np.allclose(interpolate(w, past)[:, 10:], w[:, 9:10])


def test_slerp_endpoints_and_midpoint():
    q0 = Rotation.identity().as_quat()[None]
    q1 = Rotation.from_euler("y", 90, degrees=True).as_quat()[None]
    q = slerp(q0, -q1, np.array([0.0, 0.5, 1.0]))  # -q1 is the same rotation: shortest arc still used
    rotvec = Rotation.from_quat(q[:, 0]).as_rotvec(degrees=True)
    assert np.allclose(rotvec, [[0, 0, 0], [0, 45, 0], [0, 90, 0]])


def test_slerp_inbetween_matches_the_keys_neighbourhood(walk):
    pos = walk.positions
    mid = slerp_inbetween(walk.quats, walk.translations, walk.hierarchy.parents, walk.joint_nodes, 40, 42)
    assert mid.shape == (1, 21, 3)
    assert metrics.mpjpe(mid[0], pos[41]) < 0.01  # one frame between keys: within a centimetre
    long = slerp_inbetween(walk.quats, walk.translations, walk.hierarchy.parents, walk.joint_nodes, 40, 71)
    assert long.shape == (30, 21, 3) and np.isfinite(long).all()


def test_facing_frame_agrees_with_the_model_representation(walk):
    pose = turned(walk.positions[:5], 1.0)
    mine = facing_frame(pose[0])
    theirs = canonical_frame(pose, np.ones(pose.shape, bool))
    assert np.isclose(np.cos(mine.yaw - theirs.yaw), 1.0)
    assert np.allclose(mine.origin, theirs.origin)


def test_motion_matching_retrieves_itself_under_any_placement(walk):
    pos = walk.positions.astype(np.float64)
    mm = MotionLibrary([pos], stride=1)
    window = turned(pos[30:71], 2.0)[None]
    out = mm.inbetween(window, 9, 30)
    assert out.shape == (1, 30, 21, 3)
    assert metrics.mpjpe(out, window[:, 10:40]) < 1e-4


def test_motion_matching_meets_both_keys_when_the_match_is_imperfect(walk):
    pos = walk.positions.astype(np.float64)
    mm = MotionLibrary([pos[:100]], stride=2)
    window = turned(pos[60:116], -0.7)[None]
    window[:, 40:] += np.array([0.0, 0.0, 0.3])  # a target the database can't reach
    out = mm.inbetween(window, 9, 30)
    # blending: the step into the gap and out of it are no larger than the motion's own steps + offset share
    assert np.linalg.norm(out[:, 0] - window[:, 9], axis=-1).max() < 0.1
    assert np.linalg.norm(out[:, -1] - window[:, 40], axis=-1).max() < 0.1


def test_the_nearest_segments_are_apart_from_each_other(walk):
    """The first pick is motion matching's own; the rest start APART frames from every other pick."""
    pos = walk.positions.astype(np.float64)
    mm = MotionLibrary([pos], stride=1)
    window = turned(pos[30:71], 2.0)[None]
    picks = mm.nearest(window, 9, 30, k=5)
    starts = picks[0]
    assert picks.shape == (1, 5) and starts[0] == 30 + 9
    assert min(abs(a - b) for i, a in enumerate(starts) for b in starts[i + 1:]) > APART
    np.testing.assert_array_equal(mm.paste(window, 9, 30, starts[:1]), mm.inbetween(window, 9, 30))


def test_motion_matching_needs_long_enough_segments(walk):
    mm = MotionLibrary([walk.positions[:20]])
    assert mm.inbetween(walk.positions[None, :71].astype(np.float64), 9, 30) is None
    assert mm.inbetween(walk.positions[None, :71].astype(np.float64), 9, 5).shape == (1, 5, 21, 3)


def test_mean_depth_reproduces_a_constant_pose(walk):
    pose = walk.positions[50].astype(np.float64)
    lifted = MeanDepth(np.repeat(pose[None], 10, 0)).lift(np.repeat(pose[None, None, :, 1:], 4, 1))
    want = pose - pose[0]
    assert np.allclose(lifted[0, 0], want)


@pytest.mark.parametrize("part", ["lower_body", "upper_body"])
def test_mean_pose_completes_a_constant_pose_anywhere(walk, part):
    pose = walk.positions[50].astype(np.float64)
    mp = MeanPose(np.repeat(pose[None], 8, 0))
    placed = turned(np.repeat(pose[None], 3, 0), 2.5)[None]
    assert np.allclose(mp.complete(placed, part), placed, atol=1e-9)
