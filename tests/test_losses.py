"""The loss terms measure what evaluation measures: global joint positions, in-between apart from extrapolation."""
import torch

from training.losses import between_keys, hidden_position_loss, position_error


def test_pelvis_trajectory_error_moves_every_joint():
    res_std = torch.full((1, 63, 1), 0.01)
    res_std[:, :3] = 2.0                                # trajectory channels: metres of travel
    diff = torch.zeros(1, 63, 4)
    diff[0, 2] = 0.05                                   # 0.05 normalised units of pelvis z = 10 cm
    err = position_error(diff, res_std).reshape(1, 21, 3, 4)
    assert torch.allclose(err[0, :, 2], torch.full((21, 4), 10.0))
    assert torch.all(err[0, :, :2] == 0)
    diff = torch.zeros(1, 63, 4)
    diff[0, 3 * 5] = 1.0                                # one joint's offset: only that joint moves
    err = position_error(diff, res_std).reshape(1, 21, 3, 4)
    assert err[0, 5, 0, 0] == 1.0 and err.abs().sum() == 4.0


def test_pose_term_sees_the_pose_where_the_trajectory_error_is_larger():
    """10 cm of pelvis error, and two joints 1 cm off in opposite directions: on global positions
    alone that costs exactly as much as a perfect pose (|10 + 1| + |10 - 1| = 2 x 10), so nothing
    pulls the pose right; the pelvis-relative term does, and leaves a pure trajectory error alone."""
    res_std = torch.full((1, 63, 1), 0.01)
    mask = torch.zeros(1, 63, 4)
    mask[..., 0] = 1
    right_pose, wrong_pose = torch.zeros(1, 63, 4), torch.zeros(1, 63, 4)
    right_pose[0, 2] = wrong_pose[0, 2] = 10.0            # pelvis z: 10 cm
    wrong_pose[0, 3 * 5 + 2], wrong_pose[0, 3 * 6 + 2] = 1.0, -1.0
    zero = torch.zeros(1, 63, 4)
    loss = lambda r, w: hidden_position_loss(r, zero, mask, res_std, pose_weight=w)
    assert torch.isclose(loss(wrong_pose, 0.0), loss(right_pose, 0.0))
    assert loss(wrong_pose, 1.0) > loss(right_pose, 1.0) + 0.01  # 2 cm over 63 x 3 entries, x 0.5 extrapolated
    assert torch.isclose(loss(right_pose, 1.0), loss(right_pose, 0.0))


def test_between_keys_separates_gaps_from_extrapolation():
    mask = torch.tensor([[[0, 1, 0, 0, 1, 0, 0.]]])
    assert between_keys(mask).tolist() == [[[0, 0, 1, 1, 0, 0, 0]]]


def test_each_part_of_a_window_is_averaged_apart():
    """A 1 cm error in a 2-frame gap weighs as much as a 1 cm error over 60 extrapolated frames / 0.5."""
    res_std = torch.full((1, 63, 1), 0.01)
    mask = torch.zeros(1, 63, 64)
    mask[..., [0, 3]] = 1
    gap_only = torch.zeros(1, 63, 64)
    gap_only[0, 3:, 1:3] = 1.0                          # 1 cm on every non-pelvis joint in the gap
    tail_only = torch.zeros(1, 63, 64)
    tail_only[0, 3:, 4:] = 1.0
    zero = torch.zeros(1, 63, 64)
    gap = hidden_position_loss(gap_only, zero, mask, res_std, pose_weight=0.0)
    tail = hidden_position_loss(tail_only, zero, mask, res_std, pose_weight=0.0)
    assert torch.isclose(gap, torch.tensor(20 / 21)) and torch.isclose(tail, 0.5 * gap)


def test_generative_branch_scores_each_windows_best_draw_and_skips_unconstrained_windows():
    """Two prior draws per window: `gen` is the mean over windows of the better draw; a window with
    nothing observed (label-only generation) adds nothing, whatever its draws are."""
    from types import SimpleNamespace
    from training.losses import generator_losses
    b, c, t = 3, 63, 16
    res_std = torch.full((1, c, 1), 0.01)
    target, mask = torch.zeros(b, c, t), torch.zeros(b, c, t)
    mask[:2, :, 0] = 1                                   # windows 0 and 1 keyed on frame 0; window 2 empty
    draws = torch.zeros(2 * b, c, t)                     # row k * b + i: window i's draw k
    draws[0, 3:] = 1.0                                   # window 0: draw 0 off by 1 cm, draw 1 exact
    draws[1, 3:], draws[b + 1, 3:] = 2.0, 3.0            # window 1: 2 cm and 3 cm -> 2 cm counts
    draws[2], draws[b + 2] = 50.0, 70.0                  # window 2: unconstrained, ignored
    pyr = lambda x: [x[..., ::8], x[..., ::4], x[..., ::2], x]
    out = {"rec": pyr(torch.zeros(b, c, t)), "gen": pyr(draws),
           "prior": (torch.zeros(b, 4, 2), torch.ones(b, 4, 2)), "posterior": (torch.zeros(b, 4, 2), torch.ones(b, 4, 2))}
    cfg = SimpleNamespace(lambda_rec=1, lambda_pos=1, lambda_kl=1, kl_prior_share=0.8, lambda_app=1, lambda_gen=1,
                          pose_weight=0.0, lambda_motion=0.0)
    still = torch.zeros(b, c, t)                         # the prior, metres
    gen = generator_losses(out, target, mask, res_std, still, None, None, None, cfg, adversarial=False)["gen"]
    per_cm = 20 / 21 * 0.5                               # 20 of 21 joints moved, extrapolated entries
    assert torch.isclose(gen, torch.tensor((0.0 + 2.0) / 2 * per_cm))


