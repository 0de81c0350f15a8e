"""A task over in-memory image arrays: split rule, normalisation and augmentation recorded as data."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from nasengine.tasks.augment import compose
from nasengine.tasks.base import EpochBatches, Split, Task, image_preprocessing
from nasengine.tasks.readers import DataError, ImageData


@dataclass(frozen=True)
class SplitRule:
    """How splits the files do not provide are carved out of the training files (stratified, seeded).

    `val_fraction`/`test_fraction` are shares of the training files; `max_train` keeps a stratified
    subset of what remains for training (None: all of it).
    """

    val_fraction: float = 0.1
    test_fraction: float = 0.15
    seed: int = 0
    max_train: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ArrayTaskOptions:
    """Everything besides the files that decides a task's inputs (recorded in its spec)."""

    split: SplitRule = field(default_factory=SplitRule)
    augment: tuple[str, ...] = ("affine",)
    image_size: tuple[int, int] | None = None  # image folders: resize to (H, W)

    def with_overrides(self, given: dict[str, Any]) -> "ArrayTaskOptions":
        """A copy with the given fields replaced: val_fraction, test_fraction, split_seed, max_train, augment,
        image_size (as the CLI names them); ValueError for fractions that leave no training data."""
        text_only = sorted({"dev", "max_length", "holdout"} & set(given))
        if text_only:
            raise ValueError(f"--{text_only[0].replace('_', '-')} applies to text data only")
        rule = SplitRule(float(given.get("val_fraction", self.split.val_fraction)),
                         float(given.get("test_fraction", self.split.test_fraction)),
                         int(given.get("split_seed", self.split.seed)), given.get("max_train", self.split.max_train))
        if not 0 < rule.val_fraction < 1 or not 0 <= rule.test_fraction < 1 or \
                rule.val_fraction + rule.test_fraction >= 1:
            raise ValueError("validation and test fractions must lie in (0, 1) and sum to less than 1")
        augment = tuple(given["augment"]) if "augment" in given else self.augment
        compose(augment)  # ValueError naming an unknown augmentation
        size = given.get("image_size", self.image_size)
        return ArrayTaskOptions(rule, augment, tuple(size) if size else None)


