"""The model and its generator API: shapes for every task, observed entries kept, long and short
lengths, labels, seeds, the tiny config learning, checkpoints exact and tamper-evident."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

from model import checkpoint
from model.generator import Generator
from model.network import CVAE, Discriminator, ModelConfig
from model.skeleton import NUM_JOINTS
from training.bvh import load_bvh
from training.masks import TASK_WEIGHTS, sample_mask
from tests.conftest import FIXTURES


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return load_bvh(os.path.join(FIXTURES, "demo_walk.bvh")).positions


@pytest.mark.parametrize("task", list(TASK_WEIGHTS))
def test_every_task_shapes_and_observed_entries(tiny_generator, clip, task):
    window = clip[:128]
    mask = sample_mask(task, 128, np.random.default_rng(1))
    out = tiny_generator.sample(window, mask, n=3, seed=0)
    assert out.shape == (3, 128, NUM_JOINTS, 3) and out.dtype == np.float32
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[:, mask], np.broadcast_to(window[mask], (3, int(mask.sum()))))


@pytest.mark.parametrize("length", [1, 40, 128, 200, 301])
def test_lengths_by_cropping_and_overlapping_windows(tiny_generator, clip, length):
    observed = np.resize(clip, (length, NUM_JOINTS, 3))
    frames = np.zeros(length, bool)
    frames[::25] = True
    out = tiny_generator.sample(observed, frames, n=2, seed=3)
    assert out.shape == (2, length, NUM_JOINTS, 3)
    np.testing.assert_array_equal(out[:, frames], np.broadcast_to(observed[frames], (2,) + observed[frames].shape))


def test_extend_past_the_observed_frames(tiny_generator, clip):
    out = tiny_generator.sample(clip[:60], np.ones(60, bool), length=150, seed=0)
    assert out.shape == (1, 150, NUM_JOINTS, 3)
    np.testing.assert_array_equal(out[0, :60], clip[:60])


def test_generation_from_labels_starts_where_the_character_stands_facing_its_front(tiny_generator):
    """Nothing observed: the motion begins with the pelvis over the origin, the body facing +Z (the
    frame training puts such windows in), however long it runs, whatever the draw."""
    from model.skeleton import INDEX
    out = tiny_generator.sample(np.zeros((200, NUM_JOINTS, 3), np.float32), np.zeros(200, bool), n=3, seed=4)
    first = out[:, 0]
    np.testing.assert_allclose(first[:, INDEX["pelvis"], [0, 2]], 0.0, atol=1e-5)
    across = first[:, INDEX["l_thigh"]] - first[:, INDEX["r_thigh"]]
    assert (np.abs(across[:, 2]) < 1e-4).all() and (across[:, 0] > 0.05).all()
    assert np.abs(out[:, 1:, INDEX["pelvis"], [0, 2]]).max() > 1e-3  # the rest is the model's


def test_generation_from_labels_is_cut_from_inside_its_window(tiny_generator, clip, monkeypatch):
    """A window's ends move least when nothing is observed, so label-only motion skips LABEL_MARGIN
    frames at each end: a network whose window accelerates (pelvis at 1e-4 f^2 m along its path)
    shows the pelvis covering (f + 32)^2 - 32^2 in the result, not f^2, both through `sample` and
    `sample_windows`; anything observed and the window is used from its first frame."""
    from model import generator as G
    from model.skeleton import INDEX
    assert G.LABEL_MARGIN == 32
    f = np.arange(128.0)
    body = clip[0] - clip[0, INDEX["pelvis"]] * [1, 0, 1]
    moving = (body[None] + (1e-4 * f ** 2)[:, None, None] * [0.6, 0, 0.8]).astype(np.float32)
    monkeypatch.setattr(tiny_generator, "_window", lambda obs, msk, ids, noise: np.repeat(moving[None], len(obs), 0))
    covered = lambda out: np.linalg.norm(out[..., 1:4, INDEX["pelvis"], :] - out[..., :1, INDEX["pelvis"], :], axis=-1)
    nothing = np.zeros((64, NUM_JOINTS, 3), np.float32)
    for out in (tiny_generator.sample(nothing, np.zeros(64, bool))[0],
                tiny_generator.sample_windows(nothing[None], np.zeros(64, bool))[0, 0]):
        d = covered(out)
        np.testing.assert_allclose(d / d[0], np.array([65, 132, 201]) / 65, rtol=1e-3)
    keyed = np.zeros(64, bool)
    keyed[0] = True
    d = covered(tiny_generator.sample(moving[:64], keyed)[0])
    np.testing.assert_allclose(d / d[0], [1, 4, 9], rtol=0.02)  # the key nudges its neighbours (keep_key_velocities)


def test_a_key_with_an_observed_neighbour_is_left_at_its_velocity(tiny_generator, clip, monkeypatch):
    """Ten frames of context before a 30-frame gap: the fill leaves the last one at the velocity the
    context gives it, not the network's, and frames far from the keys are the network's own."""
    import model.generator as generator_module
    from training.masks import inbetween_mask
    mask = inbetween_mask(128, 10, 30)
    kept = tiny_generator.sample(clip[:128], mask, seed=2, plant_feet=False)[0]
    monkeypatch.setattr(generator_module, "keep_key_velocities", lambda values, observed, mask: values)
    network = tiny_generator.sample(clip[:128], mask, seed=2, plant_feet=False)[0]
    keyed = clip[9] - clip[8]
    assert np.abs(kept[10] - kept[9] - keyed).mean() < 0.25 * np.abs(network[10] - network[9] - keyed).mean()
    np.testing.assert_array_equal(kept[20:30], network[20:30])


def test_feet_are_planted_last_and_only_when_asked(tiny_generator, clip):
    """The generator's last step holds weight-bearing feet still (model.feet) on what the rest made;
    keys stay exact either way."""
    from model.feet import plant_feet
    keyed = np.zeros(128, bool)
    keyed[::20] = True
    free = tiny_generator.sample(clip[:128], keyed, n=2, seed=3, plant_feet=False)
    planted = tiny_generator.sample(clip[:128], keyed, n=2, seed=3)
    np.testing.assert_allclose(planted, plant_feet(free, np.broadcast_to(keyed[:, None, None], free.shape[1:])),
                               atol=1e-5)
    np.testing.assert_array_equal(planted[:, keyed], free[:, keyed])
    assert np.abs(planted - free).max() > 1e-3


def test_seed_is_reproducible_and_variations_differ(tiny_generator, clip):
    frames = np.zeros(128, bool)
    frames[[0, 127]] = True
    a = tiny_generator.sample(clip[:128], frames, n=2, seed=5)
    b = tiny_generator.sample(clip[:128], frames, n=2, seed=5)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a[0] - a[1]).max() > 0


def test_temperature_scales_how_far_variations_differ(tiny_generator, clip):
    """0 is the prior's mean (one motion whatever the seed); more noise, variations further apart;
    observed entries exact at any temperature; out-of-range values refused."""
    frames = np.zeros(190, bool)
    frames[[0, 60, 189]] = True  # two windows: the second is constrained by the first's output
    spread = {}
    for t in (0.0, 1.0, 3.0):
        s = tiny_generator.sample(clip[:190], frames, n=3, seed=7, temperature=t)
        np.testing.assert_array_equal(s[:, frames], np.broadcast_to(clip[:190][frames], s[:, frames].shape))
        spread[t] = np.abs(s[0] - s[1:]).mean()
    assert spread[0.0] == 0.0 and spread[3.0] > spread[1.0] > 0
    one = tiny_generator.sample(clip[:190], frames, seed=1, temperature=0.0)
    np.testing.assert_array_equal(one, tiny_generator.sample(clip[:190], frames, seed=2, temperature=0.0))
    windows = tiny_generator.sample_windows(clip[None, :64], frames[:64], n=2, seed=0, temperature=0.0)
    np.testing.assert_array_equal(windows[0, 0], windows[0, 1])
    for bad in (-0.5, float("nan"), 100.0):
        with pytest.raises(ValueError, match="temperature must be between 0 and"):
            tiny_generator.sample(clip[:128], frames[:128], temperature=bad)

def test_labels_and_bad_labels(tiny_generator, clip):
    action = tiny_generator.actions[0]
    out = tiny_generator.sample(clip[:128], np.zeros(128, bool), action=action, n=1, seed=0)
    assert out.shape == (1, 128, NUM_JOINTS, 3)
    with pytest.raises(ValueError, match="Unknown action 'moonwalk'"):
        tiny_generator.sample(clip[:128], np.zeros(128, bool), action="moonwalk")


def test_a_label_no_training_clip_had_is_refused(tiny_generator, clip):
    """A vocabulary label only held-out clips have (its embedding never trained) is not offered."""
    trained, untrained = tiny_generator.actions[0], tiny_generator.actions[1]
    meta = {**tiny_generator.meta, "trained_labels": {"actions": [trained], "styles": tiny_generator.styles}}
    gen = Generator(tiny_generator.backend, meta, tiny_generator.stats)
    assert (gen.trained_actions, gen.actions) == ([trained], tiny_generator.actions)
    with pytest.raises(ValueError, match=f"never learned the action '{untrained}'.*knows: {trained}$"):
        gen.sample(clip[:128], np.zeros(128, bool), action=untrained)
    # a trained label keeps its id (its position in the whole vocabulary)
    np.testing.assert_array_equal(gen.sample(clip[:128], np.zeros(128, bool), action=trained, seed=3),
                                  tiny_generator.sample(clip[:128], np.zeros(128, bool), action=trained, seed=3))


def test_a_body_of_another_size_is_sampled_at_the_training_size(tiny_generator, clip):
    """Sampling the same motion 6% larger gives the same motion 6% larger (it is put at the size
    of the nearest training skeleton first); weights that record no skeleton sample it as given."""
    assert len(tiny_generator.skeletons) == 2  # the fixtures' Bandai and CMU skeletons
    frames = np.zeros(128, bool)
    frames[::20] = True
    base = tiny_generator.sample(clip[:128], frames, n=2, seed=4)
    large = tiny_generator.sample(1.06 * clip[:128], frames, n=2, seed=4)
    np.testing.assert_allclose(large, 1.06 * base, atol=2e-5)
    assert np.array_equal(large[:, frames], np.broadcast_to(np.float32(1.06 * clip[:128][frames]), (2, 7, NUM_JOINTS, 3)))
    windows = tiny_generator.sample_windows(np.stack([clip[:128], 1.06 * clip[:128]]), frames, seed=[4, 4])
    np.testing.assert_allclose(windows[1], 1.06 * windows[0], atol=2e-5)
    as_given = Generator(tiny_generator.backend, {**tiny_generator.meta, "skeletons": []}, tiny_generator.stats)
    assert np.abs(as_given.sample(1.06 * clip[:128], frames, n=2, seed=4) - large).max() > 1e-4
    # a crop is sized by its own frames: keys past `length`, here of a larger body, change nothing
    longer = np.concatenate([clip[:128], 1.3 * np.resize(clip, (300, NUM_JOINTS, 3))])
    cropped = tiny_generator.sample(longer, np.resize(frames, len(longer)), n=2, seed=4, length=128)
    np.testing.assert_array_equal(cropped, base)


def test_a_body_of_other_proportions_is_sampled_at_the_training_ones(tiny_generator, clip):
    """A rig whose left forearm and hand sit twice as far from the elbow: the network sees the training
    skeleton's proportions, so every other joint comes out as for the training body, and generated
    frames keep the rig's own forearm."""
    from model.body_size import CHILDREN, bone_lengths
    frames = np.zeros(128, bool)
    frames[::20] = True
    body = clip[:128].copy()
    body[:, [7, 8]] = body[:, [6]] + 2.0 * (body[:, [7, 8]] - body[:, [6]])
    base, other = (tiny_generator.sample(x, frames, n=2, seed=4) for x in (clip[:128], body))
    rest = [j for j in range(NUM_JOINTS) if j not in (7, 8)]
    np.testing.assert_allclose(other[..., rest, :], base[..., rest, :], atol=2e-4)
    forearm = np.isin(CHILDREN, [7, 8])
    np.testing.assert_allclose(bone_lengths(other[:, ~frames])[:, forearm],
                               2.0 * bone_lengths(base[:, ~frames])[:, forearm], rtol=1e-3)
    assert np.array_equal(other[:, frames], np.broadcast_to(np.float32(body[frames]), (2, 7, NUM_JOINTS, 3)))


