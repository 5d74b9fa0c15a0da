"""The two-branch conditional VAE of Cai et al. (ICCV 2021), in PyTorch.

Shapes: a window is (B, C, T) with T = 128. The encoder trunk is shared by the observed part X_i
(giving the conditional prior p(z | X_i) and the decoder's skip features) and the unobserved part X_u
(giving the posterior q(z | X_u)); z is a per-timestep map (B, Z, T/8). The decoder up-samples with
residual blocks, self-attention and cross-attention to the observed features, is modulated by the
action and style labels, and emits the output at four temporal scales (`refine` adds dilated blocks
at full resolution ahead of the last). A discriminator with action and style classifier heads judges
whole sequences. Spectral normalisation is applied to every conv but those that start at zero.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


@dataclass
class ModelConfig:
    joints: int = 21
    window: int = 128
    c1: int = 128          # channels at T/2 and T
    c2: int = 256          # channels at T/8 and T/4
    z: int = 128           # latent channels per timestep (at T/8)
    heads: int = 4
    n_actions: int = 1     # vocabulary sizes + 1: index 0 is "any"
    n_styles: int = 1
    label_dim: int = 32
    spectral_norm: bool = True
    prior_fill: str = "linear"   # how the prior the network refines is filled (representation.FILLS)
    prior_labels: bool = False   # the prior p(z | X_i, labels) is modulated by action and style too
    refine: int = 0              # dilated residual blocks at full resolution ahead of the T-scale output
    prior_travel: bool = False   # a window with nothing observed: its prior's pelvis walks straight ahead
                                 # (representation.fill_unobserved), which tells the network the time

    @property
    def channels(self) -> int:
        return self.joints * 3

    def to_dict(self) -> dict:
        return asdict(self)


def conv(cfg: ModelConfig, cin: int, cout: int, k: int = 3, normalised: bool = True, dilation: int = 1) -> nn.Module:
    layer = nn.Conv1d(cin, cout, k, padding=dilation * (k // 2), dilation=dilation,
                      padding_mode="replicate" if k > 1 else "zeros")
    nn.init.orthogonal_(layer.weight)
    nn.init.zeros_(layer.bias)
    return spectral_norm(layer) if cfg.spectral_norm and normalised else layer


def act(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.1)


class ResBlock(nn.Module):
    """BigGAN-style residual block; `resample` is 'down' (avg-pool after), 'up' (nearest before) or ''.
    With `cond_dim`, the hidden features are modulated by the labels (gamma, beta)."""

    def __init__(self, cfg: ModelConfig, cin: int, cout: int, resample: str = "", cond_dim: int = 0):
        super().__init__()
        self.resample = resample
        self.conv1, self.conv2 = conv(cfg, cin, cout), conv(cfg, cout, cout)
        self.skip = conv(cfg, cin, cout, 1) if cin != cout else None
        self.film = nn.Linear(cond_dim, 2 * cout) if cond_dim else None
        if self.film is not None:
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if self.resample == "up":
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        h = self.conv1(act(x))
        if self.film is not None:
            gamma, beta = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
            h = h * (1 + gamma) + beta
        h = self.conv2(act(h))
        s = x if self.skip is None else self.skip(x)
        out = h + s
        return F.avg_pool1d(out, 2) if self.resample == "down" else out


class DilatedBlock(nn.Module):
    """A residual block of two k=3 convs dilated by `dilation`, at full resolution. The decoder's
    T-scale output otherwise sees the observed input only through one 3-frame merge: a hidden frame
    mid-gap reads its keys' exact poses and velocities only after they were pooled and upsampled,
    and the model lost to the velocity fill even on training windows. Stacked at dilations 1, 2, 4,
    8 they reach 30 frames either way. The second conv starts at zero (no spectral norm, which would
    pin its gain at 1), so added blocks leave a trained decoder's output unchanged until they learn."""

    def __init__(self, cfg: ModelConfig, channels: int, dilation: int):
        super().__init__()
        self.conv1 = conv(cfg, channels, channels, dilation=dilation)
        self.conv2 = conv(cfg, channels, channels, normalised=False, dilation=dilation)
        nn.init.zeros_(self.conv2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(act(self.conv1(act(x))))


class Attention(nn.Module):
    """Multi-head attention over time (self when `context` is None, else cross), gated by a scalar
    that starts at 0 so the block begins as the identity (SA-GAN)."""

    def __init__(self, cfg: ModelConfig, channels: int):
        super().__init__()
        self.heads = cfg.heads
        self.q, self.k, self.v = (conv(cfg, channels, channels, 1) for _ in range(3))
        self.o = conv(cfg, channels, channels, 1)
        self.gate = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        c = x if context is None else context
        b, ch, t = x.shape
        split = lambda y: y.reshape(b, self.heads, ch // self.heads, -1).transpose(2, 3)
        out = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(c)), split(self.v(c)))
        return x + self.gate * self.o(out.transpose(2, 3).reshape(b, ch, t))


