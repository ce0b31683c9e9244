"""Pooling backbone features into one vector per image.

Average pooling is what imagededup (and most retrieval baselines) use; generalised-mean (GeM)
pooling (Radenović et al., 2018) emphasises strong local activations and tends to separate near
duplicates from merely similar images better:

    avg(X)    = (1/|Ω|) Σ_{ω∈Ω} x_ω
    GeM_p(X)  = ((1/|Ω|) Σ_{ω∈Ω} max(x_ω, ε)^p)^{1/p}      (p = 1: average; p → ∞: max)

Ω is the set of spatial positions of a (N, C, h, w) map, or the tokens of a (N, T, C) sequence.
"""

from __future__ import annotations

POOLINGS = ("avg", "gem")


def pool(features, method: str = "avg", p: float = 3.0, eps: float = 1e-6):
    """(N, C, h, w) map, (N, T, C) tokens or (N, D) vectors → (N, D) float tensor."""
    import torch.nn.functional as F

    if method not in POOLINGS:
        raise ValueError(f"unknown pooling {method!r}; choose from {', '.join(POOLINGS)}")
    if features.ndim == 2:
        return features
    if features.ndim == 3:  # tokens: average over all of them, as imagededup does for ViT
        if method == "gem":
            raise ValueError(
                "GeM pooling needs non-negative activations (a CNN feature map); "
                "this backbone gives signed transformer tokens: use pooling='avg'"
            )
        return features.mean(dim=1)
    if features.ndim != 4:
        raise ValueError(f"cannot pool features of shape {tuple(features.shape)}")
    if method == "avg":  # adaptive_avg_pool2d, bit-identical to torchvision's/imagededup's avgpool
        return F.adaptive_avg_pool2d(features, 1).flatten(1)
    return F.adaptive_avg_pool2d(features.clamp(min=eps).pow(p), 1).pow(1.0 / p).flatten(1)
