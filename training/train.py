"""Train the two-branch CVAE: `python -m training.train --config cpu` (or tiny / gpu).

Every task is mixed through training/masks.py. One discriminator step, then one generator step,
Adam(lr 1e-4, betas (0, 0.99)). Checkpoints are safetensors + JSON (resumable with --resume), the log
is CSV with a loss plot beside it, and `--ship` exports the fp16, spectral-norm-folded generator to
model/weights/. Multi-process: `torchrun --nproc_per_node N -m training.train ...` (NCCL on GPUs,
gloo on CPU) trains with DistributedDataParallel; the shipped cpu weights came from two 1-thread
processes on a 2-core CPU (`torchrun --standalone --nproc_per_node 2 -m training.train --config cpu`).
"""
from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import json
import os
import time

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from model import checkpoint
from model.generator import DEFAULT_WEIGHTS, sample_window
from model.network import CVAE, Discriminator, ModelConfig
from model.representation import Stats, finish
from training.configs import TrainConfig, get_config, parse_overrides
from training.dataset import DEFAULT_CACHE, SOURCES, MotionDataset
from training.losses import discriminator_loss, generator_losses
from training.masks import frames_to_mask, inbetween_mask
from training.plots import plot_log
from training.run_state import export, load_module, load_optimizer, meta_for, save_training, trained_on, warm_start
from training.windows import WindowSampler, batch_stream, compute_stats


