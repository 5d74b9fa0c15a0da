"""Inference and training benchmarks: `python -m training.bench [--json OUT] [--checkpoint PATH]`.

Prints one table, a row per model (the shipped or given one, then a paper-size one), and the JSON
contract for the first model:

    {"hardware", "threads", "forward_ms": {"torch_cpu", "numpy", "cuda" (or null): {"1", "32"}},
     "parity_max_abs", "load_ms", "fill_gaps_240f_60bones_s", "train_samples_per_s": {"cpu", "cuda"}}

Without shipped weights the models are freshly built with random weights (timings don't depend on
the values). Torch uses the add-on's thread policy (half the cores, at most 4) unless --threads says
otherwise: OpenMP threads that compete for busy cores are many times slower than one thread.
CUDA columns (fp32 eager as the add-on runs it, CUDA-graph replay, bf16 autocast) appear only on a
GPU. Fill Gaps end to end is scripts/bench_fill_gaps.py (headless Blender), null when it can't run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from model import checkpoint
from model.generator import DEFAULT_WEIGHTS, Generator, TorchBackend
from model.network import CVAE, Discriminator, ModelConfig
from model.numpy_runtime import NumpyBackend
from model.representation import Stats, network_input, prepare
from model.skeleton import JOINTS
from training.configs import get_config
from training.dataset import DEFAULT_CACHE, MotionDataset
from training.masks import TASK_WEIGHTS, sample_mask
from training.run_state import export
from training.train import train_step
from training.windows import WindowSampler, batch_stream, compute_stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILL_GAPS = os.path.join(ROOT, "scripts", "bench_fill_gaps.py")
BATCHES = (1, 32)
PAPER = ModelConfig()


def random_checkpoint(path: str, model: ModelConfig, seed: int = 0) -> str:
    """An exported checkpoint built without data. FiLM, attention gates, output convs and the refining
    blocks' second convs are made non-zero (they start at zero in training) so every path of the
    network does something."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ModelConfig(**{**model.to_dict(), "spectral_norm": False})
    model.n_actions, model.n_styles = max(model.n_actions, 3), max(model.n_styles, 4)
    net = CVAE(model)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if ".film." in name:
                p.normal_(0, 0.1)
            elif name.endswith(".gate"):
                p.fill_(0.5)
            elif name.startswith("decoder.outs.") and name.endswith("weight"):
                p.normal_(0, 0.05)
            elif name.startswith("decoder.refine.") and ".conv2." in name and name.endswith("weight"):
                p.normal_(0, 0.1)
    shape = (len(JOINTS), 3)
    stats = Stats(rng.normal(0, 0.3, shape), rng.uniform(0.2, 1.0, shape), rng.normal(0, 0.3, shape),
                  rng.uniform(0.2, 1.0, shape), rng.uniform(0.02, 0.1, shape))
    meta = {"config": model.to_dict(), "joints": list(JOINTS), "fps": 30.0, "step": 0,
            "actions": [f"action{i}" for i in range(1, model.n_actions)],
            "styles": [f"style{i}" for i in range(1, model.n_styles)]}
    export([path], net, stats, meta)
    return path


