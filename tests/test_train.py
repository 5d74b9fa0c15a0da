"""The training command: runs, logs, plots, resumes from its safetensors checkpoint, and trains with
DistributedDataParallel over two gloo processes with the replicas kept identical."""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from model import checkpoint
from model.generator import Generator
from training.configs import get_config
from training.dataset import SPLITS, MotionDataset
from training.run_state import folded_generator, trained_on
from training.train import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_run_logs_plots_and_resumes(fixture_cache, tmp_path):
    out = str(tmp_path / "run")
    first = train(get_config("tiny", max_steps=8, max_minutes=20), fixture_cache, out, False, ["train"], None)
    assert first["step"] == 8
    for name in ("log.csv", "log.png", "last.safetensors", "last.json", "motion_cvae.safetensors"):
        assert os.path.exists(os.path.join(out, name)), name
    arrays, meta = checkpoint.load(os.path.join(out, "last.safetensors"))
    assert meta["step"] == 8 and meta["config"]["c1"] == 16 and meta["actions"]
    ema = {k[4:]: v for k, v in arrays.items() if k.startswith("ema.")}
    assert ema and ema.keys() == {k[10:] for k in arrays if k.startswith("generator.")}
    assert any(not np.array_equal(v, arrays["generator." + k]) for k, v in ema.items())  # an average, not a copy
    again = train(get_config("tiny", max_steps=12, max_minutes=20, lr_anneal_steps=4, lr_final=1e-5), fixture_cache,
                  out, True, ["train"], None)
    assert again["step"] == 12
    rows = list(csv.DictReader(open(os.path.join(out, "log.csv"))))
    assert [int(r["step"]) for r in rows] == [8, 12]
    # the resumed steps anneal the rate: step 11 (the last taken) is 3/4 of the way from 1e-4 to 1e-5
    assert [float(r["lr"]) for r in rows] == pytest.approx([1e-4, 3.25e-5])
    assert all(float(r["val_linear30_mm"]) > 0 and float(r["val_linearkeys10_mm"]) > 0 for r in rows)
    assert all(0 < float(r["val_spread30_mm"]) < 10 * float(r["val_inbetween30_mm"]) for r in rows)  # two draws differ
    assert all(0 < float(r["val_best4_over_single30"]) <= 1 for r in rows)  # the best of four, against their mean
    # the ratios are the model's error over linear's on the same hidden frames
    for r in rows:
        for name in ("30", "keys10"):
            ratio = float(r[f"val_inbetween{name}_mm"]) / float(r[f"val_linear{name}_mm"])
            assert abs(float(r[f"val_ratio{name}"]) - ratio) < 2e-3


def test_checkpoints_record_the_labels_and_skeletons_of_their_training_clips(fixture_cache, tiny_run):
    ds = MotionDataset.load(fixture_cache)
    split = ds.split.copy()
    split[ds.names.index("salsa/01.bvh")] = SPLITS.index("val_heldout")
    held_out = dataclasses.replace(ds, split=split)
    assert trained_on(held_out, ["train"])["trained_labels"] == {"actions": ["indian_dance", "walk"],
                                                                  "styles": ["normal"]}
    assert trained_on(held_out, ["train", "val_heldout"])["trained_labels"]["actions"] == ds.actions
    exported = checkpoint.load(os.path.join(tiny_run, "motion_cvae.safetensors"))[1]
    assert exported["actions"] == ["indian_dance", "salsa", "walk"]  # the ids: the whole vocabulary
    assert exported["trained_labels"] == {"actions": ds.actions, "styles": ds.styles}
    # the fixtures' two skeletons: Bandai's (both walks) and CMU's Daz-friendly one (both dances)
    sizes = [sum(bones) for bones in exported["skeletons"]]
    assert len(sizes) == 2 and 1.1 < sizes[1] / sizes[0] < 1.2