def test_motion_energy_asks_label_only_draws_to_move_as_far_as_real_motion_not_to_jitter():
    """A frozen body and one that jitters on the spot (as fast, frame to frame, as the real swing)
    both fall short of a real swinging limb; a draw swinging in another phase matches it; limbs
    swinging on the spot, or a pelvis shaking there, fall short of a walk; windows with anything
    observed are left to the position losses."""
    from types import SimpleNamespace
    from training.losses import generator_losses, motion_energy
    b, c, t = 2, 63, 128
    unit = torch.full((1, c, 1), 0.01)                   # 1 residual unit = 1 cm
    frames = torch.arange(t, dtype=torch.float32)
    swing = torch.zeros(b, c, t)
    swing[:, 3:] = 10 * torch.sin(2 * torch.pi * frames / 32)   # every joint swings 10 cm about the pelvis
    shifted = torch.zeros(b, c, t)
    shifted[:, 3:] = 10 * torch.sin(2 * torch.pi * frames / 32 + 1.0)
    jitter = torch.zeros(b, c, t)
    jitter[:, 3:] = 1.96 * (-1) ** frames                # the swing's mean frame-to-frame travel, no swing
    frozen = still = torch.zeros(b, c, t)
    assert motion_energy(swing, swing, unit, still).max() < 1e-3
    assert motion_energy(shifted, swing, unit, still).max() < 0.3
    assert (motion_energy(frozen, swing, unit, still) > 5).all()
    assert (motion_energy(jitter, swing, unit, still) > 3).all()
    walk = swing.clone()
    walk[:, 2] = 3.7 * frames                            # the same swing, the pelvis covering 1.1 m/s
    assert motion_energy(walk, walk, unit, still).max() < 1e-3
    assert (motion_energy(swing, walk, unit, still) > 1).all()  # swinging on the spot is no walk
    shaking = swing.clone()
    shaking[:, 2] = 1.85 * (-1) ** frames               # nor is a pelvis shaking as fast as it walks
    assert (motion_energy(shaking, walk, unit, still) > 2).all()
    mask = torch.zeros(b, c, t)
    mask[0, :, 0] = 1                                    # window 0 keyed: ignored; window 1 label-only
    pyr = lambda x: [x[..., ::8], x[..., ::4], x[..., ::2], x]
    draws = torch.cat([frozen, swing])                   # window 1: one frozen draw, one moving: both count
    out = {"rec": pyr(swing), "gen": pyr(draws),
           "prior": (torch.zeros(b, 4, 2), torch.ones(b, 4, 2)), "posterior": (torch.zeros(b, 4, 2), torch.ones(b, 4, 2))}
    cfg = SimpleNamespace(lambda_rec=1, lambda_pos=1, lambda_kl=1, kl_prior_share=0.8, lambda_app=1, lambda_gen=1,
                          pose_weight=0.0, lambda_motion=1.0, motion_extrapolated=False)
    motion = generator_losses(out, swing, mask, unit, still, None, None, None, cfg, adversarial=False)["motion"]
    torch.testing.assert_close(motion, motion_energy(frozen, swing, unit, still)[1] / 2)


