"""Readers of labelled image data on disk: `.npz` arrays, MNIST-style IDX files and class-per-folder images.

Each returns `ImageData`: uint8 or float32 images (N, H, W, C), int64 labels, the splits the files define,
and the files it read (hashed into the task spec). Bad files raise `DataError` with a one-line reason.
"""

from __future__ import annotations

import gzip
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A data set that cannot be used as given (message names the file and the problem)."""


@dataclass
class ImageData:
    """Images (N, H, W, C) and labels per split the files provide ("train" always; "val", "test" optional)."""

    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    files: list[Path]
    classes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # files of an image folder that are not images (left out)


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
NPZ_SPLITS = {"train": ("x", "y"), "val": ("x_val", "y_val"), "test": ("x_test", "y_test")}


def _images(array: np.ndarray, where: str) -> np.ndarray:
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3) or min(array.shape[1:3]) < 1:
        raise DataError(f"{where}: images must be (N, H, W) or (N, H, W, C) with C 1 or 3, got shape "
                        f"{tuple(array.shape)}")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise DataError(f"{where}: images must be numeric, got dtype {array.dtype}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise DataError(f"{where}: images contain NaN or infinite values")
    return array


def _labels(array: np.ndarray, n: int, where: str) -> np.ndarray:
    if array.ndim != 1:
        raise DataError(f"{where}: labels must be one-dimensional, got shape {tuple(array.shape)}")
    if len(array) != n:
        raise DataError(f"{where}: {n} images but {len(array)} labels")
    if not np.issubdtype(array.dtype, np.integer):
        if not np.issubdtype(array.dtype, np.floating) or not np.all(np.mod(array, 1) == 0):
            raise DataError(f"{where}: labels must be integers, got dtype {array.dtype}")
    labels = array.astype(np.int64)
    if n and labels.min() < 0:
        raise DataError(f"{where}: labels must be non-negative class indices")
    return labels


def read_npz(path: Path) -> ImageData:
    """`x` (N, H, W[, C]) and `y` (N,), optionally `x_val`/`y_val` and `x_test`/`y_test`; never unpickles."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz archive ({exc})") from None
    with archive:
        keys = set(archive.files)
        if "x" not in keys or "y" not in keys:
            raise DataError(f"{path}: an .npz data set needs arrays 'x' and 'y' "
                            f"(found: {', '.join(sorted(keys)) or 'none'})")
        splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for split, (xk, yk) in NPZ_SPLITS.items():
            if (xk in keys) != (yk in keys):
                raise DataError(f"{path}: '{xk}' and '{yk}' must be given together")
            if xk not in keys:
                continue
            try:
                x, y = archive[xk], archive[yk]
            except ValueError as exc:  # object arrays would need pickle
                raise DataError(f"{path}: cannot read '{xk}'/'{yk}' without pickle ({exc})") from None
            images = _images(x, f"{path}:{xk}")
            splits[split] = (images, _labels(y, len(images), f"{path}:{yk}"))
    shapes = {tuple(x.shape[1:]) for x, _ in splits.values()}
    if len(shapes) > 1:
        raise DataError(f"{path}: splits have different image shapes {sorted(shapes)}")
    return ImageData(splits, [path])


# --- IDX (MNIST / Fashion-MNIST) ----------------------------------------------------------------------
IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
             0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
IDX_PREFIXES = {"train": ("train",), "test": ("t10k", "test")}


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (gzipped or not): magic 0x0000TTDD, DD big-endian dimension sizes, then the data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES or raw[3] == 0:
        raise DataError(f"{path}: not an IDX file (wrong magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(IDX_TYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{path}: IDX header promises {expected} data bytes, file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def find_idx_files(directory: Path) -> dict[str, tuple[Path, Path]]:
    """The (images, labels) file pair per split in `directory` (`train-*` and `t10k-*`/`test-*`, .gz or not)."""
    found: dict[str, tuple[Path, Path]] = {}
    for split, prefixes in IDX_PREFIXES.items():
        for prefix in prefixes:
            images = _first_existing(directory, f"{prefix}-images-idx3-ubyte")
            labels = _first_existing(directory, f"{prefix}-labels-idx1-ubyte")
            if images and labels:
                found[split] = (images, labels)
                break
    return found


def _first_existing(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def read_idx_dir(directory: Path) -> ImageData:
    pairs = find_idx_files(directory)
    if "train" not in pairs:
        raise DataError(f"{directory}: needs train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]")
    splits = {}
    for split, (image_file, label_file) in pairs.items():
        images = read_idx(image_file)
        if images.ndim != 3:
            raise DataError(f"{image_file}: image IDX files hold (N, H, W) arrays, got {images.ndim} dimensions")
        labels = read_idx(label_file)
        splits[split] = (_images(images, str(image_file)), _labels(labels, len(images), str(label_file)))
    return ImageData(splits, [p for pair in pairs.values() for p in pair])


# --- class-per-folder images ----------------------------------------------------------------------------
def list_image_folder(directory: Path) -> tuple[list[str], list[tuple[Path, int]], list[str]]:
    """Class names (sorted sub-folder names), (file, class index) pairs, and the files left out because they are no
    PNG or JPEG images (a README, notes.txt), relative to `directory`."""
    classes = sorted(p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    samples: list[tuple[Path, int]] = []
    skipped: list[str] = []
    for index, name in enumerate(classes):
        for path in sorted((directory / name).rglob("*")):
            if path.name.startswith(".") or path.is_dir():
                continue
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append(str(path.relative_to(directory)))
                continue
            samples.append((path, index))
    skipped += sorted(p.name for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
    return classes, samples, skipped


def read_image_folder(directory: Path, size: tuple[int, int] | None) -> ImageData:
    """Images resized to `size` (H, W) with Pillow (bilinear); all grayscale -> 1 channel, else RGB."""
    from PIL import Image, UnidentifiedImageError

    classes, samples, skipped = list_image_folder(directory)
    if not samples:
        raise DataError(f"{directory}: no images found (expected one sub-folder of PNG/JPEG images per class)")
    headers = []  # first pass: mode and size from each file's header, nothing decoded
    for path, _ in samples:
        try:
            with Image.open(path) as image:
                headers.append((image.mode, (image.height, image.width)))
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise DataError(f"{path}: not a readable image ({exc})") from None
    gray = all(mode in ("1", "L", "I;16", "I", "F") for mode, _ in headers)
    sizes = {hw for _, hw in headers}
    if size is None:
        if len(sizes) > 1:
            raise DataError(f"{directory}: images have {len(sizes)} different sizes; choose one with --image-size HxW")
        size = next(iter(sizes))
    h, w = size
    arrays = []  # second pass: decode, convert and resize one image at a time
    for path, _ in samples:
        try:
            with Image.open(path) as image:
                arrays.append(np.asarray(image.convert("L" if gray else "RGB").resize((w, h), Image.BILINEAR),
                                         dtype=np.uint8))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise DataError(f"{path}: not a readable image ({exc})") from None
    x = _images(np.stack(arrays), str(directory))
    y = np.array([label for _, label in samples], dtype=np.int64)
    return ImageData({"train": (x, y)}, [path for path, _ in samples], classes, skipped)
