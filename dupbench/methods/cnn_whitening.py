"""PCA whitening of embeddings, learnt on a separate image set and stored with a run.

Raw CNN descriptors have a few dominant, correlated directions (shared by all photos: lighting,
"photo-ness") that inflate cosine similarity between unrelated images. Whitening decorrelates
and equalises them (Jégou & Chum, 2012). With mean μ, principal directions U (d × k) and their
variances λ fitted on L2-normalised descriptors of a *separate* image set:

    w(x) = diag(λ + ε)^(−1/2) · Uᵀ (x − μ),   then L2-normalised again.

Fitting on the collection being deduplicated would leak its own statistics into the benchmark, so
the fit set is always passed explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dupbench.records import DamagedFile, read_npz_header, write_npz


class PCAWhitening:
    """A fitted whitening transform (k ≤ d output dimensions); ``apply`` works on numpy rows."""

    def __init__(
        self,
        mean: np.ndarray,
        components: np.ndarray,
        variances: np.ndarray,
        eps: float = 1e-6,
        fitted_on: int = 0,
    ) -> None:
        self.mean = np.asarray(mean, np.float32)
        self.components = np.asarray(components, np.float32)
        self.variances = np.asarray(variances, np.float32)
        self.eps = float(eps)
        self.fitted_on = int(fitted_on)
        if self.components.shape != (len(self.variances), len(self.mean)):
            raise ValueError("components must be (k, d) with k variances and a d-dim mean")

    @property
    def input_dim(self) -> int:
        return len(self.mean)

    @property
    def n_components(self) -> int:
        return len(self.variances)

    @classmethod
    def fit(
        cls, embeddings: np.ndarray, n_components: int | None = None, eps: float = 1e-6
    ) -> PCAWhitening:
        """Fit on (n, d) embeddings; ``n_components`` defaults to min(n − 1, d)."""
        from sklearn.decomposition import PCA

        x = np.asarray(embeddings, np.float64)
        if x.ndim != 2 or len(x) < 2:
            raise ValueError(
                f"whitening needs at least 2 embeddings as an (n, d) array, got {x.shape}"
            )
        limit = min(len(x) - 1, x.shape[1])
        k = limit if n_components is None else int(n_components)
        if not 1 <= k <= limit:
            raise ValueError(
                f"n_components={k} is not possible with {len(x)} images of dimension {x.shape[1]} "
                f"(at most {limit}); fit on more images or ask for fewer components"
            )
        pca = PCA(n_components=k, svd_solver="full").fit(x)
        return cls(pca.mean_, pca.components_, pca.explained_variance_, eps, len(x))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(n, d) → (n, k) whitened rows (not yet re-normalised)."""
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"whitening expects (n, {self.input_dim}) embeddings, got {x.shape}")
        return ((x - self.mean) @ self.components.T) / np.sqrt(self.variances + self.eps)

    def save(self, path: str | Path) -> Path:
        """Store as .npz (arrays plus a JSON header); ``load`` restores it exactly."""
        return write_npz(
            path,
            {"mean": self.mean, "components": self.components, "variances": self.variances},
            {"eps": self.eps, "fitted_on": self.fitted_on},
            compressed=False,
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> PCAWhitening:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"whitening file not found: {path}")
        z, header = read_npz_header(
            path, {"mean": ("f", 1), "components": ("f", 2), "variances": ("f", 1)}
        )
        try:
            return cls(
                z["mean"], z["components"], z["variances"], header["eps"], header["fitted_on"]
            )
        except KeyError as e:
            raise DamagedFile(f"{path}: unreadable header ({e})") from None