def test_motion_energy_on_extrapolated_frames_asks_a_forecast_to_keep_moving_past_the_keys():
    """Past the last key a forecast that stops (what the position L1 alone taught) falls short of the
    real motion going on; one that goes on matches it; an in-between window (no frame past its keys)
    is not counted, and a partly keyed frame is no extrapolated one."""
    from types import SimpleNamespace
    from training.losses import extrapolated_frames, generator_losses, motion_energy
    b, c, t = 2, 63, 128
    unit, still = torch.full((1, c, 1), 0.01), torch.zeros(b, c, t)
    swing = torch.zeros(b, c, t)
    swing[:, 3:] = 10 * torch.sin(2 * torch.pi * torch.arange(t, dtype=torch.float32) / 32)
    stops = swing.clone()
    stops[..., 40:] = stops[..., 39:40]                 # keys on frames 0-29, then the body stops at 40
    mask = torch.zeros(b, c, t)
    mask[:, :, :30] = 1
    mask[1, :, 127] = 1                                  # window 1: a key at the end too (in-betweening)
    mask[1, :6, 60] = 1                                  # and a partly keyed frame between
    frames = extrapolated_frames(mask)
    assert frames[0, :30].sum() == 0 and frames[0, 30:].min() == 1
    assert frames[1].sum() == 0
    mask[1, :6, 100] = 1
    mask[1, :, 127] = 0
    assert frames.shape == (b, t) and extrapolated_frames(mask)[1, 100] == 0 and extrapolated_frames(mask)[1, 101] == 1
    mask[1, :, 127] = 1
    forecast = torch.ones(b, t)
    forecast[:, :30] = 0
    assert motion_energy(swing, swing, unit, still, forecast).max() < 1e-3
    assert (motion_energy(stops, swing, unit, still, forecast) > 5).all()
    assert (motion_energy(stops, swing, unit, still, forecast) > motion_energy(stops, swing, unit, still) + 0.5).all()
    pyr = lambda x: [x[..., ::8], x[..., ::4], x[..., ::2], x]
    out = {"rec": pyr(swing), "gen": pyr(stops),
           "prior": (torch.zeros(b, 4, 2), torch.ones(b, 4, 2)), "posterior": (torch.zeros(b, 4, 2), torch.ones(b, 4, 2))}
    cfg = SimpleNamespace(lambda_rec=1, lambda_pos=1, lambda_kl=1, kl_prior_share=0.8, lambda_app=1, lambda_gen=1,
                          pose_weight=0.0, lambda_motion=1.0, motion_extrapolated=True)
    motion = generator_losses(out, swing, mask, unit, still, None, None, None, cfg, adversarial=False)["motion"]
    torch.testing.assert_close(motion, motion_energy(stops, swing, unit, still, forecast)[0])
    cfg.motion_extrapolated = False                     # as before: label-only windows only, none here
    assert generator_losses(out, swing, mask, unit, still, None, None, None, cfg, adversarial=False)["motion"] == 0


def _walker(b: int, t: int, facing: float, travel: float, turn: float = 0.0) -> torch.Tensor:
    """(b, 63, t) a body in cm (prior zero, 1 unit = 1 cm) whose thighs face `facing` radians off +Z,
    turning by `turn` radians over the window, while its pelvis covers 3.7 cm a frame toward `travel`
    radians off +Z."""
    from model.representation import L_THIGH, R_THIGH
    frames = torch.arange(t, dtype=torch.float32)
    yaw = facing + turn * frames / t
    x = torch.zeros(b, 21, 3, t)
    way = torch.tensor(travel)
    x[:, 0, 0], x[:, 0, 2] = 3.7 * frames * torch.sin(way), 3.7 * frames * torch.cos(way)
    left = torch.stack([torch.cos(yaw), torch.zeros(t), -torch.sin(yaw)])      # +X when facing +Z
    x[:, L_THIGH], x[:, R_THIGH] = 9 * left, -9 * left
    return x.reshape(b, 63, t)


def test_motion_energy_asks_a_walk_to_go_the_way_its_body_faces_and_to_turn_as_far():
    """The same speeds walking backwards, sideways or without the real walk's turn fall short of it;
    the same walk facing another way in the world matches it (a generated walk may face anywhere)."""
    from training.losses import motion_energy
    b, t = 2, 128
    unit, still = torch.full((1, 63, 1), 0.01), torch.zeros(b, 63, t)
    walk = _walker(b, t, 0.0, 0.0)
    assert motion_energy(walk, walk, unit, still).max() < 1e-3
    assert motion_energy(_walker(b, t, 1.0, 1.0), walk, unit, still).max() < 0.05   # turned as a whole
    assert (motion_energy(_walker(b, t, 0.0, torch.pi), walk, unit, still) > 5).all()  # backwards
    assert (motion_energy(_walker(b, t, 0.0, torch.pi / 2), walk, unit, still) > 3).all()  # sideways
    turning = _walker(b, t, 0.0, 0.0, turn=1.0)
    assert (motion_energy(walk, turning, unit, still) > 1).all()


def test_balanced_kl_keeps_the_value_and_splits_the_gradient_between_prior_and_posterior():
    from training.losses import balanced_kl, kl_divergence
    g = torch.Generator().manual_seed(0)
    leaf = lambda: torch.randn(3, 4, 5, generator=g).requires_grad_()
    q_mu, q_s, p_mu, p_s = leaf(), leaf(), leaf(), leaf()
    gauss = lambda mu, s: (mu, torch.nn.functional.softplus(s) + 1e-4)
    full = kl_divergence(gauss(q_mu, q_s), gauss(p_mu, p_s))
    full_grads = torch.autograd.grad(full, [q_mu, p_mu])
    balanced = balanced_kl(gauss(q_mu, q_s), gauss(p_mu, p_s), prior_share=0.8)
    torch.testing.assert_close(balanced, full)
    q_grad, p_grad = torch.autograd.grad(balanced, [q_mu, p_mu])
    torch.testing.assert_close(q_grad, 0.2 * full_grads[0])
    torch.testing.assert_close(p_grad, 0.8 * full_grads[1])
    prior_only = balanced_kl(gauss(q_mu, q_s), gauss(p_mu, p_s), prior_share=1.0)
    assert not prior_only.grad_fn is None and torch.autograd.grad(prior_only, q_mu, allow_unused=True)[0] is None
