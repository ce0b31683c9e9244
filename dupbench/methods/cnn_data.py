"""Feeding images to a network: a torch Dataset over sources, its collate function, device choice.

Images are opened only through ``dupbench.images.load`` inside ``__getitem__``, so decoding and
preprocessing run in DataLoader worker processes, and an unreadable file comes back as a reason
string that the method records as a ``Skipped`` instead of stopping the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dupbench import images
from dupbench.cpus import worker_count
from dupbench.workers import loader_worker_init


def pick_device(device: str = "auto"):
    """ "auto" → the first of cuda, mps, cpu that is available; anything else is passed to torch."""
    import torch

    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class SourceDataset:
    """Index → (index, preprocessed tensor or None, failure reason or None)."""

    def __init__(
        self, sources: Sequence[images.Source], transform: Callable, load_options: dict
    ) -> None:
        self.sources = list(sources)
        self.transform = transform
        self.load_options = dict(load_options)

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, k: int):
        try:
            image = images.load(self.sources[k], **self.load_options)
        except images.ImageError as e:
            return k, None, str(e)
        return k, self.transform(image), None


def collate(items: list) -> tuple[list[int], object, list[tuple[int, str]]]:
    """Stack the good images; pass indices along and the failures aside."""
    import torch

    good = [(k, x) for k, x, _ in items if x is not None]
    failed = [(k, reason) for k, x, reason in items if x is None]
    batch = torch.stack([x for _, x in good]) if good else None
    return [k for k, _ in good], batch, failed


def loader_workers(workers: int | None) -> int:
    """``Method.encode``'s ``workers`` (``cpus.worker_count``) → DataLoader workers (0: in
    process)."""
    n = worker_count(workers)
    return 0 if n == 1 else n


def make_loader(dataset: SourceDataset, batch_size: int, num_workers: int, pin_memory: bool):
    from torch.utils.data import DataLoader

    return DataLoader(
        # a map-style dataset by duck typing: subclassing Dataset would import torch on import
        dataset,  # type: ignore[arg-type]
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        persistent_workers=False,
        worker_init_fn=loader_worker_init(),
    )
