"""Fashion-MNIST (70,000 28x28 grayscale clothing images, 10 classes): the realistic built-in benchmark.

Read from the IDX files of Debian's package `dataset-fashion-mnist`, or `--data DIR` with the same files.
"""

from __future__ import annotations

from pathlib import Path

from nasengine.errors import UserError
from nasengine.tasks.arrays import ArrayTask, ArrayTaskOptions, SplitRule
from nasengine.tasks.base import register_task
from nasengine.tasks.readers import find_idx_files

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
DEFAULT_OPTIONS = ArrayTaskOptions(SplitRule(val_fraction=1 / 12, test_fraction=0.0), ("affine", "hflip"))


@register_task("fashion-mnist")
def fashion_mnist(options: ArrayTaskOptions = DEFAULT_OPTIONS) -> ArrayTask:
    """60,000 training images (5,000 held out for validation, stratified) and the official 10,000 test images."""
    from nasengine.tasks.spec import DATA_KINDS, read_path

    if not find_idx_files(DEFAULT_DIR).keys() >= {"train", "test"}:
        raise UserError(f"fashion-mnist: no IDX files under {DEFAULT_DIR}; install them with "
                        f"`apt-get install -y dataset-fashion-mnist`, or pass --data DIR holding "
                        f"train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
                        f"t10k-labels-idx1-ubyte.gz")
    return read_path(DATA_KINDS.get("idx"), DEFAULT_DIR, "fashion-mnist", options, classes=CLASSES)