class Encoder(nn.Module):
    """Shared trunk: (B, 3C, T) -> features at T/2, T/4, T/8 (the input holds values, mask, prior)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.blocks = nn.ModuleList([
            ResBlock(cfg, 3 * cfg.channels, cfg.c1, "down"),
            ResBlock(cfg, cfg.c1, cfg.c2, "down"),
            ResBlock(cfg, cfg.c2, cfg.c2, "down"),
        ])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [x]  # the input itself is the full-resolution skip for the decoder's last stage
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats


class Gaussian(nn.Module):
    """Residual blocks then a 1x1 conv to the per-timestep mean and (softplus) scale of z."""

    def __init__(self, cfg: ModelConfig, depth: int, cond_dim: int = 0):
        super().__init__()
        self.blocks = nn.ModuleList([ResBlock(cfg, cfg.c2, cfg.c2, cond_dim=cond_dim) for _ in range(depth)])
        self.out = conv(cfg, cfg.c2, 2 * cfg.z, 1)

    def forward(self, h: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        for block in self.blocks:
            h = block(h, cond)
        mu, s = self.out(act(h)).chunk(2, dim=1)
        return mu, F.softplus(s) + 1e-4


class Decoder(nn.Module):
    """z and the observed features -> output residuals at T/8, T/4, T/2, T (normalised units)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c, d = cfg.channels, 2 * cfg.label_dim
        self.start = ResBlock(cfg, cfg.z + cfg.c2, cfg.c2, cond_dim=d)
        self.up = nn.ModuleList([
            ResBlock(cfg, cfg.c2 + c, cfg.c2, "up", d),   # -> T/4
            ResBlock(cfg, cfg.c2 + c, cfg.c1, "up", d),   # -> T/2
            ResBlock(cfg, cfg.c1 + c, cfg.c1, "up", d),   # -> T
        ])
        self.merge = nn.ModuleList([conv(cfg, 2 * cfg.c2, cfg.c2, 1), conv(cfg, cfg.c1 + cfg.c1, cfg.c1, 1),
                                    conv(cfg, cfg.c1 + 3 * c, cfg.c1)])
        self.self_attn = Attention(cfg, cfg.c2)
        self.cross_attn = Attention(cfg, cfg.c2)
        self.refine = nn.ModuleList([DilatedBlock(cfg, cfg.c1, 2 ** i) for i in range(cfg.refine)])
        # Output convs without spectral norm (which would pin their gain at 1 whatever the init), so
        # the decoder starts as the interpolation prior: residual ~0, errors no larger than linear's.
        self.outs = nn.ModuleList([conv(cfg, ch, c, normalised=False) for ch in (cfg.c2, cfg.c2, cfg.c1, cfg.c1)])
        for o in self.outs:
            nn.init.normal_(o.weight, std=1e-3)

    def forward(self, z: torch.Tensor, feats: list[torch.Tensor], cond: torch.Tensor,
                skip_keep: torch.Tensor | None = None) -> list[torch.Tensor]:
        """`skip_keep` (B, 1, 1) of 0 / 1 (training only): where 0, the observed features of the finer
        scales (T, T/2, T/4: the skips and the cross-attention's context) are zeroed, so that row's
        motion must come from z and the deepest observed feature alone."""
        x, f64, f32, f16 = feats
        if skip_keep is not None:
            x, f64, f32 = x * skip_keep, f64 * skip_keep, f32 * skip_keep
        h = self.start(torch.cat([z, f16], 1), cond)
        outs = [self.outs[0](act(h))]
        for i, block in enumerate(self.up):
            h = block(torch.cat([h, outs[-1]], 1), cond)
            if i == 0:
                h = self.cross_attn(self.self_attn(act(h)), f32)
                h = self.merge[0](torch.cat([h, f32], 1))
            elif i == 1:
                h = self.merge[1](torch.cat([h, f64], 1))
            else:
                h = self.merge[2](torch.cat([h, x], 1))
                for block in self.refine:
                    h = block(h)
            outs.append(self.outs[i + 1](act(h)))
        return outs