def test_folding_spectral_norm_keeps_the_function_and_leaves_the_network_usable():
    import torch
    from torch.nn.utils import parametrize
    from model.network import CVAE
    torch.manual_seed(0)
    cfg = get_config("tiny").model
    net = CVAE(cfg)
    x, ids = torch.randn(2, 3 * cfg.channels, cfg.window), torch.zeros(2, dtype=torch.long)
    noise = torch.randn(2, cfg.z, cfg.window // 8)
    for _ in range(3):  # training-mode forwards move the power iteration's vectors
        net.sample(x, ids, ids, noise)
    net.eval()
    with torch.no_grad():
        expected = net.sample(x, ids, ids, noise)
        plain = folded_generator(net)
        assert not any(parametrize.is_parametrized(m) for m in plain.modules())
        torch.testing.assert_close(plain.sample(x, ids, ids, noise), expected, rtol=1e-5, atol=1e-6)
    net.train()
    net.sample(x, ids, ids, noise)  # the source network still runs (a deep copy's unfolding broke it)


def test_size_jitter_scales_each_whole_window_within_its_bound(fixture_cache):
    from training.windows import WindowSampler
    ds = MotionDataset.load(fixture_cache)
    plain = WindowSampler(ds, ["train"], 128, seed=3).windows(16)[0]
    jittered = WindowSampler(ds, ["train"], 128, seed=3, size_jitter=0.1).windows(16)[0]
    leg = lambda w: np.linalg.norm(w[:, 0, 14] - w[:, 0, 13], axis=-1)
    size = leg(jittered) / leg(plain)
    np.testing.assert_allclose(jittered, size[:, None, None, None] * plain, atol=1e-5)  # body and travel alike
    assert np.all(np.abs(np.log(size)) <= 0.1 + 1e-6) and size.std() > 0.01


def test_a_mirrored_window_carries_the_mirrored_sided_label(fixture_cache):
    """Training mirrors half its windows; a left hand raised, mirrored, is a right hand raised, so the
    label must swap too (or it stops saying which side); labels without a side stay."""
    from dataclasses import replace
    from model.skeleton import INDEX
    from training.windows import WindowSampler, mirrored_labels
    assert mirrored_labels(["walk", "walk-turn-left", "walk-turn-right", "wave-left-hand"]).tolist() == [0, 2, 1, 3]
    ds = MotionDataset.load(fixture_cache)
    raised = ds.positions.copy()
    raised[:, INDEX["l_hand"], 1] += 1.0  # every clip: the left hand a metre up
    ds = replace(ds, positions=raised, actions=["raise-up-left-hand", "raise-up-right-hand"],
                 action=np.zeros_like(ds.action))
    world, action, style = WindowSampler(ds, ["train"], 128, seed=5).windows(64)
    right_up = world[:, 0, INDEX["r_hand"], 1] > world[:, 0, INDEX["l_hand"], 1]
    assert 0 < right_up.sum() < len(right_up)
    np.testing.assert_array_equal(action, np.where(right_up, 1, 0))


def test_output_scale_is_tabled_by_distance_to_the_nearest_key(fixture_cache):
    """Beside a key the residual over the prior is millimetres, far from one it is decimetres: the
    table says so, never decreases with distance, and batch targets are in those units."""
    from model.representation import MAX_DISTANCE
    from training.dataset import MotionDataset
    from training.windows import WindowSampler, compute_stats, make_batch
    sampler = WindowSampler(MotionDataset.load(fixture_cache), "train", 128, seed=0)
    stats = compute_stats(sampler, windows=128, fill="velocity")
    table = stats.res_std
    assert table.shape == (MAX_DISTANCE + 1, 21, 3) and (np.diff(table, axis=0) >= 0).all() and table.min() >= 2e-3
    assert np.median(table[30] / table[1]) > 5
    b = make_batch(sampler, 4, stats, np.random.default_rng(0))
    assert b.scale.shape == b.target.shape and (b.scale > 0).all()
    observed = b.mask > 0
    assert np.abs(b.target[observed]).max() < 1e-3  # the prior is the observation where observed


def test_generation_windows_face_forward_and_others_keep_their_heading(fixture_cache):
    """A window with nothing observed is turned, rigidly, to face +Z over the origin at its first
    frame; a window with anything observed is left as sampled (its observation decides its frame)."""
    from model.library import facing_frame
    from training.dataset import MotionDataset
    from training.masks import generate_mask, sample_mask
    from model.representation import facing_unobserved
    from training.windows import WindowSampler
    world, _, _ = WindowSampler(MotionDataset.load(fixture_cache), "train", 128, seed=3).windows(4)
    masks = np.stack([generate_mask(128), sample_mask("predict", 128, np.random.default_rng(0)),
                      generate_mask(128), sample_mask("lift", 128, np.random.default_rng(1))])
    out = facing_unobserved(world, masks)
    for i in (0, 2):
        frame = facing_frame(out[i, 0])
        assert abs(np.sin(frame.yaw)) < 1e-5 and np.cos(frame.yaw) > 0 and np.abs(frame.origin).max() < 1e-5
        assert abs(np.sin(facing_frame(world[i, 0]).yaw)) > 1e-3  # the sampler had turned it
        pairwise = lambda w: np.linalg.norm(w[:, :, None] - w[:, None], axis=-1)
        np.testing.assert_allclose(pairwise(out[i]), pairwise(world[i]), atol=1e-5)
        np.testing.assert_allclose(out[i, ..., 1], world[i, ..., 1], atol=1e-6)
    np.testing.assert_array_equal(out[[1, 3]], world[[1, 3]])


def test_ddp_two_gloo_processes_keep_replicas_identical(fixture_cache, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           "-m", "training.train", "--config", "tiny", "--max-steps", "6", "--threads", "1",
           "--data", fixture_cache, "--out", str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["step"] == 6 and result["replicas_identical"] is True


def _time_limit_verdict(rank: int, port: int, verdicts) -> None:
    import time

    import torch.distributed as dist
    from training.train import out_of_time
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    started = time.time() - (600 if rank == 0 else 0)  # rank 0's clock says 10 minutes, rank 1's none
    verdicts[rank] = out_of_time(started, 5.0, True, "cpu")
    dist.destroy_process_group()


def test_distributed_processes_agree_on_the_time_limit():
    """The stop is one verdict for every process: deciding on their own clocks, stage 8's two
    processes left the loop a step apart and the one still training waited forever."""
    import torch.multiprocessing as mp
    verdicts = mp.Manager().dict()
    mp.spawn(_time_limit_verdict, args=(29534, verdicts), nprocs=2, join=True)
    assert dict(verdicts) == {0: True, 1: True}


def test_moving_average_of_the_generator_follows_at_its_decay():
    import torch
    from model.network import CVAE, ModelConfig
    from training.train import update_ema
    net = CVAE(ModelConfig(c1=16, c2=32, z=8, heads=2, label_dim=4))
    ema = CVAE(ModelConfig(c1=16, c2=32, z=8, heads=2, label_dim=4))
    before = [p.detach().clone() for p in ema.parameters()]
    update_ema(ema, net, 0.9)
    for e, b, p in zip(ema.parameters(), before, net.parameters()):
        torch.testing.assert_close(e, 0.9 * b + 0.1 * p)
    assert all(torch.equal(e, b) for e, b in zip(ema.buffers(), net.buffers()))


def test_learning_rate_anneals_linearly_over_the_last_steps_only():
    from training.configs import parse_overrides
    from training.train import learning_rate
    cfg = get_config("tiny", max_steps=100, **parse_overrides(["lr=0.001", "lr_anneal_steps=40", "lr_final=0.0001"]))
    rates = [learning_rate(cfg, s) for s in (0, 59, 60, 80, 100, 120)]
    assert rates[:3] == [0.001] * 3
    assert rates[3] == pytest.approx(0.00055) and rates[4] == rates[5] == pytest.approx(0.0001)
    assert learning_rate(get_config("tiny"), 39) == get_config("tiny").lr  # off by default


def test_command_line_overrides_are_typed_and_checked():
    from training.configs import parse_overrides
    cfg = get_config("tiny", **parse_overrides(["gen_samples=3", "lambda_kl=0.05", "bf16=true"]))
    assert (cfg.gen_samples, cfg.lambda_kl, cfg.bf16) == (3, 0.05, True)
    assert isinstance(cfg.gen_samples, int) and isinstance(cfg.lambda_kl, float)
    for bad in ("gen_samples", "no_such_field=1", "gen_samples=two", "model=1", "model.prior_fill=cubic",
                "model.no_such_field=1", "model.c1=wide"):
        with pytest.raises(SystemExit, match="--set"):
            parse_overrides([bad])
    linear = get_config("tiny", **parse_overrides(["model.prior_fill=linear", "model.c1=24", "lambda_kl=0.5"]))
    assert (linear.model.prior_fill, linear.model.c1, linear.lambda_kl) == ("linear", 24, 0.5)
    assert get_config("tiny").model.prior_fill == "velocity"  # the named config is left as it was


def test_a_field_given_as_a_flag_and_with_set_is_refused(monkeypatch):
    from training.train import main
    monkeypatch.setattr("sys.argv", ["train", "--config", "tiny", "--max-steps", "5", "--set", "max_steps=7"])
    with pytest.raises(SystemExit, match="max_steps given both as a flag and with --set"):
        main()


def test_task_mixture_is_set_from_the_command_line_and_reaches_the_batches(fixture_cache):
    """`--set task.lift=...` reweights one task; the batches then draw tasks by those weights."""
    from training.configs import parse_overrides
    from training.dataset import MotionDataset
    from training.masks import TASK_WEIGHTS
    from training.windows import WindowSampler, batch_stream, compute_stats
    only_lift = parse_overrides([f"task.{t}=0" for t in TASK_WEIGHTS if t != "lift"])
    cfg = get_config("tiny", **only_lift)
    assert cfg.task_weights["lift"] == TASK_WEIGHTS["lift"] and get_config("tiny").task_weights == TASK_WEIGHTS
    ds = MotionDataset.load(fixture_cache)
    stats = compute_stats(WindowSampler(ds, "train", 128, seed=0), windows=64)
    stream = batch_stream(ds, ["train"], 128, stats, 16, [0], 0.2, 0, 0.0, cfg.task_weights)
    assert set(next(stream).tasks) == {"lift"}
    for bad in ("task.fly=1", "task.lift=x", "task.lift=-1"):
        with pytest.raises(SystemExit, match="--set"):
            parse_overrides([bad])
    with pytest.raises(SystemExit, match="positive weight"):
        parse_overrides([f"task.{t}=0" for t in TASK_WEIGHTS])


def test_background_workers_build_distinct_reproducible_batches(fixture_cache, tmp_path):
    """A GPU's batches come from worker processes: each worker its own streams (no two alike), the
    same seed the same batches, and a run trains on them."""
    from training.dataset import MotionDataset
    from training.windows import WindowSampler, batch_stream, compute_stats
    ds = MotionDataset.load(fixture_cache)
    stats = compute_stats(WindowSampler(ds, "train", 128, seed=0), windows=64)

    def take(seed, workers, n=4):
        stream = batch_stream(ds, ["train"], 128, stats, 4, seed, 0.2, workers)
        return [next(stream).target for _ in range(n)]

    first, again = take([0, 0, 0], 2), take([0, 0, 0], 2)  # workers take turns: the order is fixed
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], first[1])  # two workers, two streams
    assert not np.array_equal(take([0, 0, 0], 0, 1)[0], take([0, 0, 5], 0, 1)[0])  # resumed at another step
    result = train(get_config("tiny", max_steps=4, workers=2), fixture_cache, str(tmp_path / "w"), False, ["train"], None)
    assert result["step"] == 4 and np.isfinite(result["total"])


