"""Losses shared by the model families: the focal loss (ALSTER eq. 4-5) and the
discriminative loss of instance embeddings (ASIS eq. 1-4, used by ASIS and BAN)."""

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


def discriminative_loss(
    embeddings: torch.Tensor,
    instances: torch.Tensor,
    delta_v: float = 0.5,
    delta_d: float = 1.5,
    weights: tuple[float, float, float] = (1.0, 1.0, 0.001),
) -> dict[str, torch.Tensor]:
    """The class-agnostic discriminative loss of ASIS (section 3.1), L1 distances:

        L_var  = 1/I sum_i 1/N_i sum_j [ ||mu_i - e_j||_1 - delta_v ]_+^2             (eq. 2)
        L_dist = 1/(I (I-1)) sum_{iA != iB} [ 2 delta_d - ||mu_iA - mu_iB||_1 ]_+^2    (eq. 3)
        L_reg  = 1/I sum_i ||mu_i||_1                                                    (eq. 4)
        L      = w_var L_var + w_dist L_dist + w_reg L_reg        (eq. 1: weights 1, 1, alpha = 0.001)

    embeddings: (B, N, E) float; instances: (B, N) int64 instance ids, < 0 = no instance
    (ignored). Each term is averaged over the batch elements that have instances (L_dist
    over those with two or more). Returns {"var", "dist", "reg", "total"} scalars.
    """
    if embeddings.dim() != 3 or instances.shape != embeddings.shape[:2]:
        raise ValueError(f"embeddings (B, N, E) and instances (B, N) do not fit: {tuple(embeddings.shape)}, {tuple(instances.shape)}")
    zero = embeddings.sum() * 0.0
    terms: dict[str, list[torch.Tensor]] = {"var": [], "dist": [], "reg": []}
    for e, ids in zip(embeddings, instances):
        valid = ids >= 0
        if not bool(valid.any()):
            continue
        e, ids = e[valid], ids[valid]
        _, inverse = torch.unique(ids, return_inverse=True)
        count = int(inverse.max()) + 1
        sizes = torch.bincount(inverse, minlength=count).to(e.dtype)
        means = torch.zeros(count, e.shape[1], dtype=e.dtype, device=e.device).index_add_(0, inverse, e) / sizes.unsqueeze(1)
        pull = (torch.relu((means[inverse] - e).abs().sum(1) - delta_v) ** 2)
        terms["var"].append((torch.zeros(count, dtype=e.dtype, device=e.device).index_add_(0, inverse, pull) / sizes).mean())
        terms["reg"].append(means.abs().sum(1).mean())
        if count > 1:
            gaps = torch.cdist(means.unsqueeze(0), means.unsqueeze(0), p=1).squeeze(0)
            push = torch.relu(2 * delta_d - gaps) ** 2
            off_diagonal = ~torch.eye(count, dtype=torch.bool, device=e.device)
            terms["dist"].append(push[off_diagonal].sum() / (count * (count - 1)))
    parts = {name: torch.stack(values).mean() if values else zero for name, values in terms.items()}
    parts["total"] = weights[0] * parts["var"] + weights[1] * parts["dist"] + weights[2] * parts["reg"]
    return parts