def median_ms(fn, budget_s: float = 1.0, min_reps: int = 3, max_reps: int = 30) -> float:
    """Median wall time after one warm-up call, repeating within a time budget."""
    fn()
    times, start = [], time.perf_counter()
    while len(times) < min_reps or (len(times) < max_reps and time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def random_inputs(config: dict, batch: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Backend.run arguments of the right shapes (values don't change the timing)."""
    rng = np.random.default_rng(seed)
    t, c = config["window"], 3 * config["joints"]
    ids = np.zeros(batch, np.int64)
    return (rng.standard_normal((batch, 3 * c, t), np.float32), ids, ids,
            rng.standard_normal((batch, config["z"], t // 8), np.float32))


class Data:
    """Real windows from the dataset cache when it exists (loaded once), else random ones."""

    def __init__(self, path: str = DEFAULT_CACHE):
        self.ds = MotionDataset.load(path) if os.path.exists(os.path.join(path, "motion.npz")) else None
        self.source = "dataset cache" if self.ds else "random arrays (no dataset cache)"

    def world(self, batch: int, T: int = 128) -> np.ndarray:
        if self.ds is None:
            return np.random.default_rng(0).normal(0, 0.5, (batch, T, len(JOINTS), 3)).astype(np.float32)
        return WindowSampler(self.ds, "train", T, seed=0).windows(batch)[0]


def parity_max_abs(tensors: dict[str, np.ndarray], config: dict, world: np.ndarray, seed: int = 0) -> float:
    """Largest |torch - numpy| of the network output over one random mask batch per task, with
    random labels and noise."""
    torch_backend, numpy_backend = TorchBackend(tensors, config, "cpu"), NumpyBackend(tensors, config)
    stats = Stats.from_arrays(tensors, config)
    rng, b, T = np.random.default_rng(seed), len(world), config["window"]
    worst = 0.0
    for task in TASK_WEIGHTS:
        win = prepare(world, np.stack([sample_mask(task, T, rng) for _ in range(b)]), stats)
        args = (network_input(win.inputs, win.mask, win.prior, stats), rng.integers(0, config["n_actions"], b),
                rng.integers(0, config["n_styles"], b), rng.standard_normal((b, config["z"], T // 8)))
        worst = max(worst, float(np.abs(torch_backend.run(*args) - numpy_backend.run(*args)).max()))
    return worst


def cuda_rows(tensors: dict[str, np.ndarray], config: dict) -> dict:
    """On a GPU: ms per forward (host arrays in and out) for fp32 eager (the add-on's path), CUDA-graph
    replay of it, and bf16 autocast, plus the bf16 and fp32 deviations from the CPU result."""
    backend = TorchBackend(tensors, config, "cuda")
    net, rows = backend.net, {"cuda fp32": {}, "cuda graph": {}, "cuda bf16": {}}
    cpu = TorchBackend(tensors, config, "cpu")
    for b in BATCHES:
        args = random_inputs(config, b)
        rows["cuda fp32"][b] = median_ms(lambda: backend.run(*args))
        reference = cpu.run(*args)
        rows.setdefault("cuda fp32 max abs vs cpu", {})[b] = float(np.abs(backend.run(*args) - reference).max())

        def bf16():
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
                return net.sample(*(torch.from_numpy(a).cuda() for a in args)).float().cpu().numpy()
        rows["cuda bf16"][b] = median_ms(bf16)
        rows.setdefault("cuda bf16 max abs vs cpu", {})[b] = float(np.abs(bf16() - reference).max())
        rows["cuda graph"][b] = median_ms(_graph_replay(net, args))
    return rows


def _graph_replay(net: CVAE, args: tuple[np.ndarray, ...]):
    """Capture net.sample on static device buffers once; each call copies inputs in and replays."""
    static = [torch.from_numpy(a).cuda() for a in args]
    graph, stream = torch.cuda.CUDAGraph(), torch.cuda.Stream()
    with torch.inference_mode():
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm-up off the capture: cuDNN algorithm choice, allocator pools
                net.sample(*static)
        torch.cuda.current_stream().wait_stream(stream)
        with torch.cuda.graph(graph):
            out = net.sample(*static)

    def replay() -> np.ndarray:
        with torch.inference_mode():
            for buf, a in zip(static, args):
                buf.copy_(torch.from_numpy(a), non_blocking=True)
            graph.replay()
            return out.cpu().numpy()
    return replay


def model_rows(path: str, data: Data, device_note: list[str]) -> dict:
    """Everything measured per model: forward latencies, parity, load time."""
    tensors, meta = checkpoint.load(path)
    config = meta["config"]
    rows: dict = {"torch cpu": {}, "numpy": {}}
    backends = {"torch cpu": TorchBackend(tensors, config, "cpu"), "numpy": NumpyBackend(tensors, config)}
    for b in BATCHES:
        args = random_inputs(config, b)
        for name, backend in backends.items():
            rows[name][b] = median_ms(lambda: backend.run(*args))
    rows["parity"] = parity_max_abs(tensors, config, data.world(8))
    rows["load torch"] = median_ms(lambda: Generator.load(path, backend="torch"))
    rows["load numpy"] = median_ms(lambda: Generator.load(path, backend="numpy"))
    if torch.cuda.is_available():
        try:
            rows.update(cuda_rows(tensors, config))
        except Exception as exc:  # a GPU quirk must not lose the CPU numbers
            device_note.append(f"CUDA rows failed: {type(exc).__name__}: {exc}")
    return rows


def fill_gaps_s(weights: str | None, notes: list[str]) -> float | None:
    """scripts/bench_fill_gaps.py (headless Blender, installed extension) in a subprocess."""
    if not os.path.exists(FILL_GAPS):
        notes.append("fill gaps: scripts/bench_fill_gaps.py does not exist yet; reported null")
        return None
    cmd = [sys.executable, FILL_GAPS, "--runs", "5"] + (["--weights", weights] if weights else [])
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    except subprocess.TimeoutExpired:
        notes.append("fill gaps: scripts/bench_fill_gaps.py timed out after 900 s; reported null")
        return None
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    if run.returncode != 0 or not lines:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        notes.append(f"fill gaps: scripts/bench_fill_gaps.py failed (exit {run.returncode}): {last}; reported null")
        return None
    return float(json.loads(lines[-1])["median_s"])


def train_samples_per_s(device: str, data: Data, steps: int = 3) -> float:
    """One discriminator + one generator step of the `cpu` config's model (training's own
    `train_step`); batches from training's batch stream (timed, as in training) or random tensors
    without a dataset. On CUDA the `gpu` config's batch, bf16 autocast and background batch workers."""
    cfg, gpu = get_config("cpu"), get_config("gpu")
    batch, bf16, workers = (cfg.batch, False, 0) if device == "cpu" else (gpu.batch, True, gpu.workers)
    model = cfg.model
    if data.ds is not None:
        model = ModelConfig(**{**model.to_dict(), "n_actions": len(data.ds.actions) + 1,
                               "n_styles": len(data.ds.styles) + 1})
        stats = compute_stats(WindowSampler(data.ds, "train", model.window, seed=0), windows=256, fill=model.prior_fill)
        batches = batch_stream(data.ds, ["train"], model.window, stats, batch, [0], 0.2, workers)
    to = lambda a: torch.from_numpy(a).to(device)

    def next_batch():
        if data.ds is not None:
            b = next(batches)
            return (to(b.observed_in), to(b.unobserved_in), to(b.target), to(b.mask), to(b.scale), to(b.prior),
                    to(b.action), to(b.style))
        c, t = model.channels, model.window
        ids = torch.zeros(batch, dtype=torch.long, device=device)
        return (torch.randn(batch, 3 * c, t, device=device), torch.randn(batch, 3 * c, t, device=device),
                torch.randn(batch, c, t, device=device), (torch.rand(batch, c, t, device=device) < 0.5).float(),
                torch.full((batch, c, t), 0.05, device=device), torch.zeros(batch, c, t, device=device), ids, ids)

    net, disc = CVAE(model).to(device), Discriminator(model).to(device)
    opt_g = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=cfg.betas)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16)
    step = lambda: train_step(net, disc, opt_g, opt_d, next_batch(), cfg, True, autocast)

    step()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps * batch / (time.perf_counter() - start)


def hardware() -> str:
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f"; {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "; no CUDA device"
    return f"{name}, {os.cpu_count()} logical cores{gpu}"


def print_table(rows: dict[str, dict], extra: dict[str, float | None], head: str, notes: list[str]) -> None:
    """One table, a row per model: forward ms (median) per backend and batch, parity, load time;
    the end-to-end and training columns belong to the first model. Absent (CUDA) columns are left out."""
    cols: list[tuple[str, object, str]] = []
    for key in ("torch cpu", "numpy", "cuda fp32", "cuda graph", "cuda bf16"):
        cols += [(f"{key} B={b}", (key, b), ".2f") for b in BATCHES]
    cols += [("cuda fp32 err", ("cuda fp32 max abs vs cpu", 32), ".0e"),
             ("cuda bf16 err", ("cuda bf16 max abs vs cpu", 32), ".0e"),
             ("parity", ("parity", None), ".1e"), ("load ms", ("load torch", None), ".1f"),
             ("load ms numpy", ("load numpy", None), ".1f")]
    get = lambda row, key, b: row.get(key) if b is None else row.get(key, {}).get(b)
    cols = [c for c in cols if any(get(r, *c[1]) is not None for r in rows.values())]
    table = [["model"] + [c[0] for c in cols] + [k for k, v in extra.items() if v is not None]]
    for i, (name, row) in enumerate(rows.items()):
        cells = [format(get(row, *key), spec) if get(row, *key) is not None else "-" for _, key, spec in cols]
        table.append([name] + cells + [format(v, ".3g") if i == 0 else "-" for v in extra.values() if v is not None])
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    print(head)
    for r in table:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    for note in notes:
        print(f"note: {note}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="also write the JSON results to this file")
    ap.add_argument("--checkpoint", help="model to measure (default: the shipped weights, else a fresh "
                                         "random model of the `cpu` config's size)")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: the add-on's policy)")
    args = ap.parse_args()
    threads = args.threads or max(1, min(4, (os.cpu_count() or 2) // 2))
    torch.set_num_threads(threads)
    notes: list[str] = []
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="motion_cvae_bench_") as tmp:
        path = args.checkpoint or (DEFAULT_WEIGHTS if os.path.exists(DEFAULT_WEIGHTS) else "")
        if not path:
            path = random_checkpoint(os.path.join(tmp, "cpu.safetensors"), get_config("cpu").model)
            notes.append("no shipped weights: the first model is a fresh `cpu`-config model with random weights")
        config = checkpoint.load(path)[1]["config"]
        source = "shipped" if path == DEFAULT_WEIGHTS else "random" if path.startswith(tmp) else "given"
        first = "{} {c1}/{c2}/{z}".format(source, **config)
        paper = "paper {c1}/{c2}/{z} random".format(**PAPER.to_dict())
        data = Data()
        notes.append(f"parity and training batches: {data.source}")
        columns = {first: model_rows(path, data, notes),
                   paper: model_rows(random_checkpoint(os.path.join(tmp, "paper.safetensors"), PAPER), data, notes)}
        fill = fill_gaps_s(None if path == DEFAULT_WEIGHTS else path, notes)
    train = {"cpu": train_samples_per_s("cpu", data), "cuda": train_samples_per_s("cuda", data) if cuda else None}
    main_rows = columns[first]
    per_batch = lambda key: {str(b): round(main_rows[key][b], 3) for b in BATCHES} if key in main_rows else None
    result = {
        "hardware": hardware(), "threads": threads,
        "forward_ms": {"torch_cpu": per_batch("torch cpu"), "numpy": per_batch("numpy"), "cuda": per_batch("cuda fp32")},
        "parity_max_abs": float(f"{main_rows['parity']:.3g}"), "load_ms": round(main_rows["load torch"], 2),
        "fill_gaps_240f_60bones_s": fill,
        "train_samples_per_s": {k: None if v is None else round(v, 2) for k, v in train.items()},
    }
    head = f"motion-cvae bench: {result['hardware']}; torch {torch.__version__}, {threads} thread(s)"
    print_table(columns, {"fill gaps s": fill, "train/s cpu": train["cpu"], "train/s cuda": train["cuda"]},
                head + "; forward in ms (median), train in samples/s (`cpu` config's model)", notes)
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