def test_resume_goes_on_with_the_checkpoints_network_and_an_older_log(fixture_cache, tmp_path):
    """Weights trained under an older config (here without the label-modulated prior) resume under
    today's named config with their own network, and the older log's rows are kept."""
    from dataclasses import replace
    out = str(tmp_path / "old")
    cfg = get_config("tiny", max_steps=4)
    cfg.model = replace(cfg.model, prior_labels=False)
    train(cfg, fixture_cache, out, False, ["train"], None)
    log = os.path.join(out, "log.csv")
    rows = list(csv.DictReader(open(log)))
    with open(log, "w", newline="") as f:  # as an older version logged it: fewer columns
        w = csv.DictWriter(f, fieldnames=["step", "time_s", "val_ratio30"], extrasaction="ignore")
        w.writeheader(); w.writerows(rows)
    result = train(get_config("tiny", max_steps=6), fixture_cache, out, True, ["train"], None)
    assert result["step"] == 6
    assert checkpoint.load(os.path.join(out, "last.safetensors"))[1]["config"]["prior_labels"] is False
    resumed = list(csv.DictReader(open(log)))
    assert [int(r["step"]) for r in resumed] == [4, 6] and resumed[0]["val_ratio30"] == rows[0]["val_ratio30"]
    assert resumed[0]["val_spread30_mm"] == "" and float(resumed[1]["val_spread30_mm"]) > 0
    # the travelling prior changes the inputs, not the network: a resumed run may switch it on, and keeps it
    travel = get_config("tiny", max_steps=8)
    travel.model = replace(travel.model, prior_travel=True)
    train(travel, fixture_cache, out, True, ["train"], None)
    train(get_config("tiny", max_steps=9), fixture_cache, out, True, ["train"], None)
    config = checkpoint.load(os.path.join(out, "last.safetensors"))[1]["config"]
    assert config["prior_travel"] is True and config["prior_labels"] is False
    assert Generator.load(os.path.join(out, "motion_cvae.safetensors"), device="cpu").stats.travel


