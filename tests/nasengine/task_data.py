"""Small data sets written to disk in each format the engine reads (shared by the task tests)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from nasengine.tasks import SPLITS

COUNTS = (200, 100, 60, 40)  # imbalanced on purpose: stratification must keep these proportions
ID_OFFSET = {"train": 0, "val": 10_000, "test": 20_000}


# --- writers ------------------------------------------------------------------------------------------
def labelled(counts=COUNTS, shape=(5, 7), seed=0, offset=0) -> tuple[np.ndarray, np.ndarray]:
    """Float images whose pixel (0, 0) (channel 0) holds the sample's id (`offset + index`); shuffled labels."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat(np.arange(len(counts)), counts)).astype(np.int64)
    x = rng.normal(0.0, 1.0, (len(y), *shape)).astype(np.float32)
    ids = offset + np.arange(len(y), dtype=np.float32)
    if x.ndim == 3:
        x[:, 0, 0] = ids
    else:
        x[:, 0, 0, 0] = ids
    return x, y


def ids_of(task, split: str) -> np.ndarray:
    """The ids (see `labelled`) of a split's samples, undoing the recorded normalisation."""
    norm = task.spec["normalize"]
    v = task.split(split).inputs[:, 0, 0, 0].double() * norm["std"][0] + norm["mean"][0]
    return np.rint(v.numpy() / norm["scale"]).astype(np.int64)


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: magic 0x000008DD (DD = number of dims), big-endian sizes, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx_dir(directory: Path, gz: bool, prefixes=("train", "t10k"), shape=(5, 7),
                  counts=(30, 30, 30)) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, prefix in enumerate(prefixes):
        rng = np.random.default_rng(i)
        n = sum(counts) if prefix == "train" else 12
        y = rng.permutation(np.arange(n) % len(counts)).astype(np.uint8)
        x = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
        for name, array in ((f"{prefix}-images-idx3-ubyte", x), (f"{prefix}-labels-idx1-ubyte", y)):
            data = idx_bytes(array)
            if gz:
                (directory / (name + ".gz")).write_bytes(gzip.compress(data))
            else:
                (directory / name).write_bytes(data)
        out[prefix] = (x, y)
    return out


def write_image_folder(root: Path, classes: dict[str, int], per_class: int = 12, size=(6, 10),
                       rgb_classes: tuple[str, ...] = (), sizes: dict[str, tuple[int, int]] | None = None) -> None:
    """Constant-valued images, alternately PNG and JPEG, one folder per class (value = the class's entry)."""
    from PIL import Image

    for name, value in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        h, w = (sizes or {}).get(name, size)
        for i in range(per_class):
            if name in rgb_classes:
                image = Image.fromarray(np.stack([np.full((h, w), value, np.uint8),
                                                  np.full((h, w), 255 - value, np.uint8),
                                                  np.full((h, w), 128, np.uint8)], -1), "RGB")
            else:
                image = Image.fromarray(np.full((h, w), value, np.uint8), "L")
            if i % 2:
                image.save(root / name / f"{i:03d}.png")
            else:
                image.save(root / name / f"{i:03d}.jpg", quality=95)


def assert_same_splits(a, b) -> None:
    for split in SPLITS:
        sa, sb = a.split(split), b.split(split)
        assert torch.equal(sa.inputs, sb.inputs), split
        assert torch.equal(sa.labels, sb.labels), split
        assert sa.identity == sb.identity, split


@pytest.fixture
def plain_npz(tmp_path: Path) -> Path:
    path = tmp_path / "plain.npz"
    x, y = labelled()
    np.savez(path, x=x, y=y)
    return path


