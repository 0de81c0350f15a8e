"""Task specs: rebuilt splits, refused changes, split options and the built-in data sets."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from tests.requirements import unavailable
import torch

from nasengine.errors import UserError
from nasengine.tasks import ArrayTaskOptions, get_task, open_data, task_from_spec
from nasengine.tasks.fashion_mnist import DEFAULT_DIR as FASHION_DIR

from tests.nasengine.task_data import assert_same_splits, idx_bytes, labelled, write_idx_dir, write_image_folder
from tests.nasengine.task_data import plain_npz  # noqa: F401  (a fixture)


# --- specs --------------------------------------------------------------------------------------------
@pytest.fixture(params=["npz", "idx", "image_folder"])
def any_data(request, tmp_path: Path) -> tuple[str, Path, dict]:
    """A data set of each kind, with non-default options, plus the file in it to tamper with."""
    if request.param == "npz":
        x, y = labelled()
        np.savez(tmp_path / "d.npz", x=x, y=y)
        return "npz", tmp_path / "d.npz", {"max_train": 150, "split_seed": 4, "augment": ()}
    if request.param == "idx":
        write_idx_dir(tmp_path / "idx", gz=True)
        return "idx", tmp_path / "idx", {"val_fraction": 0.2, "augment": ("affine", "hflip")}
    write_image_folder(tmp_path / "imgs", {"a": 30, "b": 220}, sizes={"a": (6, 10), "b": (9, 9)})
    return "image_folder", tmp_path / "imgs", {"image_size": (5, 5), "test_fraction": 0.25}


def test_spec_round_trips_to_identical_splits(any_data) -> None:
    kind, path, options = any_data
    task = open_data(str(path), options)
    spec = json.loads(json.dumps(task.spec))  # as stored in config.json
    assert spec["kind"] == kind and spec["path"] == str(path.resolve())
    rebuilt = task_from_spec(spec)
    assert_same_splits(task, rebuilt)
    assert rebuilt.spec == task.spec
    assert rebuilt.preprocessing == task.preprocessing
    assert (rebuilt.in_channels, rebuilt.num_classes, rebuilt.input_size) == \
        (task.in_channels, task.num_classes, task.input_size)


def _tamper_target(kind: str, path: Path) -> Path:
    if kind == "npz":
        return path
    if kind == "idx":
        return path / "train-labels-idx1-ubyte.gz"
    return path / "b" / "003.png"


def test_a_changed_file_is_refused_by_name(any_data) -> None:
    kind, path, options = any_data
    spec = json.loads(json.dumps(open_data(str(path), options).spec))
    target = _tamper_target(kind, path)
    if kind == "npz":
        x, y = labelled()
        x[5, 2, 2] += 1.0
        np.savez(target, x=x, y=y)
    elif kind == "idx":
        y = np.frombuffer(gzip.decompress(target.read_bytes()), np.uint8, offset=8).copy()
        y[[0, 1]] = y[[1, 0]] if y[0] != y[1] else (y[[0, 1]] + 1) % 3
        target.write_bytes(gzip.compress(idx_bytes(y)))
    else:
        from PIL import Image

        Image.fromarray(np.full((9, 9), 219, np.uint8), "L").save(target)
    with pytest.raises(UserError) as info:
        task_from_spec(spec)
    message = str(info.value)
    assert str(target.resolve()) in message and "changed" in message
    assert "\n" not in message


def test_a_removed_file_is_refused_by_name(any_data) -> None:
    kind, path, options = any_data
    spec = json.loads(json.dumps(open_data(str(path), options).spec))
    if kind == "idx":  # without test files the folder is still readable: the test split would be carved
        target = path / "t10k-images-idx3-ubyte.gz"
        (path / "t10k-labels-idx1-ubyte.gz").unlink()
    else:
        target = _tamper_target(kind, path)
    target.unlink()
    with pytest.raises(UserError) as info:
        task_from_spec(spec)
    message = str(info.value)
    assert str(target.resolve()) in message or (kind == "npz" and str(path) in message)
    assert "missing" in message


def test_an_added_file_is_refused_by_name(tmp_path: Path) -> None:
    from PIL import Image

    write_image_folder(tmp_path / "imgs", {"a": 30, "b": 220})
    spec = json.loads(json.dumps(open_data(str(tmp_path / "imgs")).spec))
    added = tmp_path / "imgs" / "a" / "zzz_new.png"
    Image.fromarray(np.full((6, 10), 30, np.uint8), "L").save(added)
    with pytest.raises(UserError) as info:
        task_from_spec(spec)
    assert str(added.resolve()) in str(info.value) and "new" in str(info.value)
    # an IDX folder that gains test files
    write_idx_dir(tmp_path / "idx", gz=False, prefixes=("train",))
    spec = json.loads(json.dumps(open_data(str(tmp_path / "idx")).spec))
    write_idx_dir(tmp_path / "idx", gz=False, prefixes=("train", "t10k"))
    with pytest.raises(UserError, match="t10k-(images|labels)-idx[13]-ubyte is new"):
        task_from_spec(spec)


def test_unchanged_files_touched_again_still_rebuild(plain_npz: Path) -> None:
    import os

    spec = json.loads(json.dumps(open_data(str(plain_npz)).spec))
    os.utime(plain_npz, (1_000_000, 1_000_000))  # same bytes, other time stamps: content decides
    task_from_spec(spec)


def test_a_spec_with_changed_split_rule_is_refused(plain_npz: Path) -> None:
    spec = json.loads(json.dumps(open_data(str(plain_npz)).spec))
    spec["split"]["seed"] = 1  # the recorded index hashes no longer match what this rule gives
    with pytest.raises(UserError, match="splits differ"):
        task_from_spec(spec)


# --- options ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("given", [{"val_fraction": 0.0}, {"val_fraction": 1.0}, {"test_fraction": -0.1},
                                   {"val_fraction": 0.5, "test_fraction": 0.5}])
def test_fractions_that_leave_no_training_data_are_refused(given, plain_npz: Path) -> None:
    with pytest.raises(ValueError):
        ArrayTaskOptions().with_overrides(given)
    with pytest.raises(UserError):
        open_data(str(plain_npz), given)


def test_with_overrides_replaces_only_the_given_fields() -> None:
    base = ArrayTaskOptions()
    changed = base.with_overrides({"split_seed": 5, "image_size": [3, 4], "augment": []})
    assert changed.split.seed == 5 and changed.image_size == (3, 4) and changed.augment == ()
    assert changed.split.val_fraction == base.split.val_fraction and changed.split.max_train is None
    assert base.with_overrides({}) == base


# --- built-in data sets -------------------------------------------------------------------------------
def test_old_configs_naming_digits_still_rebuild() -> None:
    old = task_from_spec("digits")  # configs written before tasks were specs
    assert old.name == "digits" and old.num_classes == 10 and old.in_channels == 1
    assert_same_splits(old, get_task("digits"))
    assert_same_splits(task_from_spec(json.loads(json.dumps(get_task("digits").spec))), old)
    with pytest.raises(UserError, match="takes no data options"):
        open_data("digits", {"max_train": 10})


def test_an_unknown_named_data_set_in_a_spec_asks_for_its_plugin() -> None:
    with pytest.raises(UserError, match="--plugin"):
        task_from_spec({"kind": "named", "name": "no-such-data"})
    with pytest.raises(UserError, match="plugin"):
        task_from_spec({"kind": "tfrecord", "path": "/nowhere"})


@pytest.fixture(scope="module")
def fashion():
    if not {"train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"} <= \
            {p.name for p in FASHION_DIR.glob("*")}:
        unavailable(f"Fashion-MNIST IDX files not installed under {FASHION_DIR} "
                    f"(apt-get install -y dataset-fashion-mnist)")
    return open_data("fashion-mnist")


def test_fashion_mnist_splits(fashion) -> None:
    spec = fashion.spec
    assert spec["split"]["sizes"] == {"train": 55_000, "val": 5_000, "test": 10_000}
    assert fashion.num_classes == 10 and len(spec["classes"]) == 10 and spec["classes"][0] == "t-shirt/top"
    assert spec["input_shape"] == [1, 28, 28] and (fashion.in_channels, fashion.input_size) == (1, (28, 28))
    assert spec["kind"] == "idx" and spec["name"] == "fashion-mnist"
    assert np.bincount(fashion.split("val").labels.numpy()).tolist() == [500] * 10
    assert np.bincount(fashion.split("test").labels.numpy()).tolist() == [1000] * 10
    assert tuple(fashion.split("test").inputs.shape) == (10_000, 1, 28, 28)
    assert fashion.split("test").identity["from"] == "test"
    rebuilt = task_from_spec(json.loads(json.dumps(spec)))
    for split in ("val", "test"):
        assert torch.equal(rebuilt.split(split).inputs, fashion.split(split).inputs)
    assert len(open_data("fashion-mnist", {"max_train": 1000}).split("train")) == 1000