def test_bad_observed_input_is_rejected(tiny_generator, clip):
    bad = clip[:128].copy()
    bad[3, 2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tiny_generator.sample(bad, np.ones(128, bool))
    with pytest.raises(ValueError, match="observed must be"):
        tiny_generator.sample(clip[:128, :5], np.ones(128, bool))


def test_sample_windows_is_sample_per_window_in_one_batch(tiny_generator, clip):
    """Each window with its own mask, label and seed gets what `sample` gives it alone; observed
    entries are exact; one int seed draws distinct noise for every window and variation."""
    tasks = ["inbetween", "predict", "lift", "generate", "partial_body"]
    windows = np.stack([clip[10 * i:10 * i + 64] for i in range(len(tasks))])  # label-only: at most T - 2 margins
    masks = np.stack([sample_mask(t, 128, np.random.default_rng(i))[:64] for i, t in enumerate(tasks)])
    actions = [tiny_generator.actions[0], None, None, tiny_generator.actions[1], None]
    seeds = [3, 1, 4, 1, 5]
    out = tiny_generator.sample_windows(windows, masks, action=actions, n=2, seed=seeds)
    assert out.shape == (5, 2, 64, NUM_JOINTS, 3) and out.dtype == np.float32
    for w, m, a, s, o in zip(windows, masks, actions, seeds, out):
        np.testing.assert_array_equal(o[:, m], np.broadcast_to(w[m], (2, int(m.sum()))))
        np.testing.assert_allclose(o, tiny_generator.sample(w, m, action=a, n=2, seed=s), atol=1e-4)
    same = tiny_generator.sample_windows(np.repeat(windows[:1], 3, 0), masks[0], n=2, seed=0)
    hidden = ~masks[0]
    assert min(np.abs(a[hidden] - b[hidden]).max() for a, b in
               [(same[0, 0], same[0, 1]), (same[0, 0], same[1, 0]), (same[1, 1], same[2, 1])]) > 0
    with pytest.raises(ValueError, match="seeds for 5 windows"):
        tiny_generator.sample_windows(windows, masks, seed=[1, 2])
    with pytest.raises(ValueError, match="frames"):
        tiny_generator.sample_windows(np.resize(clip, (1, 200, NUM_JOINTS, 3)), np.ones(200, bool))


def test_forward_shapes_of_both_branches_and_the_discriminator():
    cfg = ModelConfig(c1=16, c2=32, z=8, heads=2, n_actions=4, n_styles=3, label_dim=4)
    net, disc = CVAE(cfg), Discriminator(cfg)
    x = torch.randn(2, 3 * cfg.channels, cfg.window)
    labels = torch.tensor([0, 2])
    out = net(x, x, labels, labels)
    assert [o.shape[-1] for o in out["rec"]] == [16, 32, 64, 128]
    assert out["gen"][-1].shape == (2, cfg.channels, cfg.window)
    assert out["prior"][0].shape == (2, cfg.z, cfg.window // 8)
    score, action_logits, style_logits = disc(torch.randn(2, 2 * cfg.channels, cfg.window), labels, labels)
    assert score.shape == (2, 1, 16) and action_logits.shape == (2, 4) and style_logits.shape == (2, 3)


@pytest.mark.parametrize("spread_from_kl", [True, False])
def test_prior_spread_learns_from_the_kl_only(spread_from_kl):
    """The generative branch's losses reach the prior's mean but, with spread_from_kl, not its sigma."""
    cfg = ModelConfig(c1=16, c2=32, z=8, heads=2, n_actions=4, n_styles=3, label_dim=4)
    torch.manual_seed(0)
    net = CVAE(cfg)
    x, labels = torch.randn(2, 3 * cfg.channels, cfg.window), torch.tensor([0, 2])
    out = net(x, x, labels, labels, 2, spread_from_kl)
    mu, sigma = out["prior"]
    mu.retain_grad(); sigma.retain_grad()
    out["gen"][-1].square().sum().backward()
    assert mu.grad.abs().sum() > 0
    assert (sigma.grad is None or not sigma.grad.any()) == spread_from_kl


def test_label_modulated_prior_depends_on_the_labels():
    """With nothing observed, the labels must reach z (generation from labels), not only the decoder."""
    cfg = ModelConfig(c1=16, c2=32, z=8, heads=2, n_actions=4, n_styles=3, label_dim=4, prior_labels=True)
    net = CVAE(cfg).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith("prior.") and ".film." in name:
                p.normal_(0, 0.5)
    x = torch.zeros(2, 3 * cfg.channels, cfg.window)
    feats = net.encoder(x)
    cond = net.labels(torch.tensor([1, 1]), torch.tensor([1, 2]))
    mu, sigma = net.prior(feats[-1], cond)
    assert not torch.allclose(mu[0], mu[1]) and not torch.allclose(sigma[0], sigma[1])


def test_skip_dropout_leaves_the_reconstructive_branch_z_and_the_deepest_feature_alone():
    """A dropped row's output ignores the observed input's finer features; the generative branch's
    rows (the draws from the prior, which inference uses) keep them."""
    cfg = ModelConfig(c1=16, c2=32, z=8, heads=2, n_actions=4, n_styles=3, label_dim=4)
    torch.manual_seed(0)
    net = CVAE(cfg).eval()
    with torch.no_grad():
        for p in net.decoder.outs.parameters():
            p.normal_(0, 0.1)  # the output convs start near zero: make differences visible
    x, labels = torch.randn(2, 3 * cfg.channels, cfg.window), torch.tensor([0, 2])
    z = torch.randn(2, cfg.z, cfg.window // 8)
    feats, cond = net.encoder(x), net.labels(labels, labels)
    finer_changed = [f + torch.randn_like(f) for f in feats[:3]] + [feats[3]]
    keep = torch.tensor([0.0, 1.0]).reshape(2, 1, 1)
    with torch.no_grad():
        a = net.decoder(z, feats, cond, keep)[-1]
        b = net.decoder(z, finer_changed, cond, keep)[-1]
    assert torch.allclose(a[0], b[0]) and not torch.allclose(a[1], b[1])

    def branches(dropout: float) -> dict:
        torch.manual_seed(1)
        with torch.no_grad():
            return net(x, x, labels, labels, 2, True, dropout)
    kept, dropped = branches(0.0), branches(1.0)
    assert torch.equal(kept["gen"][-1], dropped["gen"][-1])
    assert not torch.allclose(kept["rec"][-1], dropped["rec"][-1])


def test_refining_blocks_start_as_the_identity_and_learn():
    """Blocks added to trained weights (--init) leave the output unchanged, yet their second conv gets
    a gradient at once, and once it is non-zero the T-scale output changes."""
    cfg = ModelConfig(c1=16, c2=32, z=8, heads=2, n_actions=4, n_styles=3, label_dim=4)
    torch.manual_seed(0)
    plain = CVAE(cfg).eval()
    refined = CVAE(ModelConfig(**{**cfg.to_dict(), "refine": 3})).eval()
    missing, unexpected = refined.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("decoder.refine.") for k in missing)
    with torch.no_grad():
        for o in plain.decoder.outs:
            o.weight.normal_(0, 0.05)
    refined.decoder.outs.load_state_dict(plain.decoder.outs.state_dict())
    x, labels, noise = torch.randn(2, 3 * cfg.channels, cfg.window), torch.tensor([0, 2]), torch.randn(2, 8, 16)
    with torch.no_grad():
        base = plain.sample(x, labels, labels, noise)
        torch.testing.assert_close(refined.sample(x, labels, labels, noise), base, rtol=0, atol=1e-6)
    refined.sample(x, labels, labels, noise).square().sum().backward()
    assert all(b.conv2.weight.grad.abs().sum() > 0 for b in refined.decoder.refine)
    with torch.no_grad():
        refined.decoder.refine[2].conv2.weight.normal_(0, 0.1)
        assert (refined.sample(x, labels, labels, noise) - base).abs().max() > 1e-3


def test_tiny_config_overfits_one_batch(fixture_cache):
    """Reconstruction of one fixed batch must fall at least 10x: the model and losses can learn.
    (Two windows: measured 11x by step 300 and 15x by step 600 on this seed.)"""
    from model.representation import Stats
    from training.configs import get_config
    from training.dataset import MotionDataset
    from training.losses import generator_losses
    from training.windows import WindowSampler, compute_stats, make_batch
    torch.manual_seed(0)
    cfg = get_config("tiny")
    ds = MotionDataset.load(fixture_cache)
    cfg.model = ModelConfig(**{**cfg.model.to_dict(), "n_actions": len(ds.actions) + 1, "n_styles": len(ds.styles) + 1})
    sampler = WindowSampler(ds, "train", 128, seed=0)
    stats: Stats = compute_stats(sampler, 64)
    b = make_batch(sampler, 2, stats, np.random.default_rng(0))
    net = CVAE(cfg.model)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    t = {k: torch.from_numpy(getattr(b, k)) for k in ("observed_in", "unobserved_in", "target", "mask", "scale", "prior", "action", "style")}
    first = None
    for _ in range(600):
        out = net(t["observed_in"], t["unobserved_in"], t["action"], t["style"])
        losses = generator_losses(out, t["target"], t["mask"], t["scale"], t["prior"], None, t["action"], t["style"], cfg, adversarial=False)
        opt.zero_grad()
        losses["rec"].backward()
        opt.step()
        first = first if first is not None else float(losses["rec"].detach())
    assert float(losses["rec"].detach()) < first / 10


def test_checkpoint_round_trip_is_bit_exact(tiny_run, tmp_path):
    arrays, meta = checkpoint.load(os.path.join(tiny_run, "last.safetensors"))
    path = str(tmp_path / "copy.safetensors")
    checkpoint.save(path, arrays, meta)
    again, meta2 = checkpoint.load(path)
    assert arrays.keys() == again.keys()
    for k in arrays:
        assert arrays[k].dtype == again[k].dtype and arrays[k].tobytes() == again[k].tobytes(), k
    assert meta2["config"] == meta["config"] and meta2["actions"] == meta["actions"]


def test_exported_weights_rebuild_the_model_and_sample_identically(tiny_run, clip):
    path = os.path.join(tiny_run, "motion_cvae.safetensors")
    a = Generator.load(path).sample(clip[:128], np.zeros(128, bool), seed=1)
    b = Generator.load(path).sample(clip[:128], np.zeros(128, bool), seed=1)
    np.testing.assert_array_equal(a, b)


def _copy(tiny_run, tmp_path) -> str:
    path = str(tmp_path / "w.safetensors")
    shutil.copy(os.path.join(tiny_run, "motion_cvae.safetensors"), path)
    shutil.copy(os.path.join(tiny_run, "motion_cvae.json"), str(tmp_path / "w.json"))
    return path


def test_tampered_checkpoint_fails_clearly(tiny_run, tmp_path):
    path = _copy(tiny_run, tmp_path)
    with open(path, "r+b") as f:
        f.seek(-8, os.SEEK_END)
        f.write(b"\x00" * 8)
    with pytest.raises(checkpoint.CheckpointError, match="checksum mismatch"):
        Generator.load(path)


def test_wrong_version_checkpoint_fails_clearly(tiny_run, tmp_path):
    path = _copy(tiny_run, tmp_path)
    meta_path = str(tmp_path / "w.json")
    meta = json.load(open(meta_path))
    meta["format_version"] = 99
    json.dump(meta, open(meta_path, "w"))
    with pytest.raises(checkpoint.CheckpointError, match="format version 99 is not supported"):
        Generator.load(path)


def test_missing_checkpoint_fails_clearly(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="not found"):
        Generator.load(str(tmp_path / "nothing.safetensors"))
