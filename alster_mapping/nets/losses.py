"""Losses of the ALSTER pipeline (Weder et al., eq. 4-5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -1


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 1.0, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Focal loss, ALSTER eq. 5: L = (1 - p_y)^gamma * CE(p, y), averaged over labelled elements.

    logits: (N, C) or (B, C, H, W) float. target: (N,) or (B, H, W) int64 class indices,
    ``ignore_index`` for unlabelled elements. gamma: focusing parameter (the paper: 1).
    Returns a scalar; zero (with a gradient path) when nothing is labelled.
    """
    if logits.dim() > 2:  # (B, C, ...) -> (B * ..., C)
        logits = logits.movedim(1, -1).reshape(-1, logits.shape[1])
        target = target.reshape(-1)
    valid = target != ignore_index
    if not bool(valid.any()):
        return logits.sum() * 0.0
    logits, target = logits[valid], target[valid].long()
    log_p = F.log_softmax(logits.float(), dim=-1).gather(1, target.unsqueeze(1)).squeeze(1)
    # (1 - p)^gamma down-weights the easy, already well-classified elements.
    weight = (1.0 - log_p.exp()).clamp_min(0.0).pow(gamma)
    return (-weight * log_p).mean()


def alster_loss(
    losses: dict[str, torch.Tensor], weights: dict[str, float] | None = None
) -> torch.Tensor:
    """Total loss, ALSTER eq. 4: sum of lambda_k * L_k over the heads (2D, 3D, expert).

    losses: head name -> scalar focal loss. weights: head name -> lambda (default 1, as in the paper).
    """
    weights = weights or {}
    return sum(weights.get(name, 1.0) * value for name, value in losses.items())