def test_init_starts_a_run_from_exported_weights(fixture_cache, tmp_path):
    """Exported weights (fp16, spectral norm folded; a lineage's training state stays on its machine)
    warm-start a network that computes what they compute, one with a label-modulated prior added too;
    a run started from them trains on their statistics, records where it began, and keeps that when
    resumed; weights of another size are refused with the reason."""
    from dataclasses import replace
    import torch
    from model.generator import Generator
    from model.network import CVAE, ModelConfig
    from training.run_state import warm_start
    cfg = get_config("tiny", max_steps=10)
    cfg.model = replace(cfg.model, prior_labels=False)
    train(cfg, fixture_cache, str(tmp_path / "first"), False, ["train"], None)
    exported = str(tmp_path / "first" / "motion_cvae.safetensors")
    tensors, meta = checkpoint.load(exported)
    model_cfg = ModelConfig(**{**meta["config"], "prior_labels": True})
    net, fresh = CVAE(model_cfg).eval(), CVAE(model_cfg).eval()
    missing = warm_start(net, tensors)
    assert missing and all(k.startswith("prior.blocks.") and ".film." in k for k in missing)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3 * model_cfg.channels, 128)).astype(np.float32)
    a, s = rng.integers(0, model_cfg.n_actions, 4), rng.integers(0, model_cfg.n_styles, 4)
    z = rng.standard_normal((4, model_cfg.z, 16)).astype(np.float32)
    want = Generator.load(exported, device="cpu", backend="torch").backend.run(x, a, s, z)
    with torch.no_grad():
        got, other = (m.sample(*(torch.from_numpy(v) for v in (x, a, s, z))).numpy() for m in (net, fresh))
    assert np.abs(got - want).mean() < 0.1 * np.abs(other - want).mean()

    out = str(tmp_path / "second")
    train(get_config("tiny", max_steps=4), fixture_cache, out, False, ["train"], None, init=exported)
    arrays, run_meta = checkpoint.load(os.path.join(out, "last.safetensors"))
    assert run_meta["init"]["sha256"] == meta["sha256"] and run_meta["init"]["step"] == 10
    assert run_meta["config"]["prior_labels"] is True
    for key in (k for k in tensors if k.startswith("stats.")):
        np.testing.assert_array_equal(arrays[key], tensors[key])
    train(get_config("tiny", max_steps=6), fixture_cache, out, True, ["train"], None, init=exported)
    assert checkpoint.load(os.path.join(out, "last.safetensors"))[1]["init"] == run_meta["init"]
    # another fill from the same weights: their statistics (the output's unit) kept, the new fill named
    refill = str(tmp_path / "refill")
    linear = get_config("tiny", max_steps=2)
    linear.model = replace(linear.model, prior_fill="linear")
    train(linear, fixture_cache, refill, False, ["train"], None, init=exported)
    arrays, run_meta = checkpoint.load(os.path.join(refill, "last.safetensors"))
    assert run_meta["config"]["prior_fill"] == "linear" and meta["config"]["prior_fill"] == "velocity"
    for key in (k for k in tensors if k.startswith("stats.")):
        np.testing.assert_array_equal(arrays[key], tensors[key])
    # weights with one output unit per channel (the shipped lineage's) get the key-distance table,
    # their inputs' normalisation kept, and refining blocks added (they start as the identity)
    from model.representation import MAX_DISTANCE
    old = str(tmp_path / "old.safetensors")
    checkpoint.save(old, {**tensors, "stats.res_std": tensors["stats.res_std"][-1]}, meta)
    rescaled = get_config("tiny", max_steps=2, rescale_output=True)
    rescaled.model = replace(rescaled.model, refine=2)
    train(rescaled, fixture_cache, str(tmp_path / "rescaled"), False, ["train"], None, init=old)
    arrays, run_meta = checkpoint.load(str(tmp_path / "rescaled" / "last.safetensors"))
    assert arrays["stats.res_std"].shape == (MAX_DISTANCE + 1, 21, 3) and run_meta["config"]["refine"] == 2
    for key in ("stats.canon_mean", "stats.canon_std", "stats.feat_mean", "stats.feat_std"):
        np.testing.assert_array_equal(arrays[key], tensors[key])
    wider = get_config("tiny", max_steps=2)
    wider.model = replace(wider.model, c1=24)
    with pytest.raises(SystemExit, match="use the config the weights were trained with"):
        train(wider, fixture_cache, str(tmp_path / "third"), False, ["train"], None, init=exported)


def test_discriminator_learns_before_the_generator_feels_it(fixture_cache, tmp_path):
    """Before adv_start the generator's losses have no adversarial term, but the discriminator is
    already learning (a warm start's fresh one must be a fair judge by then)."""
    out = str(tmp_path / "warmup")
    train(get_config("tiny", max_steps=3, adv_start=100), fixture_cache, out, False, ["train"], None)
    row = list(csv.DictReader(open(os.path.join(out, "log.csv"))))[-1]
    assert row["adv"] == "" and row["cls"] == ""
    assert float(row["d_adv"]) > 0 and float(row["d_cls"]) > 0