def _carve(pool: np.ndarray, labels: np.ndarray, count: int, seed: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Split `pool` (indices) into (rest, carved) with `count` carved indices, stratified by label."""
    from sklearn.model_selection import train_test_split

    if count <= 0:
        return pool, pool[:0]
    if count >= len(pool):
        raise DataError(f"too few samples ({len(pool)}) to carve a {what} split of {count}")
    classes, counts = np.unique(labels[pool], return_counts=True)
    if counts.min() < 2 or not len(classes) <= count <= len(pool) - len(classes):
        raise DataError(f"too few samples to carve a {what} split of {count} from {len(pool)} that keeps every "
                        f"class on both sides: {len(classes)} classes, the smallest with {counts.min()} sample(s) "
                        f"(each class needs 2 or more, and the split one per class); add samples or change "
                        f"--val-fraction / --test-fraction")
    try:
        rest, carved = train_test_split(pool, test_size=count, stratify=labels[pool], random_state=seed)
    except ValueError:
        raise DataError(f"cannot carve a stratified {what} split of {count} from {len(pool)} samples") from None
    return np.sort(rest), np.sort(carved)


def split_indices(data: ImageData, rule: SplitRule) -> dict[str, tuple[str, np.ndarray]]:
    """Per split: (the file split it comes from, sorted indices into it), reproducible from the rule."""
    _, labels = data.splits["train"]
    pool = np.arange(len(labels))
    n = len(pool)
    out: dict[str, tuple[str, np.ndarray]] = {}
    for split, fraction in (("test", rule.test_fraction), ("val", rule.val_fraction)):
        if split in data.splits:
            out[split] = (split, np.arange(len(data.splits[split][1])))
        elif fraction <= 0:
            raise DataError(f"the files define no {split} split, so --{split}-fraction must be positive")
        else:
            pool, carved = _carve(pool, labels, max(1, int(round(fraction * n))), rule.seed, split)
            out[split] = ("train", carved)
    if rule.max_train is not None and rule.max_train < len(pool):
        _, pool = _carve(pool, labels, rule.max_train, rule.seed + 1, "training subset")
    out["train"] = ("train", pool)
    return {k: out[k] for k in ("train", "val", "test")}


def _sha1(indices: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(indices, dtype=np.int64).tobytes()).hexdigest()


def folder_decode(channels: int, size: tuple[int, int]) -> str:
    """How an image folder's files become raw arrays (what `read_image_folder` does), for export contracts."""
    h, w = (int(v) for v in size)
    return (f"PIL.Image.open(file).convert('{'L' if channels == 1 else 'RGB'}').resize(({w}, {h}), "
            f"PIL.Image.BILINEAR) as uint8 (Pillow returns the image as it is when it already has that size)")


class ArrayTask(Task):
    """Image classification over arrays read from files; inputs are (C, H, W) floats, normalised per channel."""

    def __init__(self, name: str, data: ImageData, options: ArrayTaskOptions, source: dict[str, Any],
                 normalize: dict[str, Any] | None = None):
        self.name, self.options, self.source = name, options, source
        self._data = data
        self._indices = split_indices(data, options.split)
        self.augment = compose(options.augment)
        all_labels = np.concatenate([y for _, y in data.splits.values()])
        self.num_classes = len(data.classes) if data.classes else int(all_labels.max()) + 1
        train_labels = data.splits["train"][1][self._indices["train"][1]]
        if len(np.unique(train_labels)) < 2:
            raise DataError(f"{name}: a classification data set needs at least 2 classes, found "
                            f"{len(np.unique(train_labels))}")
        if all_labels.max() >= self.num_classes:
            raise DataError(f"{name}: label {int(all_labels.max())} but only {self.num_classes} classes")
        images = data.splits["train"][0]
        self.in_channels, self.input_size = int(images.shape[3]), (int(images.shape[1]), int(images.shape[2]))
        self.scale = 1.0 / 255.0 if images.dtype == np.uint8 else 1.0
        self.normalize = normalize or self._statistics()
        self._cache: dict[str, Split] = {}

    def _statistics(self) -> dict[str, Any]:
        source, indices = self._indices["train"]
        x = self._data.splits[source][0][indices].astype(np.float64) * self.scale
        mean, std = x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2))
        return {"scale": self.scale, "mean": [round(float(m), 6) for m in mean],
                "std": [round(max(float(s), 1e-6), 6) for s in std]}

    @property
    def spec(self) -> dict[str, Any]:
        return {**self.source, "name": self.name, "input_shape": [self.in_channels, *self.input_size],
                "num_classes": self.num_classes, "classes": list(self._data.classes),
                "split": {**self.options.split.to_dict(),
                          "sizes": {k: int(len(v[1])) for k, v in self._indices.items()},
                          "indices_sha1": {k: _sha1(v[1]) for k, v in self._indices.items()}},
                "augment": list(self.options.augment),
                "image_size": list(self.options.image_size) if self.options.image_size else None,
                "normalize": self.normalize}

    @property
    def preprocessing(self) -> dict[str, Any]:
        """The contract (see `image_preprocessing`): raw images as the reader returns them (uint8 when the files
        hold uint8, scaled by 1/255; floats as they are), and how an image folder's files become such arrays."""
        raw_dtype = "uint8" if self._data.splits["train"][0].dtype == np.uint8 else "float32"
        kind = str(self.source.get("kind", "arrays"))
        return image_preprocessing((self.in_channels, *self.input_size), f"{self.name} images ({kind})", raw_dtype,
                                   self.normalize, self._data.classes or None,
                                   folder_decode(self.in_channels, self.input_size) if kind == "image_folder" else None)

    def split(self, name: str) -> Split:
        if name not in self._cache:
            source, indices = self._indices[name]
            images, labels = self._data.splits[source]
            mean = np.asarray(self.normalize["mean"], dtype=np.float32)
            std = np.asarray(self.normalize["std"], dtype=np.float32)
            x = (images[indices].astype(np.float32) * np.float32(self.normalize["scale"]) - mean) / std
            identity = {"dataset": self.name, "split": name, "from": source, "n": int(len(indices)),
                        "indices_sha1": _sha1(indices), "rule": self.options.split.to_dict()}
            self._cache[name] = Split(name, torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))),
                                      torch.from_numpy(labels[indices]), identity)
        return self._cache[name]

    def train_data(self, batch_size: int, seed: int, augment: bool = True) -> EpochBatches:
        return EpochBatches(self.split("train"), batch_size, seed, self.augment if augment else None)
