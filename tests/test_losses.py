"""The loss terms measure what evaluation measures: global joint positions, in-between apart from extrapolation."""
import torch

from training.losses import between_keys, hidden_position_loss, position_error


def test_pelvis_trajectory_error_moves_every_joint():
    res_std = torch.full((63,), 0.01)
    res_std[:3] = 2.0                                   # trajectory channels: metres of travel
    diff = torch.zeros(1, 63, 4)
    diff[0, 2] = 0.05                                   # 0.05 normalised units of pelvis z = 10 cm
    err = position_error(diff, res_std).reshape(1, 21, 3, 4)
    assert torch.allclose(err[0, :, 2], torch.full((21, 4), 10.0))
    assert torch.all(err[0, :, :2] == 0)
    diff = torch.zeros(1, 63, 4)
    diff[0, 3 * 5] = 1.0                                # one joint's offset: only that joint moves
    err = position_error(diff, res_std).reshape(1, 21, 3, 4)
    assert err[0, 5, 0, 0] == 1.0 and err.abs().sum() == 4.0


def test_between_keys_separates_gaps_from_extrapolation():
    mask = torch.tensor([[[0, 1, 0, 0, 1, 0, 0.]]])
    assert between_keys(mask).tolist() == [[[0, 0, 1, 1, 0, 0, 0]]]


def test_each_part_of_a_window_is_averaged_apart():
    """A 1 cm error in a 2-frame gap weighs as much as a 1 cm error over 60 extrapolated frames / 0.5."""
    res_std = torch.full((63,), 0.01)
    mask = torch.zeros(1, 63, 64)
    mask[..., [0, 3]] = 1
    gap_only = torch.zeros(1, 63, 64)
    gap_only[0, 3:, 1:3] = 1.0                          # 1 cm on every non-pelvis joint in the gap
    tail_only = torch.zeros(1, 63, 64)
    tail_only[0, 3:, 4:] = 1.0
    zero = torch.zeros(1, 63, 64)
    gap = hidden_position_loss(gap_only, zero, mask, res_std)
    tail = hidden_position_loss(tail_only, zero, mask, res_std)
    assert torch.isclose(gap, torch.tensor(20 / 21)) and torch.isclose(tail, 0.5 * gap)
