"""The CVAE's inference path (CVAE.sample in model/network.py) in float32 numpy, for a Blender
without PyTorch. Same weights (the exported state dict, spectral norm folded), same math.

Activations are channels-last (B, T, C), so every conv is one GEMM over all B*T rows at once: a k=3
conv multiplies the replicate-padded input's three shifted copies laid side by side (im2col) by a
(3*Cin, Cout) matrix arranged once at load. tests/test_numpy_runtime.py holds it to the torch path.
"""
from __future__ import annotations

import numpy as np


def _act(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.1 * x)  # leaky_relu(0.1)


def _im2col(x: np.ndarray, d: int = 1) -> np.ndarray:
    """(B, T, C) -> (B*T, 3C): row t holds x[t-d], x[t], x[t+d], edges replicated."""
    b, t, c = x.shape
    cols = np.empty((b, t, 3, c), np.float32)
    cols[:, :, 1] = x
    d = min(d, t)
    cols[:, d:, 0], cols[:, :d, 0] = x[:, :t - d], x[:, :1]
    cols[:, :t - d, 2], cols[:, t - d:, 2] = x[:, d:], x[:, -1:]
    return cols.reshape(b * t, 3 * c)


class Conv:
    """Conv1d (kernel 1 or 3, replicate padding, `dilation`) as one GEMM; `scale` folds a constant
    factor in."""

    def __init__(self, p: dict[str, np.ndarray], name: str, scale: float | np.ndarray = 1.0, dilation: int = 1):
        w = p[f"{name}.weight"]                                     # (out, in, k)
        self.k, self.dilation = w.shape[2], dilation
        self.w = np.ascontiguousarray((w * scale).transpose(2, 1, 0).reshape(-1, w.shape[0]))
        self.b = (p[f"{name}.bias"] * scale).astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        b, t, c = x.shape
        cols = _im2col(x, self.dilation) if self.k == 3 else x.reshape(b * t, c)
        out = cols @ self.w
        out += self.b
        return out.reshape(b, t, -1)


