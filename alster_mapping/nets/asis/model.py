"""ASIS: Associatively Segmenting Instances and Semantics (Wang et al., CVPR 2019, section 3).

    shared encoder: PointNet++ set abstractions; two decoders (feature propagations) give
    F_SEM, F_INS (N_P x N_F)
    SA (eq. 5):  F_SINS = F_INS + FC(F_SEM)            -> E_INS (N_P x N_E) instance embeddings
    IF (eq. 6):  x'_i = max_k x_{i_k} over the K nearest points of i in the embedding space
                 (L1, neighbours beyond delta_v replaced by i itself)  -> F_ISEM -> P_SEM
    losses (eq. 1-4): cross-entropy on P_SEM + the discriminative loss on E_INS

With ``semantic_aware`` and ``instance_fusion`` off it is the vanilla baseline of the
paper (Table 1): the same encoder, decoders and heads without the two modules.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..points.branches import InstanceSizePrior, SemanticInstanceBranches, semantic_instance_losses
from ..points.ops import group_max
from ..points.pointnet2 import shared_mlp
from ..registry import MODELS
from .config import AsisConfig
from .neighbour_kernel import embedding_neighbours_kernel


@dataclass
class AsisOutput:
    """semantic_logits: (B, N, C). embeddings: (B, N, N_E)."""

    semantic_logits: torch.Tensor
    embeddings: torch.Tensor


def embedding_neighbours(embeddings: torch.Tensor, k: int, cut_off: float) -> torch.Tensor:
    """(B, N, K) indices of the K nearest points in the embedding space (L1, the point itself
    included); neighbours further than ``cut_off`` are replaced by the point itself, so they
    cannot carry another instance's features (the IF outlier filter). No gradient flows
    through the choice: float32 embeddings on the CPU take the compiled loop of
    ``neighbour_kernel``, others the tensor path (``embedding_neighbours_torch``)."""
    k = min(k, embeddings.shape[1])
    if embeddings.device.type == "cpu" and embeddings.dtype == torch.float32 and embedding_neighbours_kernel is not None:
        return torch.from_numpy(embedding_neighbours_kernel(embeddings.detach().contiguous().numpy(), k, float(cut_off)))
    return embedding_neighbours_torch(embeddings, k, cut_off)


def embedding_neighbours_torch(embeddings: torch.Tensor, k: int, cut_off: float) -> torch.Tensor:
    """``embedding_neighbours`` in tensor operations (an (N, N) distance matrix and a top-k)."""
    distance = torch.cdist(embeddings, embeddings, p=1)
    near, index = distance.topk(min(k, embeddings.shape[1]), dim=-1, largest=False)
    itself = torch.arange(embeddings.shape[1], device=embeddings.device).view(1, -1, 1).expand_as(index)
    return torch.where(near > cut_off, itself, index)


@MODELS.register("asis", config=AsisConfig, task="instance_segmentation", inputs="point_block")
class AsisModel(nn.Module):
    """config: ``AsisConfig``. num_classes: C of the label space.
    forward(xyz (B, N, 3), features (B, N, in_channels)) -> ``AsisOutput``."""

    def __init__(self, config: AsisConfig, num_classes: int = 20):
        super().__init__()
        self.config, self.num_classes = config, int(num_classes)
        width = config.feature_dim
        self.branches = SemanticInstanceBranches(config)
        self.instance_sizes = InstanceSizePrior(self.num_classes)  # set by the recipe from the training scenes
        self.adapt_semantic = shared_mlp([width, width], dims=1) if config.semantic_aware else None  # the FC of eq. 5
        self.embedding_head = nn.Conv1d(width, config.embedding_dim, 1)
        self.dropout = nn.Dropout(config.dropout)
        self.semantic_head = nn.Conv1d(width, self.num_classes, 1)

    def build_arguments(self) -> dict:
        return {"num_classes": self.num_classes}

    def forward(self, xyz: torch.Tensor, features: torch.Tensor | None = None) -> AsisOutput:
        f_sem, f_ins = self.branches(xyz, features)  # (B, N_F, N) each
        if self.adapt_semantic is not None:
            f_ins = f_ins + self.adapt_semantic(f_sem)  # eq. 5
        embeddings = self.embedding_head(f_ins).transpose(1, 2)  # (B, N, N_E)
        if self.config.instance_fusion:
            # eq. 6; the neighbourhoods come from the embeddings but pass no gradient into them (as the reference)
            index = embedding_neighbours(embeddings.detach(), self.config.neighbours, self.config.delta_v)
            f_sem = group_max(f_sem.transpose(1, 2), index).transpose(1, 2)
        logits = self.semantic_head(self.dropout(f_sem)).transpose(1, 2)
        return AsisOutput(logits, embeddings)

    def losses(self, out: AsisOutput, semantic: torch.Tensor, instances: torch.Tensor) -> dict[str, torch.Tensor]:
        """semantic: (B, N) class indices (-1 ignored); instances: (B, N) ids (< 0 = none).
        Returns {"semantic", "var", "dist", "reg", "instance", "total"}."""
        return semantic_instance_losses(out.semantic_logits, out.embeddings, semantic, instances, self.config, self.config.weight_instance)
