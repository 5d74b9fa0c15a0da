"""The paper's objective: reconstruction and KL (reconstructive branch), appearance match and
adversarial terms (generative branch), and action / style classification, all at the scales the
decoder emits. Everything is in normalised residual units (see model.representation.Stats)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from model.representation import L_THIGH, PELVIS, R_THIGH, from_output_features


def pyramid(x: torch.Tensor, levels: int = 4) -> list[torch.Tensor]:
    """[T/8, T/4, T/2, T] average-pooled copies of (B, C, T), matching the decoder's outputs."""
    return [F.avg_pool1d(x, 2 ** (levels - 1 - i)) if i < levels - 1 else x for i in range(levels)]


def masked_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return ((pred - target).abs() * weight).sum() / weight.sum().clamp_min(1.0)


def window_l1(error: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(B,) mean |error| over each window's weighted entries: averaged over windows afterwards, every
    window counts the same whatever its task (generation hides 128 frames, a short gap a few)."""
    dims = tuple(range(1, error.dim()))
    return (error.abs() * weight).sum(dims) / weight.sum(dims).clamp_min(1.0)


def position_error(residual_diff: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """A difference of normalised residuals (B, C, T) -> the per-entry error of global joint
    positions in cm, which is what evaluation measures; `scale` (broadcast to (B, C, T)) is metres
    per unit. The output channels are root-relative joints plus the pelvis trajectory, so a pelvis
    error moves every joint; in normalised units the trajectory (scale: metres) would weigh ~100x
    less than a joint's offset from the pelvis."""
    b, c, t = residual_diff.shape
    feat = (residual_diff * scale).transpose(1, 2).reshape(b, t, c // 3, 3)
    return from_output_features(feat).reshape(b, t, c).transpose(1, 2) * 100.0


def pose_error(residual_diff: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The same difference -> per-entry error of the joints relative to the pelvis, in cm (the pelvis
    trajectory's own channels are zero). An L1 on global positions alone is blind to the pose wherever
    the trajectory's error is the larger: each coordinate's |e_pelvis + e_joint| then only sees the
    mean of the joints' errors, so lifting (depth never seen) and generation (nothing seen) got no
    pull towards the right pose; decoded even from the posterior, generated bodies barely moved."""
    err = residual_diff * scale * 100.0
    return torch.cat([torch.zeros_like(err[:, :3]), err[:, 3:]], 1)  # pelvis first (model.skeleton)


def between_keys(mask: torch.Tensor) -> torch.Tensor:
    """(B, C, T) float mask -> 1 where an entry is hidden but observed both before and after it."""
    before = torch.cummax(mask, -1).values
    after = torch.cummax(mask.flip(-1), -1).values.flip(-1)
    return (1 - mask) * before * after


def hidden_position_loss(residual: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                         scale: torch.Tensor, pose_weight: float, outside_weight: float = 0.5) -> torch.Tensor:
    """Global-position L1 (cm) on the hidden entries, plus `pose_weight` times the pelvis-relative
    one (pose_error); in-between entries and extrapolated ones (before the first / after the last
    observation) averaged apart: extrapolation errors are several times larger and would otherwise
    drown the in-betweening signal. Returns (B,), one per window."""
    diff = residual - target
    inside = between_keys(mask)
    outside = 1 - mask - inside
    per_window = lambda e: window_l1(e, inside) + outside_weight * window_l1(e, outside)
    loss = per_window(position_error(diff, scale))
    return loss + pose_weight * per_window(pose_error(diff, scale)) if pose_weight else loss


def extrapolated_frames(mask: torch.Tensor) -> torch.Tensor:
    """(B, C, T) float mask -> (B, T): 1 on frames with nothing observed and no key on both sides
    (before the first key or after the last: what Extend makes), every frame of a label-only window."""
    return (1 - mask - between_keys(mask)).amin(1)


def motion_energy(residual: torch.Tensor, target: torch.Tensor, scale: torch.Tensor, prior: torch.Tensor,
                  frames: torch.Tensor | None = None, lags: tuple[int, ...] = (1, 4, 16, 64)) -> torch.Tensor:
    """(B,) how far and which way each window's body moves, against the real window's, in cm, over
    1, 4, 16 and 64 frames: the mean distance each joint covers about the pelvis and the pelvis over
    the ground, compared joint by joint, and (as one joint more) the pelvis's travel forward and
    sideways in the body's own facing and how far that facing turns. Meant for windows with nothing
    observed, whose prior fill (`prior`, metres) and output unit stay constant over time, so that a
    moving residual is a moving body. Judged by the adversarial term alone, generated bodies barely
    moved (0.06 m/s about the pelvis, real motion 0.35): every sampled pose sat near the mean; with
    the pose's travel alone, generated runs covered 0.74 m/s of ground against real runs' 2.28, the
    pelvis shaking at 3.6 m/s frame to frame (real 1.4): the short lags refuse that shaking, the
    longer ones ask for a limb's swing and for ground covered over two seconds. With speeds alone,
    generated walks went any way but forward (85 degrees off the way the body faced, real 5) and
    turning walks did not turn (6 degrees in 64 frames, real 60): hence the body-relative heading.
    Speeds and headings, not places: a generated walk may take any phase and face anywhere.
    `frames` (B, T) limits both motions to the spans that touch those frames (extrapolated_frames):
    forecasts past the last key, judged by their L1 alone, slowed to a stop (the body's speed fell
    from 0.23 to 0.06 m/s over three seconds past the keys; real motion kept 0.37)."""
    weights = [torch.ones_like(residual[:, 0, k:]) if frames is None else torch.maximum(frames[:, k:], frames[:, :-k])
               for k in lags]
    mean = lambda x, w: (x * w).sum(-1) / w.sum(-1).clamp_min(1.0)
    def body(res: torch.Tensor) -> torch.Tensor:
        x = (prior + res * scale) * 100.0  # the pelvis's path (first joint), then each joint's offset from it
        return x.reshape(x.shape[0], -1, 3, x.shape[-1])

    def travel(x: torch.Tensor) -> list[torch.Tensor]:
        return [mean(((x[..., k:] - x[..., :-k]).pow(2).sum(2) + 1e-6).sqrt(), w[:, None]) for k, w in zip(lags, weights)]

    def heading(x: torch.Tensor) -> list[torch.Tensor]:
        across = x[:, L_THIGH, ::2] - x[:, R_THIGH, ::2]                   # (B, 2, T): x, z
        left = across / (across.norm(dim=1, keepdim=True) + 1e-3)
        forward = torch.stack([-left[:, 1], left[:, 0]], 1)                 # across x up
        path = x[:, PELVIS, ::2]
        out = []
        for k, w in zip(lags, weights):
            step, f0, l0, f1 = path[..., k:] - path[..., :-k], forward[..., :-k], left[..., :-k], forward[..., k:]
            turn = torch.atan2((f1 * l0).sum(1), (f1 * f0).sum(1)) * 100.0  # radians, as cm at 1 m
            out.append(mean(torch.stack([(step * f0).sum(1), (step * l0).sum(1), turn], 1), w[:, None]))  # (B, 3)
        return out

    g, r = body(residual), body(target)
    joints = g.shape[1]
    speeds = sum((a - b).abs().mean(-1) for a, b in zip(travel(g), travel(r)))
    ways = sum((a - b).abs().sum(-1) for a, b in zip(heading(g), heading(r))) / joints
    return (speeds + ways) / len(lags)


def kl_divergence(q: tuple[torch.Tensor, torch.Tensor], p: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """KL(q || p) of diagonal Gaussians, summed over latent channels, averaged over batch and time."""
    (mq, sq), (mp, sp) = q, p
    kl = torch.log(sp / sq) + (sq ** 2 + (mq - mp) ** 2) / (2 * sp ** 2) - 0.5
    return kl.sum(1).mean()


def balanced_kl(q: tuple[torch.Tensor, torch.Tensor], p: tuple[torch.Tensor, torch.Tensor],
                prior_share: float) -> torch.Tensor:
    """KL(q || p) whose value is unchanged but whose gradient moves the prior by `prior_share` and the
    posterior by the rest (KL balancing). Pulled with full weight, the posterior collapses onto the
    prior (z then carries ~1 nat per step: samples barely differ and generation from labels is a mean
    pose); the authors' code fits the prior to a detached posterior, i.e. `prior_share` = 1."""
    detach = lambda g: (g[0].detach(), g[1].detach())
    if prior_share >= 1.0:
        return kl_divergence(detach(q), p)
    return prior_share * kl_divergence(detach(q), p) + (1 - prior_share) * kl_divergence(q, detach(p))


def generator_losses(out: dict, target: torch.Tensor, mask: torch.Tensor, scale: torch.Tensor, prior: torch.Tensor,
                     judge, action, style, cfg, adversarial: bool) -> dict[str, torch.Tensor]:
    """`judge(residual, action, style)` is the discriminator applied to a (B, C, T) output;
    `scale` (B, C, T) turns normalised residuals into metres (see position_error) and `prior` (B, C, T,
    metres) is the fill they refine. With several prior
    draws per window, `gen` scores only each window's best draw (the variety loss): a single draw is
    not pulled to the mean of the plausible motions, so the prior keeps them apart (diversity). A
    window with nothing observed (generation from labels) has no single right answer: its draws are
    judged by the adversarial and classification terms, as in the paper, not pulled to a frozen mean
    pose, and, with `lambda_motion`, by how much their bodies move (motion_energy), every draw; with
    `motion_extrapolated`, so are the frames any window extrapolates past its keys."""
    b = target.shape[0]
    draws = out["gen"][-1].shape[0] // b
    targets, masks = pyramid(target), pyramid(mask)
    rec = sum((o - t).abs().mean() for o, t in zip(out["rec"], targets))
    pos = hidden_position_loss(out["rec"][-1], target, mask, scale, cfg.pose_weight).mean()
    app = sum(masked_l1(o, t.repeat(draws, 1, 1), m.repeat(draws, 1, 1))
              for o, t, m in zip(out["gen"], targets, masks))
    target_n, scale_n = target.repeat(draws, 1, 1), scale.expand_as(target).repeat(draws, 1, 1)  # per draw
    gen = hidden_position_loss(out["gen"][-1], target_n, mask.repeat(draws, 1, 1), scale_n, cfg.pose_weight)
    constrained = (mask.sum((1, 2)) > 0).to(gen.dtype)
    gen = (gen.reshape(draws, b).min(0).values * constrained).sum() / constrained.sum().clamp_min(1.0)
    kl = balanced_kl(out["posterior"], out["prior"], cfg.kl_prior_share)
    losses = {"rec": rec, "pos": pos, "kl": kl, "app": app, "gen": gen}
    total = (cfg.lambda_rec * rec + cfg.lambda_pos * pos + cfg.lambda_kl * kl + cfg.lambda_app * app
             + cfg.lambda_gen * gen)
    if cfg.lambda_motion:
        frames = extrapolated_frames(mask) if cfg.motion_extrapolated else None
        counted = 1 - constrained if frames is None else (frames.sum(-1) > 0).to(gen.dtype)
        motion = motion_energy(out["gen"][-1], target_n, scale_n, prior.repeat(draws, 1, 1),
                               None if frames is None else frames.repeat(draws, 1)).reshape(draws, b).mean(0)
        losses["motion"] = (motion * counted).sum() / counted.sum().clamp_min(1.0)
        total = total + cfg.lambda_motion * losses["motion"]
    if adversarial:
        score, action_logits, style_logits = judge(out["gen"][-1][:b], action, style)
        losses["adv"] = ((score - 1) ** 2).mean()
        cls = classification(action_logits, style_logits, action, style)
        losses["cls"] = cls
        total = total + cfg.lambda_adv * losses["adv"] + cfg.lambda_cls * cls
    losses["total"] = total
    return losses


def classification(action_logits, style_logits, action, style) -> torch.Tensor:
    """Cross-entropy against known labels (id 0 = unknown / any is ignored). Written without a branch
    on the data: a batch with no known label still reaches both heads (with zero gradient), so every
    process of a distributed run reduces the same parameters."""
    loss = action_logits.new_zeros(())
    for logits, ids in ((action_logits, action), (style_logits, style)):
        known = (ids > 0).sum().clamp_min(1)
        loss = loss + F.cross_entropy(logits, ids, ignore_index=0, reduction="sum") / known
    return loss


def discriminator_loss(judge, real: torch.Tensor, fake: torch.Tensor, action, style) -> dict[str, torch.Tensor]:
    """LSGAN on real vs generated sequences; the classifier heads learn from real motion only."""
    real_score, action_logits, style_logits = judge(real, action, style)
    fake_score, _, _ = judge(fake.detach(), action, style)
    adv = ((real_score - 1) ** 2).mean() + (fake_score ** 2).mean()
    cls = classification(action_logits, style_logits, action, style)
    return {"d_adv": adv, "d_cls": cls, "d_total": adv + cls}
