"""Built-in datasets."""

from .embedded import SPLIT_SEED, builtin_datasets

__all__ = ["SPLIT_SEED", "builtin_datasets"]