class LabelEmbedding(nn.Module):
    """Action and style ids (0 = any) -> one conditioning vector."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.action = nn.Embedding(cfg.n_actions, cfg.label_dim)
        self.style = nn.Embedding(cfg.n_styles, cfg.label_dim)

    def forward(self, action: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.action(action), self.style(style)], 1)


class CVAE(nn.Module):
    """The generator: encoder trunk, prior and posterior heads, label embedding, decoder. With
    `prior_labels` the prior is modulated by the labels: with nothing observed (generation) it is the
    only place a label can pick what kind of motion z holds, not just how the decoder renders it."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.prior = Gaussian(cfg, depth=2, cond_dim=2 * cfg.label_dim if cfg.prior_labels else 0)
        self.posterior = Gaussian(cfg, depth=1)
        self.labels = LabelEmbedding(cfg)
        self.decoder = Decoder(cfg)

    def sample(self, observed: torch.Tensor, action: torch.Tensor, style: torch.Tensor,
               noise: torch.Tensor) -> torch.Tensor:
        """Inference: z from the conditional prior (mu + sigma * noise); returns the T-scale output."""
        feats = self.encoder(observed)
        cond = self.labels(action, style)
        mu, sigma = self.prior(feats[-1], cond)
        return self.decoder(mu + sigma * noise, feats, cond)[-1]

    def forward(self, observed: torch.Tensor, unobserved: torch.Tensor, action: torch.Tensor,
                style: torch.Tensor, gen_samples: int = 1, spread_from_kl: bool = False,
                skip_dropout: float = 0.0) -> dict[str, object]:
        """Training: both branches. The reconstructive branch decodes z ~ q(z | X_u); the generative
        branch decodes `gen_samples` draws z ~ p(z | X_i) per window ("gen" holds them sample-major:
        row k * B + i is window i's draw k). The decoder runs once on all (batch-concatenated).
        `spread_from_kl`: the draws' noise scale is the prior's sigma detached, so only the KL sets the
        prior's spread (to the posterior's); otherwise the generative branch's losses, which any noise
        costs, shrink it below the posterior's and samples stop differing.
        `skip_dropout`: the share of the reconstructive branch's windows decoded without the finer
        observed features (Decoder.forward's `skip_keep`). With them, the decoder renders the hidden
        motion from the observed side and barely reads z (decoding the posterior's mean, which has
        seen the truth, beat the prior's by 4%), so prior draws cannot differ where it matters."""
        b, k = observed.shape[0], gen_samples
        feats_both = self.encoder(torch.cat([observed, unobserved], 0))
        feats = [f[:b] for f in feats_both]
        cond = self.labels(action, style)
        p_mu, p_sigma = self.prior(feats[-1], cond)
        q_mu, q_sigma = self.posterior(feats_both[-1][b:])
        z_q = q_mu + q_sigma * torch.randn_like(q_mu)
        mu_k = p_mu.repeat(k, 1, 1)
        spread = p_sigma.detach() if spread_from_kl else p_sigma
        z_p = mu_k + spread.repeat(k, 1, 1) * torch.randn_like(mu_k)
        keep = None
        if skip_dropout:
            rec_keep = (torch.rand(b, 1, 1, device=observed.device) >= skip_dropout).to(observed.dtype)
            keep = torch.cat([rec_keep, rec_keep.new_ones(k * b, 1, 1)], 0)
        outs = self.decoder(torch.cat([z_q, z_p], 0), [f.repeat(k + 1, 1, 1) for f in feats],
                            cond.repeat(k + 1, 1), keep)
        return {"rec": [o[:b] for o in outs], "gen": [o[b:] for o in outs],
                "prior": (p_mu, p_sigma), "posterior": (q_mu, q_sigma)}


class Discriminator(nn.Module):
    """Judges output sequences (per-timestep LSGAN scores, label-conditioned by projection) and
    classifies their action and style from the same trunk. Its input is the output residual beside
    the prior it refines (the same for real and generated), so it sees the whole motion."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        sn = ModelConfig(**{**cfg.to_dict(), "spectral_norm": True})
        self.trunk = nn.ModuleList([
            ResBlock(sn, 2 * cfg.channels, cfg.c1, "down"), ResBlock(sn, cfg.c1, cfg.c2, "down"),
            ResBlock(sn, cfg.c2, cfg.c2, "down"), ResBlock(sn, cfg.c2, cfg.c2),
        ])
        self.score = conv(sn, cfg.c2, 1, 1)
        self.action_proj = nn.Embedding(cfg.n_actions, cfg.c2)
        self.style_proj = nn.Embedding(cfg.n_styles, cfg.c2)
        self.action_head = nn.Linear(cfg.c2, cfg.n_actions)
        self.style_head = nn.Linear(cfg.c2, cfg.n_styles)

    def forward(self, x: torch.Tensor, action: torch.Tensor, style: torch.Tensor):
        for block in self.trunk:
            x = block(x)
        h = act(x)
        proj = (self.action_proj(action) + self.style_proj(style)).unsqueeze(-1)
        score = self.score(h) + (h * proj).sum(1, keepdim=True) / h.shape[1] ** 0.5
        pooled = h.mean(-1)
        return score, self.action_head(pooled), self.style_head(pooled)