@torch.no_grad()
def validate(net: CVAE, sampler: WindowSampler, stats: Stats, cfg: TrainConfig, device: str) -> dict[str, float]:
    """On fixed held-out windows, the model's error against linear's on the hidden frames of two
    in-betweening masks: a 30-frame gap after 10 context frames, and single keys every 10 frames
    (the add-on's case); and, in the 30-frame gap, how far apart two prior draws land and the best of
    four draws' error against their mean one (the issue's min-of-10 over single, with fewer draws)."""
    rng_state = sampler.rng
    sampler.rng = np.random.default_rng(1234)
    world, _, _ = sampler.windows(cfg.val_windows)
    sampler.rng = rng_state
    zeros = np.zeros(len(world), np.int64)
    draws = np.random.default_rng(0).standard_normal((4, len(world), cfg.model.z, cfg.model.window // 8))

    def run(inputs, action, style, z):
        t = lambda a: torch.from_numpy(np.asarray(a)).to(device)
        return net.sample(t(inputs), t(action), t(style), t(z.astype(np.float32))).float().cpu().numpy()

    keys = np.zeros(cfg.model.window, bool)
    keys[:cfg.model.window - 7:10] = True
    result = {}
    net.eval()
    for name, frames in (("30", inbetween_mask(cfg.model.window, 10, 30, start=40)[:, 0, 0]), ("keys10", keys)):
        mask = np.broadcast_to(frames_to_mask(frames), world.shape)
        out, win = sample_window(run, world, mask, stats, (zeros, zeros), draws[0])
        linear = finish(win.prior, win, world, mask)
        t, observed = np.arange(len(frames)), np.flatnonzero(frames)
        hidden = ~frames & (t > observed[0]) & (t < observed[-1])  # in between, as the 30-frame gap
        per_window = lambda x, y: np.linalg.norm(x[:, hidden] - y[:, hidden], axis=-1).mean((1, 2)) * 1000
        model_error, linear_mm = per_window(out, world), float(per_window(linear, world).mean())
        result.update({f"val_inbetween{name}_mm": float(model_error.mean()), f"val_linear{name}_mm": linear_mm,
                       f"val_ratio{name}": float(model_error.mean()) / linear_mm})
        if name == "30":
            more = [sample_window(run, world, mask, stats, (zeros, zeros), z)[0] for z in draws[1:]]
            result["val_spread30_mm"] = float(per_window(out, more[0]).mean())
            errors = np.stack([model_error, *(per_window(x, world) for x in more)])
            result["val_best4_over_single30"] = float(errors.min(0).mean() / errors.mean())
    net.train()
    return result


def train(cfg: TrainConfig, data: str, out_dir: str, resume: bool, splits: list[str], ship: str | None,
          device: str = "auto", init: str | None = None) -> dict:
    distributed = "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    rank, world = 0, 1
    if distributed:
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if device == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    ds = MotionDataset.load(data)
    os.makedirs(out_dir, exist_ok=True)
    ckpt_path, log_path = os.path.join(out_dir, "last.safetensors"), os.path.join(out_dir, "log.csv")
    resuming = resume and os.path.exists(ckpt_path)
    arrays, meta = checkpoint.load(ckpt_path) if resuming else ({}, {})
    initial, init_meta = checkpoint.load(init) if init and not resuming else ({}, {})
    if init_meta and (init_meta["actions"], init_meta["styles"]) != (ds.actions, ds.styles):
        raise SystemExit(f"--init {init}: its action and style vocabularies differ from this dataset's")
    # a resumed run goes on with the network its checkpoint describes, whatever the named config says now,
    # but may switch on the travelling prior (`--set model.prior_travel=true`: the inputs change, not the network)
    if resuming and cfg.model.prior_travel:
        meta["config"] = {**meta["config"], "prior_travel": True}
    cfg.model = ModelConfig(**meta["config"]) if resuming else ModelConfig(
        **{**cfg.model.to_dict(), "n_actions": len(ds.actions) + 1, "n_styles": len(ds.styles) + 1})
    if init_meta and init_meta["config"]["prior_fill"] != cfg.model.prior_fill and rank == 0:
        # the fills agree wherever no key has an observed neighbour (single keys), so the weights'
        # statistics are kept: with the same output unit, those windows start exactly where they were
        print(f"--init {init}: it refined the {init_meta['config']['prior_fill']} fill; this run refines the "
              f"{cfg.model.prior_fill} one, with the weights' statistics")
    # validation on motion kept out of training; a dataset without a held-out part validates on its own
    val_sampler = WindowSampler(ds, "val_heldout" if ds.clips("val_heldout") else splits, cfg.model.window, seed=99)
    from_data = lambda: compute_stats(WindowSampler(ds, splits, cfg.model.window, seed=7), fill=cfg.model.prior_fill,
                                      travel=cfg.model.prior_travel)
    stats = (Stats.from_arrays(arrays, meta["config"]) if resuming else
             Stats.from_arrays(initial, cfg.model.to_dict()) if init_meta else from_data())
    if init_meta and cfg.rescale_output:
        # weights with one output unit per channel (up to 1.7 m for the pelvis path) get the table by
        # distance to the nearest key, the inputs' normalisation kept: beside a key, where errors are
        # millimetres, the network's relative error no longer costs centimetres
        stats = dataclasses.replace(stats, res_std=from_data().res_std)
    net, disc = CVAE(cfg.model).to(device), Discriminator(cfg.model).to(device)
    opt_g = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=cfg.betas)
    step, elapsed = (meta["step"], meta.get("elapsed_s", 0.0)) if resuming else (0, 0.0)
    if resuming:
        load_module(net, "generator", arrays)
        load_module(disc, "disc", arrays)
        load_optimizer(opt_g, "opt_g", arrays); load_optimizer(opt_d, "opt_d", arrays)
    elif init_meta:
        new = warm_start(net, initial)
        if rank == 0:
            print(f"--init {init} (step {init_meta.get('step')}); starting from their initialisation: "
                  f"{', '.join(new) if new else 'nothing'}")
    # where a run began: its own first step, or the weights it was started from (kept when resumed)
    origin = meta.get("init") if resuming else (
        {"path": os.path.basename(init), "sha256": init_meta["sha256"], "step": init_meta.get("step"),
         "init": init_meta.get("init")} if init_meta else None)
    # the exponential moving average of the generator's weights is what validation sees and export
    # ships (starting from the weights resumed, when the checkpoint predates it)
    ema = copy.deepcopy(net).requires_grad_(False) if rank == 0 else None
    if ema is not None and any(k.startswith("ema.") for k in arrays):
        load_module(ema, "ema", arrays)
    g_model = DDP(net) if distributed else net
    d_model = DDP(disc) if distributed else disc
    batches = batch_stream(ds, splits, cfg.model.window, stats, cfg.batch // world, [cfg.seed, rank, step],
                           cfg.label_dropout, cfg.workers, cfg.size_jitter, cfg.task_weights)
    to = lambda a: torch.from_numpy(a).to(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.bf16 and device.startswith("cuda"))
    fields = ["step", "time_s", "samples_per_s", "lr", "rec", "pos", "kl", "app", "gen", "motion", "adv", "cls", "d_adv", "d_cls",
              "val_inbetween30_mm", "val_linear30_mm", "val_ratio30", "val_inbetweenkeys10_mm",
              "val_linearkeys10_mm", "val_ratiokeys10", "val_spread30_mm", "val_best4_over_single30"]
    earlier = []  # a resumed run's log is rewritten under today's columns (older runs logged fewer)
    if rank == 0 and resuming and os.path.exists(log_path):
        with open(log_path) as f:
            earlier = list(csv.DictReader(f))
    log_file = open(log_path, "w", newline="") if rank == 0 else None
    writer = csv.DictWriter(log_file, fieldnames=fields, extrasaction="ignore") if log_file else None
    if writer:
        writer.writeheader()
        writer.writerows(earlier)
        log_file.flush()
    known = trained_on(ds, splits) if rank == 0 else {}
    start, last = time.time() - elapsed, {}
    bar = tqdm(total=cfg.max_steps, initial=step, disable=rank != 0, desc=f"train {cfg.name}")
    samples_timer = (time.time(), step)
    while step < cfg.max_steps and not out_of_time(start, cfg.max_minutes, distributed, device):
        b = next(batches)
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = learning_rate(cfg, step)
        tensors = tuple(to(a) for a in (b.observed_in, b.unobserved_in, b.target, b.mask, b.scale, b.prior, b.action,
                                        b.style))
        losses = train_step(g_model, d_model, opt_g, opt_d, tensors, cfg, step >= cfg.adv_start, autocast)
        if ema is not None:
            update_ema(ema, net, min(cfg.ema_decay, (1 + step) / (10 + step)))  # early on, less of the init
        step += 1
        bar.update(1)
        last = {k: float(v.detach()) for k, v in losses.items()}
        if rank == 0 and (step % cfg.val_every == 0 or step == cfg.max_steps):
            now = time.time()
            row = {"step": step, "time_s": round(now - start, 1),
                   "samples_per_s": round((step - samples_timer[1]) * cfg.batch / (now - samples_timer[0]), 1),
                   "lr": opt_g.param_groups[0]["lr"],
                   **{k: round(v, 5) for k, v in last.items() if k in fields}}
            row.update({k: round(v, 3) for k, v in validate(ema, val_sampler, stats, cfg, device).items()})
            writer.writerow(row); log_file.flush(); plot_log(log_path)
            bar.set_postfix(ratio30=row["val_ratio30"], keys10=row["val_ratiokeys10"], kl=round(last["kl"], 2))
            samples_timer = (time.time(), step)
        if rank == 0 and step % cfg.ckpt_every == 0:
            save_training(ckpt_path, net, ema, disc, opt_g, opt_d, stats,
                          meta_for(cfg, ds, step, {"elapsed_s": time.time() - start, "init": origin, **known}))
    bar.close()
    result = {"step": step, "minutes": (time.time() - start) / 60, **last}
    if rank == 0:
        meta = meta_for(cfg, ds, step, {"elapsed_s": time.time() - start, "splits": splits, "init": origin, **known})
        save_training(ckpt_path, net, ema, disc, opt_g, opt_d, stats, meta)
        licence = {"licence": f"CC BY-NC 4.0 (trained on {SOURCES})"}
        export([os.path.join(out_dir, "motion_cvae.safetensors")] + ([ship] if ship else []), ema, stats, meta,
               licence if ship else None)
        log_file.close()
        plot_log(log_path)
    if distributed:
        result["replicas_identical"] = replicas_identical(net, disc)
        dist.destroy_process_group()
    return result


def train_step(g_model, d_model, opt_g, opt_d, tensors: tuple, cfg: TrainConfig, adversarial: bool,
               autocast) -> dict[str, torch.Tensor]:
    """One discriminator step, then one generator step, on a batch's tensors (observed, unobserved,
    target, mask, scale, prior, action, style); returns every loss. The generator feels the discriminator
    only once `adversarial` (after cfg.adv_start steps): by then it is a fair judge, which matters for
    a warm start's fresh discriminator facing a trained generator. The benchmark times this function."""
    obs_in, unobs_in, target, mask, scale, prior, action, style = tensors
    prior_n = obs_in[:, -target.shape[1]:]
    judge = lambda res, a, s: d_model(torch.cat([res, prior_n], 1), a, s)
    with autocast:
        out = g_model(obs_in, unobs_in, action, style, cfg.gen_samples, cfg.prior_spread_from_kl,
                      cfg.rec_skip_dropout)
    with autocast:
        d_losses = discriminator_loss(judge, target, out["gen"][-1][:len(target)].float(), action, style)
    opt_d.zero_grad(set_to_none=True)
    d_losses["d_total"].backward()
    opt_d.step()
    with autocast:
        g_losses = generator_losses(out, target, mask, scale, prior, judge, action, style, cfg, adversarial)
    opt_g.zero_grad(set_to_none=True)
    g_losses["total"].backward()
    torch.nn.utils.clip_grad_norm_(g_model.parameters(), 10.0)
    opt_g.step()
    return {**g_losses, **d_losses}


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """cfg.lr, falling linearly over the last cfg.lr_anneal_steps steps to cfg.lr_final at max_steps.
    Worked out from the step alone, so a resumed run picks the schedule up where it stood; annealing
    at the end of a constant-rate run settles what the step-to-step noise keeps stirring."""
    begin = cfg.max_steps - cfg.lr_anneal_steps
    if cfg.lr_anneal_steps <= 0 or step < begin:
        return cfg.lr
    return cfg.lr + (cfg.lr_final - cfg.lr) * min(1.0, (step - begin) / cfg.lr_anneal_steps)


def out_of_time(start: float, max_minutes: float, distributed: bool, device: str) -> bool:
    """Whether the run's time is spent, agreed by every process: each deciding on its own clock, one
    left the loop a step before the other, whose next gradient all-reduce then waited forever (a
    two-process run hung at its time limit)."""
    spent = (time.time() - start) / 60 >= max_minutes
    if not distributed:
        return spent
    verdict = torch.tensor([float(spent)], device=device)
    dist.all_reduce(verdict, op=dist.ReduceOp.MAX)
    return bool(verdict.item())


def replicas_identical(*modules: torch.nn.Module) -> bool:
    """DDP keeps every rank's weights equal; check it bit for bit across ranks."""
    flat = torch.cat([p.detach().reshape(-1).float().cpu() for m in modules for p in m.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat.to(next(modules[0].parameters()).device).contiguous())
    return all(torch.equal(gathered[0].cpu(), g.cpu()) for g in gathered[1:])


@torch.no_grad()
def update_ema(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * net, parameters; buffers (spectral norm's power-iteration
    vectors) copied. Averaging out the step-to-step noise of a constant learning rate with beta1 = 0
    is what lets small corrections, such as those between dense keys, come out steady."""
    torch._foreach_lerp_(list(ema.parameters()), list(net.parameters()), 1.0 - decay)
    for e, b in zip(ema.buffers(), net.buffers()):
        e.copy_(b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="cpu")
    ap.add_argument("--data", default=DEFAULT_CACHE, help="dataset cache folder or motion.npz")
    ap.add_argument("--out", default=None, help="run folder (default runs/<config>)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init", metavar="WEIGHTS",
                    help="start a new run from exported weights (e.g. the shipped model/weights/motion_cvae.safetensors): "
                         "generator and statistics from them, a fresh discriminator and optimiser")
    ap.add_argument("--splits", default="train", help="comma-separated splits to train on (e.g. train,val_takes)")
    ap.add_argument("--max-minutes", type=float)
    ap.add_argument("--max-steps", type=int)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a training field, e.g. --set gen_samples=4 --set lambda_kl=0.1")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, help="torch CPU threads (1 avoids oversubscription on a busy machine)")
    ap.add_argument("--ship", nargs="?", const=DEFAULT_WEIGHTS, default=None,
                    help="also export the final weights here (default: the add-on's shipped weights)")
    args = ap.parse_args()
    flags = {"max_minutes": args.max_minutes, "max_steps": args.max_steps, "batch": args.batch, "threads": args.threads}
    overrides = parse_overrides(args.set)
    twice = [k for k, v in flags.items() if v is not None and k in overrides]
    if twice:
        raise SystemExit(f"{', '.join(twice)} given both as a flag and with --set; give it once "
                         f"(e.g. --{twice[0].replace('_', '-')} {flags[twice[0]]})")
    cfg = get_config(args.config, **{**flags, **overrides})  # get_config drops the flags left unset (None)
    result = train(cfg, args.data, args.out or os.path.join("runs", cfg.name), args.resume,
                   args.splits.split(","), args.ship, args.device, args.init)
    if int(os.environ.get("RANK", 0)) == 0:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
