"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes): the embedded default task."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from nasengine.tasks.augment import random_affine
from nasengine.tasks.base import EpochBatches, Split, Task, image_preprocessing, register_task

FRACTIONS = {"train": 0.60, "val": 0.20, "test": 0.20}
SPLIT_SEED = 0


@lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images.astype(np.float32), data.target.astype(np.int64)


@lru_cache(maxsize=1)
def _indices() -> dict[str, np.ndarray]:
    """Stratified 60/20/20 split with a fixed seed: the same on every machine (360 validation images keep
    accuracy differences between subnets above the noise of a tiny split)."""
    from sklearn.model_selection import train_test_split

    _, labels = _raw()
    idx = np.arange(len(labels))
    train, rest = train_test_split(idx, train_size=FRACTIONS["train"], stratify=labels, random_state=SPLIT_SEED)
    val, test = train_test_split(rest, test_size=0.5, stratify=labels[rest], random_state=SPLIT_SEED)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


class Digits(Task):
    name = "digits"
    num_classes = 10
    in_channels = 1
    input_size = (8, 8)
    scale = 1.0 / 16.0  # raw pixel values are 0..16

    @property
    def _stats(self) -> tuple[float, float]:
        images, _ = _raw()
        train = images[_indices()["train"]] * self.scale
        return float(train.mean()), float(train.std())

    @property
    def spec(self) -> dict[str, Any]:
        return {"kind": "named", "name": "digits", "input_shape": [1, 8, 8], "num_classes": 10,
                "split": {"rule": "stratified", "fractions": FRACTIONS, "seed": SPLIT_SEED}}

    @property
    def preprocessing(self) -> dict[str, Any]:
        """The contract (see `image_preprocessing`) with the exact statistics `split` uses: raw 0..16 pixels."""
        mean, std = self._stats
        return image_preprocessing((1, *self.input_size), "sklearn.datasets.load_digits().images (8x8, values 0..16)",
                                   "float32", {"scale": self.scale, "mean": [mean], "std": [std]})

    def split(self, name: str) -> Split:
        indices = _indices()[name]
        images, labels = _raw()
        mean, std = self._stats
        x = torch.from_numpy((images[indices] * self.scale - mean) / std).unsqueeze(1)
        identity = {"dataset": "sklearn digits", "split": name, "seed": SPLIT_SEED, "fractions": FRACTIONS,
                    "n": int(len(indices)), "indices_sha1": hashlib.sha1(indices.tobytes()).hexdigest()}
        return Split(name, x.contiguous(), torch.from_numpy(labels[indices]), identity)

    def train_data(self, batch_size: int, seed: int, augment: bool = True) -> EpochBatches:
        return EpochBatches(self.split("train"), batch_size, seed, random_affine if augment else None)


@register_task("digits")
def digits() -> Task:
    return Digits()
