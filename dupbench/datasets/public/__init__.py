"""Adapters for public duplicate / near-duplicate benchmarks (download, extract, parse)."""

from __future__ import annotations

from dupbench.datasets.public.base import Parsed, PublicSet, load_public
from dupbench.datasets.public.californiand import SPEC as CALIFORNIA_ND
from dupbench.datasets.public.cifar import CIFAR10, CIFAR100
from dupbench.datasets.public.copydays import SPEC as COPYDAYS
from dupbench.datasets.public.disc21 import SPEC as DISC21
from dupbench.datasets.public.holidays import SPEC as HOLIDAYS
from dupbench.datasets.public.ukbench import SPEC as UKBENCH

PUBLIC_SETS: dict[str, PublicSet] = {
    spec.name: spec
    for spec in (UKBENCH, CALIFORNIA_ND, COPYDAYS, HOLIDAYS, DISC21, CIFAR10, CIFAR100)
}

__all__ = ["PUBLIC_SETS", "Parsed", "PublicSet", "load_public"]
