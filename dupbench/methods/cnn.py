"""CNN embeddings for near-duplicate search by cosine similarity (method ``cnn``).

One method, many networks: ``backbone`` picks the network (``cnn_backbones``), ``pooling`` turns its
features into one vector (``cnn_pooling``), optional PCA whitening (``cnn_whitening``) and L2
normalisation follow. Images are decoded in DataLoader workers (``cnn_data``) and run through the
network in batches under ``torch.inference_mode``.

The default backbone, ``efficientnet_lite0``, has ImageNet weights that ship inside a pip package,
so ``find_duplicates(dir, method="cnn")`` works offline. imagededup's CNN is
``get_method("cnn", backbone="mobilenet_v3_small")``: same preprocessing, loading and pooling, so
with the same (torchvision) weights its embeddings equal imagededup's (``normalize=False`` gives
the raw vectors; cosine scores are the same either way).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dupbench import images
from dupbench.distance import DistanceKind
from dupbench.errors import UsageError
from dupbench.methods.base import Method
from dupbench.methods.cnn_pooling import POOLINGS
from dupbench.methods.cnn_whitening import PCAWhitening
from dupbench.methods.registry import METHODS
from dupbench.records import Encodings, Skipped

if TYPE_CHECKING:
    from dupbench.methods.cnn_backbones import Backbone

DTYPES = ("float32", "float16")


@METHODS.register()
class CNN(Method):
    """Embeddings from a pretrained network; duplicates are pairs with cosine similarity ≥ 0.9.

    backbone:    "efficientnet_lite0" (default, offline weights), "mobilenet_v3_small"
                 (imagededup's), "efficientnet_b4", "vit_b_16", or "timm:<model name>".
    weights:     "default" (pretrained, through the library's cache), None (random
                 initialisation) or a local weights file.
    model, transform: your own ``nn.Module`` (batch → feature map, tokens or vectors) and the
                 callable that turns one PIL RGB image into its input tensor; replaces backbone.
    pooling:     "avg" (imagededup) or "gem" (generalised mean with exponent ``gem_p``).
    normalize:   L2-normalise the vectors (cosine similarity becomes a dot product).
    whitening:   None, a ``PCAWhitening``, or the path of one saved by ``PCAWhitening.save``;
                 fit one on a separate image set with ``fit_whitening``.
    dtype:       storage of the codes, "float32" or "float16" (half the memory).
    batch_size, num_workers: DataLoader settings (num_workers keeps torch's meaning, 0 = in this
    process; None: from ``encode(workers=)``).
    device:      "auto" (cuda, then mps, then cpu) or a torch device string.
    draft:       let JPEGs decode at reduced size (1/2, 1/4, 1/8) when still larger than the
                 model's first resize: much faster on large photos, changes pixels slightly.
    input_size:  override the network's input resolution (e.g. small and fast for tests).
    """

    name = "cnn"
    robust_to = "resizing, recompression, colour edits, small crops"
    requires = ("torch", "torchvision")
    extra = "cnn"
    takes_device = True
    kind = "float"
    distance = DistanceKind.COSINE
    default_threshold = 0.9  # imagededup's min_similarity_threshold

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        weights: str | os.PathLike | None = "default",
        pooling: str = "avg",
        gem_p: float = 3.0,
        normalize: bool = True,
        whitening: PCAWhitening | str | os.PathLike | None = None,
        dtype: str = "float32",
        batch_size: int = 32,
        num_workers: int | None = None,
        device: str = "auto",
        draft: bool = False,
        input_size: int | None = None,
        model: Any = None,
        transform: Callable | None = None,
    ) -> None:
        if pooling not in POOLINGS:
            raise UsageError(f"unknown pooling {pooling!r}; choose from {', '.join(POOLINGS)}")
        if dtype not in DTYPES:
            raise UsageError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if batch_size < 1:
            raise UsageError(f"batch_size must be at least 1, got {batch_size}")
        if (model is None) != (transform is None):
            raise UsageError("a custom model needs both model= and transform=")
        if gem_p <= 0:
            raise UsageError(f"gem_p must be positive, got {gem_p}")
        if model is not None:
            backbone = f"custom:{type(model).__name__}"
        if isinstance(whitening, (str, os.PathLike)):
            whitening_param: Any = os.fspath(whitening)
            whitening = PCAWhitening.load(whitening)
        else:
            whitening_param = _describe(whitening)
        super().__init__(
            backbone=backbone,
            weights=weights if weights in (None, "default") else os.fspath(weights),
            pooling=pooling,
            gem_p=float(gem_p),
            normalize=bool(normalize),
            whitening=whitening_param,
            dtype=dtype,
            batch_size=int(batch_size),
            num_workers=num_workers,
            device=device,
            draft=bool(draft),
            input_size=input_size,
        )
        self.whitening: PCAWhitening | None = whitening
        self._custom = (model, transform) if transform is not None else None
        self._backbone: Backbone | None = None
        self._device: Any = None  # a torch.device once built (torch is imported lazily)
        self._dim: int | None = None

    # -- the network, built on first use ----------------------------------------------------
    def _ready(self) -> Backbone:
        if self._backbone is None:
            from dupbench.methods.cnn_backbones import Backbone, build_backbone, import_torch
            from dupbench.methods.cnn_data import pick_device

            import_torch()
            p = self._params
            if self._custom is not None:
                model, transform = self._custom
                size = p["input_size"] or 224
                backbone = Backbone(p["backbone"], model.eval(), transform, (size, size))
            else:
                backbone = build_backbone(p["backbone"], p["weights"], p["input_size"])
            self._device = pick_device(p["device"])
            backbone.module.to(self._device)
            self._backbone = backbone
            self._dim = self._probe_dim(backbone)
            if self.whitening is not None and self.whitening.input_dim != self._dim:
                raise ValueError(
                    f"the whitening was fitted on {self.whitening.input_dim}-dim embeddings but "
                    f"{p['backbone']} gives {self._dim}-dim ones"
                )
        return self._backbone

    def _probe_dim(self, backbone: Backbone) -> int:
        """The pooled feature dimension, from one forward pass over a blank image."""
        from PIL import Image

        w, h = backbone.decode_size
        blank = backbone.transform(Image.new("RGB", (w, h), (128, 128, 128)))
        return self._pooled(blank[None]).shape[1]

    def _pooled(self, batch):
        import torch

        from dupbench.methods.cnn_pooling import pool

        with torch.inference_mode():
            features = self._ready().module(batch.to(self._device, non_blocking=True))
            vectors = pool(features, self._params["pooling"], self._params["gem_p"])
            return vectors.float().cpu().numpy()

    @property
    def size(self) -> int:
        if self.whitening is not None:
            return self.whitening.n_components
        self._ready()
        assert self._dim is not None  # set by _ready
        return self._dim

    @property
    def transform(self) -> Callable:
        """PIL RGB image → the network's input tensor (C, H, W)."""
        return self._ready().transform

    @property
    def load_options(self) -> dict[str, Any]:
        backbone = self._ready()
        options = dict(backbone.load_options)
        if self._params["draft"]:
            options["draft"] = backbone.decode_size
        return options

    # -- encoding ----------------------------------------------------------------------------
    def embed_batch(self, batch) -> np.ndarray:
        """A preprocessed (N, 3, H, W) tensor → (N, size) float32 embeddings."""
        from dupbench.search.cosine import unit_rows

        self._ready()
        vectors = self._pooled(batch)
        if self.whitening is not None:
            vectors = self.whitening.apply(unit_rows(vectors))
        if self._params["normalize"]:
            vectors = unit_rows(vectors)
        return vectors

    def encode_image(self, image) -> np.ndarray:
        return self.embed_batch(self.transform(image)[None])[0].astype(self._params["dtype"])

    def encode(
        self,
        sources: Sequence[images.Source],
        ids: Sequence[str] | None = None,
        *,
        workers: int | None = 1,
        progress: bool = False,
    ) -> Encodings:
        """Encode in batches; unreadable images become ``Skipped`` records, never exceptions.

        workers: DataLoader worker processes that decode and preprocess (``cpus.worker_count``:
        None: one per usable core, 1: in this process), unless the ``num_workers`` parameter is set.
        """
        from tqdm.auto import tqdm

        from dupbench.methods.cnn_data import SourceDataset, loader_workers, make_loader

        sources = list(sources)
        ids = self._ids_for(sources, ids)
        backbone = self._ready()
        n_workers = self._params["num_workers"]
        n_workers = loader_workers(workers) if n_workers is None else int(n_workers)
        dataset = SourceDataset(sources, backbone.transform, self.load_options)
        loader = make_loader(
            dataset, self._params["batch_size"], n_workers, pin_memory=self._device.type == "cuda"
        )
        rows = np.zeros((len(sources), self.size), np.float32)
        ok = np.zeros(len(sources), bool)
        failures: dict[int, str] = {}
        with tqdm(
            total=len(sources),
            desc=f"encode cnn ({self._params['backbone']})",
            unit="img",
            disable=not progress,
        ) as bar:
            for indices, batch, failed in loader:
                if batch is not None:
                    rows[indices] = self.embed_batch(batch)
                    ok[indices] = True
                failures.update(failed)
                bar.update(len(indices) + len(failed))
        kept = np.flatnonzero(ok)
        return self._encodings(
            kept,
            ids,
            rows[kept].astype(self._params["dtype"]),
            [Skipped(images.source_name(sources[k]), failures[k]) for k in sorted(failures)],
        )

    def fit_whitening(
        self,
        sources: Sequence[images.Source],
        n_components: int | None = None,
        *,
        workers: int | None = 1,
        progress: bool = False,
    ) -> PCAWhitening:
        """Fit PCA whitening on a separate image set (not the one to deduplicate) and use it.

        Save it with the run (``method.whitening.save(path)``) and pass the path as
        ``whitening=`` to reproduce the embeddings later.
        """
        from dupbench.search.cosine import unit_rows

        previous, self.whitening = self.whitening, None
        try:
            fit_set = self.encode(sources, workers=workers, progress=progress)
        finally:
            self.whitening = previous
        if len(fit_set) < 2:
            raise ValueError(f"whitening needs at least 2 readable images, got {len(fit_set)}")
        self.whitening = PCAWhitening.fit(unit_rows(fit_set.codes), n_components)
        self._params["whitening"] = _describe(self.whitening)
        return self.whitening


def _describe(whitening: PCAWhitening | None) -> dict | None:
    """A JSON-able record of an in-memory whitening, for Encodings.params."""
    if whitening is None:
        return None
    return {"n_components": whitening.n_components, "fitted_on": whitening.fitted_on}