class ResBlock:
    """BigGAN-style block; `resample` 'up' (nearest, before), 'down' (average pool, after) or ''."""

    def __init__(self, p: dict[str, np.ndarray], name: str, resample: str = ""):
        self.resample = resample
        self.conv1, self.conv2 = Conv(p, f"{name}.conv1"), Conv(p, f"{name}.conv2")
        self.skip = Conv(p, f"{name}.skip") if f"{name}.skip.weight" in p else None
        self.film = (p[f"{name}.film.weight"].T.copy(), p[f"{name}.film.bias"]) if f"{name}.film.weight" in p else None

    def __call__(self, x: np.ndarray, cond: np.ndarray | None = None) -> np.ndarray:
        if self.resample == "up":
            x = np.repeat(x, 2, axis=1)
        h = self.conv1(_act(x))
        if self.film is not None:
            gamma, beta = np.split(cond @ self.film[0] + self.film[1], 2, axis=1)
            h *= 1 + gamma[:, None]
            h += beta[:, None]
        h = self.conv2(_act(h))
        h += x if self.skip is None else self.skip(x)
        if self.resample == "down":
            b, t, c = h.shape
            return h.reshape(b, t // 2, 2, c).mean(2)
        return h


class DilatedBlock:
    """network.DilatedBlock: x + conv2(act(conv1(act(x)))), both convs dilated."""

    def __init__(self, p: dict[str, np.ndarray], name: str, dilation: int):
        self.conv1 = Conv(p, f"{name}.conv1", dilation=dilation)
        self.conv2 = Conv(p, f"{name}.conv2", dilation=dilation)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x + self.conv2(_act(self.conv1(_act(x))))


class Attention:
    """Multi-head (self or cross) attention over time; the 1/sqrt(d) scale is folded into the query
    weights and the gate into the output weights. Self-attention computes q, k, v in one GEMM."""

    def __init__(self, p: dict[str, np.ndarray], name: str, heads: int):
        self.heads = heads
        channels = p[f"{name}.q.weight"].shape[0]
        q = Conv(p, f"{name}.q", (channels // heads) ** -0.5)
        k, v = Conv(p, f"{name}.k"), Conv(p, f"{name}.v")
        self.qkv_w, self.qkv_b = np.concatenate([q.w, k.w, v.w], 1), np.concatenate([q.b, k.b, v.b])
        self.o = Conv(p, f"{name}.o", p[f"{name}.gate"])

    def __call__(self, x: np.ndarray, context: np.ndarray | None = None) -> np.ndarray:
        b, t, c = x.shape
        if context is None:
            q, k, v = np.split(x.reshape(b * t, c) @ self.qkv_w + self.qkv_b, 3, axis=1)
        else:
            q = x.reshape(b * t, c) @ self.qkv_w[:, :c] + self.qkv_b[:c]
            k, v = np.split(context.reshape(-1, c) @ self.qkv_w[:, c:] + self.qkv_b[c:], 2, axis=1)
        heads = lambda y: y.reshape(b, -1, self.heads, c // self.heads).transpose(0, 2, 1, 3)
        q, k, v = heads(q), heads(k), heads(v)
        s = q @ k.transpose(0, 1, 3, 2)                              # (B, H, Tq, Tk)
        s -= s.max(-1, keepdims=True)
        np.exp(s, out=s)
        s /= s.sum(-1, keepdims=True)
        out = (s @ v).transpose(0, 2, 1, 3).reshape(b, t, c)
        return x + self.o(out)


class NumpyBackend:
    """The generator's Backend protocol: (B, 3C, T) inputs, (B,) label ids, (B, Z, T/8) noise ->
    (B, C, T) normalised residual, exactly as TorchBackend."""

    device = "numpy"

    def __init__(self, tensors: dict[str, np.ndarray], config: dict):
        p = {k[len("generator."):]: np.asarray(v, np.float32) for k, v in tensors.items()
             if k.startswith("generator.") and not k.startswith("generator.posterior.")}  # training only
        heads, self.z = config["heads"], config["z"]
        self.encoder = [ResBlock(p, f"encoder.blocks.{i}", "down") for i in range(3)]
        self.prior = [ResBlock(p, f"prior.blocks.{i}") for i in range(2)]
        self.prior_out = Conv(p, "prior.out")
        self.action, self.style = p["labels.action.weight"], p["labels.style.weight"]
        self.start = ResBlock(p, "decoder.start")
        self.up = [ResBlock(p, f"decoder.up.{i}", "up") for i in range(3)]
        self.merge = [Conv(p, f"decoder.merge.{i}") for i in range(3)]
        self.self_attn = Attention(p, "decoder.self_attn", heads)
        self.cross_attn = Attention(p, "decoder.cross_attn", heads)
        self.refine = [DilatedBlock(p, f"decoder.refine.{i}", 2 ** i) for i in range(config.get("refine", 0))]
        self.outs = [Conv(p, f"decoder.outs.{i}") for i in range(4)]

    def run(self, inputs: np.ndarray, action: np.ndarray, style: np.ndarray, noise: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(np.asarray(inputs, np.float32).transpose(0, 2, 1))
        x_in, feats = x, []
        for block in self.encoder:
            x = block(x)
            feats.append(x)
        f64, f32, f16 = feats
        cond = np.concatenate([self.action[action], self.style[style]], 1)
        h = f16
        for block in self.prior:
            h = block(h, cond)
        stats = self.prior_out(_act(h))
        mu, s = stats[..., :self.z], stats[..., self.z:]
        sigma = np.logaddexp(np.float32(0), s) + np.float32(1e-4)  # softplus
        z = mu + sigma * np.asarray(noise, np.float32).transpose(0, 2, 1)
        h = self.start(np.concatenate([z, f16], -1), cond)
        out = self.outs[0](_act(h))
        for i, block in enumerate(self.up):
            h = block(np.concatenate([h, out], -1), cond)
            if i == 0:
                h = self.cross_attn(self.self_attn(_act(h)), f32)
                h = self.merge[0](np.concatenate([h, f32], -1))
            elif i == 1:
                h = self.merge[1](np.concatenate([h, f64], -1))
            else:
                h = self.merge[2](np.concatenate([h, x_in], -1))
                for block in self.refine:
                    h = block(h)
            out = self.outs[i + 1](_act(h))
        return np.ascontiguousarray(out.transpose(0, 2, 1))
