"""A training run's state on disk: resumable checkpoints (generator, its moving average,
discriminator, both optimisers, statistics), starting a run from exported weights (`--init`), and the
shipped export (fp16, spectral norm folded). All safetensors + JSON through model/checkpoint.py."""
from __future__ import annotations

import numpy as np
import torch
from torch.nn.utils import parametrize

from model import checkpoint
from model.body_size import distinct_skeletons
from model.generator import generator_state
from model.network import CVAE, ModelConfig
from model.representation import Stats
from model.skeleton import JOINTS
from training.configs import TrainConfig
from training.dataset import MotionDataset


def meta_for(cfg: TrainConfig, ds: MotionDataset, step: int, extra: dict | None = None) -> dict:
    return {"config": cfg.model.to_dict(), "train": cfg.to_dict(), "joints": list(JOINTS), "fps": 30.0,
            "actions": ds.actions, "styles": ds.styles, "step": step, **(extra or {})}


def trained_on(ds: MotionDataset, splits: list[str]) -> dict:
    """What a checkpoint records of the clips in `splits`: their labels (checkpoint.trained_labels
    offers only those; the vocabularies, whose positions are the ids, hold every label of the
    dataset) and their skeletons (the sizes the generator puts a body at, model.body_size)."""
    clips = [i for s in splits for i in ds.clips(s)]
    seen = lambda ids, vocab: [vocab[i] for i in sorted(set(ids[clips].tolist())) if i >= 0]
    return {"trained_labels": {"actions": seen(ds.action, ds.actions), "styles": seen(ds.style, ds.styles)},
            "skeletons": distinct_skeletons([ds.clip(i) for i in clips])}


def state_arrays(prefix: str, module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {f"{prefix}.{k}": v.detach().cpu().float().numpy() for k, v in module.state_dict().items()}


def optimizer_arrays(prefix: str, opt: torch.optim.Optimizer) -> dict[str, np.ndarray]:
    out = {}
    for idx, state in opt.state_dict()["state"].items():
        for k, v in state.items():
            out[f"{prefix}.{idx}.{k}"] = v.detach().cpu().float().numpy().reshape(v.shape)
    return out


def load_module(module: torch.nn.Module, prefix: str, arrays: dict[str, np.ndarray]) -> None:
    """Restore a module saved by `state_arrays` (safetensors stores scalars as shape (1,))."""
    own = module.state_dict()
    module.load_state_dict({k: torch.from_numpy(arrays[f"{prefix}.{k}"].copy()).reshape(v.shape) for k, v in own.items()})


def load_optimizer(opt: torch.optim.Optimizer, prefix: str, arrays: dict[str, np.ndarray]) -> None:
    params = [p for group in opt.param_groups for p in group["params"]]
    state: dict[int, dict] = {}
    for key, v in arrays.items():
        if key.startswith(prefix + "."):
            idx, name = key[len(prefix) + 1:].split(".", 1)
            shape = () if name == "step" else params[int(idx)].shape  # safetensors stores scalars as (1,)
            state.setdefault(int(idx), {})[name] = torch.from_numpy(v.copy()).reshape(shape)
    sd = opt.state_dict()
    sd["state"] = state
    opt.load_state_dict(sd)


def folded_generator(net: CVAE) -> CVAE:
    """A plain copy with spectral normalisation folded into its weights (what inference runs). Built
    afresh: deep-copying `net` and removing the copy's parametrisations deletes the `weight` property
    from the parametrised class the two share, which breaks `net` itself."""
    plain = CVAE(ModelConfig(**{**net.cfg.to_dict(), "spectral_norm": False})).eval()
    was_training = net.training
    net.eval()  # read the normalised weights without a power-iteration step
    with torch.no_grad():
        state = {key: getattr(net.get_submodule(owner), leaf).detach().cpu().clone()
                 for key in plain.state_dict() for owner, _, leaf in [key.rpartition(".")]}
    net.train(was_training)
    plain.load_state_dict(state)
    return plain


def warm_start(net: CVAE, tensors: dict[str, np.ndarray]) -> list[str]:
    """Load exported generator weights (fp16, spectral norm folded) into a training network, whose
    spectral-normed layers then re-estimate their largest singular value (a folded weight's is ~1,
    so the function is kept). Layers the export lacks keep their initialisation and are returned:
    label modulation starts at zero, so adding it (prior_labels) changes nothing until it learns."""
    folded = generator_state(tensors)
    own = net.state_dict()
    state, missing = {}, []
    for key, value in own.items():
        name = key.replace(".parametrizations.weight.original", ".weight")
        if key.endswith(("._u", "._v")):
            continue
        if name not in folded:
            missing.append(key)
        elif folded[name].numel() != value.numel() or folded[name].dim() > max(value.dim(), 1):
            raise SystemExit(f"--init: {name} is {tuple(folded[name].shape)} in the weights but {tuple(value.shape)} "
                             "in this config's network; use the config the weights were trained with")
        else:
            state[key] = folded.pop(name).reshape(value.shape)  # safetensors stores scalars as (1,)
    if folded:
        raise SystemExit(f"--init: the weights hold layers this network lacks ({', '.join(sorted(folded)[:4])}); "
                         "use the config they were trained with")
    net.load_state_dict(state, strict=False)
    for module in net.modules():
        if parametrize.is_parametrized(module, "weight"):
            sn = module.parametrizations.weight[0]
            sn._power_method(sn._reshape_weight_to_matrix(module.parametrizations.weight.original), 200)
    return missing


def export(paths: list[str], net: CVAE, stats: Stats, meta: dict, extra_meta: dict | None = None) -> None:
    """Shipped weights: fp16 folded generator + float32 normalisation statistics, folded once and
    written to each path (the last of them with `extra_meta`)."""
    tensors = {f"generator.{k}": v.detach().cpu().half().numpy() for k, v in folded_generator(net).state_dict().items()}
    for i, path in enumerate(paths):
        more = extra_meta if i == len(paths) - 1 and extra_meta else {}
        checkpoint.save(path, {**tensors, **stats.arrays()}, {**meta, **more})


def save_training(path, net, ema, disc, opt_g, opt_d, stats, meta) -> None:
    arrays = {**state_arrays("generator", net), **state_arrays("ema", ema), **state_arrays("disc", disc),
              **optimizer_arrays("opt_g", opt_g),
              **optimizer_arrays("opt_d", opt_d), **stats.arrays()}
    checkpoint.save(path, arrays, meta)
