"""Data sets on disk as tasks: .npz, IDX and image-folder readers, seeded stratified splits, normalisation,
specs that rebuild identical splits, and refusal when the files changed since a spec was written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nasengine.cli.main import main
from nasengine.errors import UserError
from nasengine.tasks import SPLITS, open_data

from tests.nasengine.task_data import COUNTS, ID_OFFSET, idx_bytes, ids_of, labelled, write_idx_dir, write_image_folder
from tests.nasengine.task_data import plain_npz  # noqa: F401  (a fixture)


# --- .npz ---------------------------------------------------------------------------------------------
def test_npz_without_splits_gets_stratified_seeded_splits(plain_npz: Path) -> None:
    task = open_data(str(plain_npz))
    _, y = labelled()
    n = len(y)
    ids = {s: ids_of(task, s) for s in SPLITS}
    assert {s: len(v) for s, v in ids.items()} == {"train": 300, "val": 40, "test": 60}
    assert task.spec["split"]["sizes"] == {"train": 300, "val": 40, "test": 60}
    # disjoint, covering every sample, each in a fixed (sorted) order, labels as in the file
    assert sorted(np.concatenate(list(ids.values())).tolist()) == list(range(n))
    for split, v in ids.items():
        assert np.all(np.diff(v) > 0), split
        assert np.array_equal(task.split(split).labels.numpy(), y[v]), split
    # class proportions kept in every split (stratified), within one sample per class
    for split, v in ids.items():
        counts = np.bincount(y[v], minlength=len(COUNTS))
        expected = np.array(COUNTS) * len(v) / n
        assert np.all(np.abs(counts - expected) <= 1), (split, counts, expected)
    # the same rule gives the same indices on a rebuild; another seed other indices of the same sizes
    again = open_data(str(plain_npz))
    assert all(np.array_equal(ids_of(again, s), ids[s]) for s in SPLITS)
    assert again.spec["split"]["indices_sha1"] == task.spec["split"]["indices_sha1"]
    other = open_data(str(plain_npz), {"split_seed": 7})
    assert not np.array_equal(ids_of(other, "val"), ids["val"])
    assert len(ids_of(other, "val")) == 40 and other.spec["split"]["seed"] == 7


def test_split_fractions_are_shares_of_the_training_files(plain_npz: Path) -> None:
    task = open_data(str(plain_npz), {"val_fraction": 0.25, "test_fraction": 0.2})
    assert task.spec["split"]["sizes"] == {"train": 220, "val": 100, "test": 80}


def test_max_train_keeps_a_stratified_subset_and_the_same_val_and_test(plain_npz: Path) -> None:
    full = open_data(str(plain_npz))
    small = open_data(str(plain_npz), {"max_train": 100})
    _, y = labelled()
    train = ids_of(small, "train")
    assert len(train) == 100 and small.spec["split"]["max_train"] == 100
    assert set(train) <= set(ids_of(full, "train"))
    counts = np.bincount(y[train], minlength=len(COUNTS))
    assert np.all(np.abs(counts - np.array(COUNTS) / 4) <= 1), counts
    for split in ("val", "test"):
        assert np.array_equal(ids_of(small, split), ids_of(full, split)), split
    assert np.array_equal(ids_of(open_data(str(plain_npz), {"max_train": 100}), "train"), train)
    # max_train at least the training pool: everything is kept
    assert len(open_data(str(plain_npz), {"max_train": 10_000}).split("train")) == 300


def test_npz_splits_from_the_files_are_used_as_they_are(tmp_path: Path) -> None:
    x, y = labelled((20, 20))
    xv, yv = labelled((5, 3), seed=1, offset=ID_OFFSET["val"])
    xt, yt = labelled((4, 7), seed=2, offset=ID_OFFSET["test"])
    path = tmp_path / "given.npz"
    np.savez(path, x=x, y=y, x_val=xv, y_val=yv, x_test=xt, y_test=yt)
    task = open_data(str(path), {"val_fraction": 0.5, "test_fraction": 0.3, "split_seed": 3})
    assert task.spec["split"]["sizes"] == {"train": 40, "val": 8, "test": 11}
    assert np.array_equal(ids_of(task, "train"), np.arange(40))
    assert np.array_equal(ids_of(task, "val"), ID_OFFSET["val"] + np.arange(8))
    assert np.array_equal(ids_of(task, "test"), ID_OFFSET["test"] + np.arange(11))
    assert np.array_equal(task.split("val").labels.numpy(), yv)
    assert np.array_equal(task.split("test").labels.numpy(), yt)
    assert task.split("test").identity["from"] == "test"


def test_npz_with_only_a_test_split_carves_val_from_train(tmp_path: Path) -> None:
    x, y = labelled((30, 30))
    xt, yt = labelled((5, 5), seed=2, offset=ID_OFFSET["test"])
    path = tmp_path / "test_only.npz"
    np.savez(path, x=x, y=y, x_test=xt, y_test=yt)
    task = open_data(str(path))
    assert task.spec["split"]["sizes"] == {"train": 54, "val": 6, "test": 10}
    assert np.array_equal(ids_of(task, "test"), ID_OFFSET["test"] + np.arange(10))
    train, val = ids_of(task, "train"), ids_of(task, "val")
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(60))
    assert np.bincount(y[val]).tolist() == [3, 3]
    assert task.split("val").identity["from"] == "train"


@pytest.mark.parametrize("dtype, scale", [(np.uint8, 1 / 255), (np.float32, 1.0), (np.float64, 1.0)])
def test_uint8_images_are_scaled_by_1_over_255_and_floats_are_not(tmp_path: Path, dtype, scale) -> None:
    rng = np.random.default_rng(0)
    y = np.arange(100) % 2
    raw = rng.integers(100, 200, (100, 4, 4)).astype(dtype)
    np.savez(tmp_path / "d.npz", x=raw, y=y)
    task = open_data(str(tmp_path / "d.npz"))
    norm = task.spec["normalize"]
    assert norm["scale"] == pytest.approx(scale)
    train = task.split("train")
    recovered = train.inputs.double() * norm["std"][0] + norm["mean"][0]
    # inputs are (raw * scale - mean) / std; the training images' mean is around 150 * scale
    assert norm["mean"][0] == pytest.approx(149.5 * scale, rel=0.03)
    assert float(recovered.min()) >= 100 * scale - 1e-4 and float(recovered.max()) <= 199 * scale + 1e-4
    assert train.inputs.dtype == torch.float32


def test_grayscale_and_rgb_arrays_give_1_and_3_channels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.arange(120) % 3
    gray = rng.integers(0, 256, (120, 6, 10), dtype=np.uint8)
    np.savez(tmp_path / "gray.npz", x=gray, y=y)
    task = open_data(str(tmp_path / "gray.npz"))
    assert (task.in_channels, task.input_size, task.num_classes) == (1, (6, 10), 3)
    assert task.spec["input_shape"] == [1, 6, 10]
    assert tuple(task.split("val").inputs.shape[1:]) == (1, 6, 10)

    # (N, H, W, 3) channel-last in the file, (C, H, W) for the model; each channel has its own level
    rgb = np.stack([rng.integers(0, 20, (120, 6, 10)), rng.integers(100, 120, (120, 6, 10)),
                    rng.integers(230, 256, (120, 6, 10))], -1).astype(np.uint8)
    np.savez(tmp_path / "rgb.npz", x=rgb, y=y)
    task = open_data(str(tmp_path / "rgb.npz"))
    assert (task.in_channels, task.input_size) == (3, (6, 10))
    assert task.spec["input_shape"] == [3, 6, 10]
    assert tuple(task.split("train").inputs.shape[1:]) == (3, 6, 10)
    means = np.array(task.spec["normalize"]["mean"]) * 255
    assert len(means) == 3 and abs(means[0] - 9.5) < 1 and abs(means[1] - 109.5) < 1 and abs(means[2] - 242.5) < 1


@pytest.mark.parametrize("channels", [1, 3])
def test_normalisation_statistics_come_from_the_training_split(tmp_path: Path, channels: int) -> None:
    rng = np.random.default_rng(1)
    shape = (300, 6, 6) if channels == 1 else (300, 6, 6, 3)
    levels = np.array([20.0, -5.0, 3.0])[:channels]
    spreads = np.array([4.0, 0.5, 10.0])[:channels]
    x = (rng.normal(0, 1, shape).reshape(300, 6, 6, channels) * spreads + levels).reshape(shape).astype(np.float32)
    y = np.arange(300) % 3
    x_val = (x[:30] + 1000.0).astype(np.float32)  # far off: must not enter the statistics
    np.savez(tmp_path / "n.npz", x=x, y=y, x_val=x_val, y_val=y[:30])
    task = open_data(str(tmp_path / "n.npz"))
    norm = task.spec["normalize"]
    assert len(norm["mean"]) == len(norm["std"]) == channels
    train = task.split("train").inputs.double()
    per_channel_mean = train.mean(dim=(0, 2, 3))
    per_channel_std = train.std(dim=(0, 2, 3), unbiased=False)
    assert torch.allclose(per_channel_mean, torch.zeros(channels, dtype=torch.float64), atol=1e-3)
    assert torch.allclose(per_channel_std, torch.ones(channels, dtype=torch.float64), atol=1e-3)
    assert float(task.split("val").inputs.mean()) > 10  # normalised with the train statistics, not its own
    # carved splits too: the statistics are those of the training part only, not of all files
    np.savez(tmp_path / "c.npz", x=np.concatenate([x, x_val]), y=np.concatenate([y, y[:30]]))
    carved = open_data(str(tmp_path / "c.npz"))
    inputs = carved.split("train").inputs.double()
    assert torch.allclose(inputs.mean(dim=(0, 2, 3)), torch.zeros(channels, dtype=torch.float64), atol=1e-3)
    assert torch.allclose(inputs.std(dim=(0, 2, 3), unbiased=False), torch.ones(channels, dtype=torch.float64),
                          atol=1e-3)


# --- IDX ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "plain"])
@pytest.mark.parametrize("test_prefix", ["t10k", "test"])
def test_idx_folder_with_train_and_test_files(tmp_path: Path, gz: bool, test_prefix: str) -> None:
    arrays = write_idx_dir(tmp_path / "idx", gz, prefixes=("train", test_prefix))
    task = open_data(str(tmp_path / "idx"))
    spec = task.spec
    assert spec["kind"] == "idx" and spec["input_shape"] == [1, 5, 7] and spec["num_classes"] == 3
    suffix = ".gz" if gz else ""
    assert set(spec["files"]) == {f"{p}-{k}-idx{d}-ubyte{suffix}" for p in ("train", test_prefix)
                                  for k, d in (("images", 3), ("labels", 1))}
    assert spec["split"]["sizes"] == {"train": 81, "val": 9, "test": 12}
    assert spec["normalize"]["scale"] == pytest.approx(1 / 255)
    # the test files are the test split, in file order; pixels and labels read back exactly
    x_test, y_test = arrays[test_prefix]
    test = task.split("test")
    norm = spec["normalize"]
    raw = (test.inputs.double() * norm["std"][0] + norm["mean"][0]) * 255
    assert np.array_equal(np.rint(raw.numpy()[:, 0]).astype(np.uint8), x_test)
    assert np.array_equal(test.labels.numpy(), y_test.astype(np.int64))
    assert np.bincount(task.split("val").labels.numpy()).tolist() == [3, 3, 3]


def test_idx_folder_with_train_files_only_carves_test(tmp_path: Path) -> None:
    write_idx_dir(tmp_path / "idx", gz=True, prefixes=("train",), counts=(40, 40))
    task = open_data(str(tmp_path / "idx"))
    assert task.spec["split"]["sizes"] == {"train": 60, "val": 8, "test": 12}
    assert task.split("test").identity["from"] == "train"


def test_idx_dims_are_big_endian_and_read_as_written(tmp_path: Path) -> None:
    # 300 images: a size that needs more than one byte, so a little-endian reader would see 0x2c010000
    directory = tmp_path / "big"
    directory.mkdir()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (300, 3, 2), dtype=np.uint8)
    y = (np.arange(300) % 2).astype(np.uint8)
    (directory / "train-images-idx3-ubyte").write_bytes(idx_bytes(x))
    (directory / "train-labels-idx1-ubyte").write_bytes(idx_bytes(y))
    assert (directory / "train-images-idx3-ubyte").read_bytes()[:8] == bytes.fromhex("00000803" "0000012c")
    task = open_data(str(directory))
    assert task.spec["input_shape"] == [1, 3, 2] and sum(task.spec["split"]["sizes"].values()) == 300


# --- image folders ------------------------------------------------------------------------------------
def test_grayscale_image_folder_gives_one_channel_and_class_names(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "pets", {"dog": 200, "cat": 50})
    task = open_data(str(tmp_path / "pets"))
    spec = task.spec
    assert spec["kind"] == "image_folder" and spec["name"] == "pets"
    assert spec["classes"] == ["cat", "dog"] and task.num_classes == 2
    assert (task.in_channels, task.input_size) == (1, (6, 10))
    assert len(spec["files"]) == 24 and {Path(f).suffix for f in spec["files"]} == {".png", ".jpg"}
    assert spec["split"]["sizes"] == {"train": 18, "val": 2, "test": 4}
    norm = spec["normalize"]
    for split in SPLITS:
        s = task.split(split)
        level = (s.inputs.double() * norm["std"][0] + norm["mean"][0]).mean(dim=(1, 2, 3)) * 255
        expected = torch.where(s.labels == 0, 50.0, 200.0).double()  # cat (label 0) was written at 50
        assert torch.allclose(level, expected, atol=2.0), split


def test_image_folder_with_an_rgb_image_gives_three_channels(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "mixed", {"a": 40, "b": 160}, rgb_classes=("b",))
    task = open_data(str(tmp_path / "mixed"))
    assert (task.in_channels, task.input_size) == (3, (6, 10))
    norm = task.spec["normalize"]
    assert len(norm["mean"]) == 3
    x = task.split("train")
    raw = (x.inputs.double() * torch.tensor(norm["std"]).view(1, 3, 1, 1)
           + torch.tensor(norm["mean"]).view(1, 3, 1, 1)) * 255
    gray = raw[x.labels == 0].mean(dim=(2, 3))
    color = raw[x.labels == 1].mean(dim=(2, 3))
    assert torch.allclose(gray, torch.full_like(gray, 40.0), atol=2.0)  # grey images: equal channels
    assert torch.allclose(color, torch.tensor([160.0, 95.0, 128.0]).double().expand_as(color), atol=3.0)


def test_image_folder_with_different_sizes_needs_image_size(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "sizes", {"a": 30, "b": 220}, sizes={"a": (6, 10), "b": (9, 9)})
    with pytest.raises(UserError, match="--image-size"):
        open_data(str(tmp_path / "sizes"))
    task = open_data(str(tmp_path / "sizes"), {"image_size": (4, 12)})
    assert (task.in_channels, task.input_size) == (1, (4, 12))
    assert task.spec["image_size"] == [4, 12] and task.spec["input_shape"] == [1, 4, 12]
    assert all(tuple(task.split(s).inputs.shape[1:]) == (1, 4, 12) for s in SPLITS)
    # resizing a constant image keeps its level
    x = task.split("train")
    norm = task.spec["normalize"]
    level = (x.inputs.double() * norm["std"][0] + norm["mean"][0]).mean(dim=(1, 2, 3)) * 255
    assert torch.allclose(level, torch.where(x.labels == 0, 30.0, 220.0).double(), atol=2.0)


def test_data_command_reads_an_image_folder_with_image_size(tmp_path: Path, capsys) -> None:
    write_image_folder(tmp_path / "sizes", {"a": 30, "b": 220}, sizes={"a": (6, 10), "b": (9, 9)})
    assert main(["data", str(tmp_path / "sizes"), "--image-size", "8x5", "--json"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["input_shape"] == [1, 8, 5] and spec["classes"] == ["a", "b"] and spec["image_size"] == [8, 5]
    assert main(["data", str(tmp_path / "sizes")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nasengine: error:") and "--image-size" in err[0]


