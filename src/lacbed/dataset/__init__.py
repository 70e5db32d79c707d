"""Datasets of (projected potential, LACBED pattern) pairs: storage, splits and the Dask build."""

from lacbed.dataset.splits import SPLIT_FRACTIONS, SPLIT_NAMES, assign_splits, split_of_group
from lacbed.dataset.store import Dataset, DatasetError, DatasetWriter, open_dataset

__all__ = [
    "SPLIT_FRACTIONS",
    "SPLIT_NAMES",
    "Dataset",
    "DatasetError",
    "DatasetWriter",
    "assign_splits",
    "open_dataset",
    "split_of_group",
]
