"""The paper's objective: reconstruction and KL (reconstructive branch), appearance match and
adversarial terms (generative branch), and action / style classification, all at the scales the
decoder emits. Everything is in normalised residual units (see model.representation.Stats)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def pyramid(x: torch.Tensor, levels: int = 4) -> list[torch.Tensor]:
    """[T/8, T/4, T/2, T] average-pooled copies of (B, C, T), matching the decoder's outputs."""
    return [F.avg_pool1d(x, 2 ** (levels - 1 - i)) if i < levels - 1 else x for i in range(levels)]


def masked_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return ((pred - target).abs() * weight).sum() / weight.sum().clamp_min(1.0)


def kl_divergence(q: tuple[torch.Tensor, torch.Tensor], p: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """KL(q || p) of diagonal Gaussians, summed over latent channels, averaged over batch and time."""
    (mq, sq), (mp, sp) = q, p
    kl = torch.log(sp / sq) + (sq ** 2 + (mq - mp) ** 2) / (2 * sp ** 2) - 0.5
    return kl.sum(1).mean()


def generator_losses(out: dict, target: torch.Tensor, mask: torch.Tensor, judge, action, style, cfg,
                     adversarial: bool) -> dict[str, torch.Tensor]:
    """`judge(residual, action, style)` is the discriminator applied to a (B, C, T) output."""
    targets, masks = pyramid(target), pyramid(mask)
    rec = sum((o - t).abs().mean() for o, t in zip(out["rec"], targets))
    app = sum(masked_l1(o, t, m) for o, t, m in zip(out["gen"], targets, masks))
    gen = masked_l1(out["gen"][-1], target, 1 - mask)
    kl = kl_divergence(out["posterior"], out["prior"])
    losses = {"rec": rec, "kl": kl, "app": app, "gen": gen}
    total = cfg.lambda_rec * rec + cfg.lambda_kl * kl + cfg.lambda_app * app + cfg.lambda_gen * gen
    if adversarial:
        score, action_logits, style_logits = judge(out["gen"][-1], action, style)
        losses["adv"] = ((score - 1) ** 2).mean()
        cls = classification(action_logits, style_logits, action, style)
        losses["cls"] = cls
        total = total + cfg.lambda_adv * losses["adv"] + cfg.lambda_cls * cls
    losses["total"] = total
    return losses


def classification(action_logits, style_logits, action, style) -> torch.Tensor:
    """Cross-entropy against known labels (id 0 = unknown / any is ignored)."""
    loss = action_logits.new_zeros(())
    for logits, ids in ((action_logits, action), (style_logits, style)):
        if (ids > 0).any():
            loss = loss + F.cross_entropy(logits, ids, ignore_index=0)
    return loss


def discriminator_loss(judge, real: torch.Tensor, fake: torch.Tensor, action, style) -> dict[str, torch.Tensor]:
    """LSGAN on real vs generated sequences; the classifier heads learn from real motion only."""
    real_score, action_logits, style_logits = judge(real, action, style)
    fake_score, _, _ = judge(fake.detach(), action, style)
    adv = ((real_score - 1) ** 2).mean() + (fake_score ** 2).mean()
    cls = classification(action_logits, style_logits, action, style)
    return {"d_adv": adv, "d_cls": cls, "d_total": adv + cls}
