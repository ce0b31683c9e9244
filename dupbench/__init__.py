"""dupbench: find exact and near-duplicate images, and measure how well each method does it."""

__version__ = "0.1.0"
