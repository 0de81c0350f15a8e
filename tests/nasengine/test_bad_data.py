"""Bad data and bad plugins through the CLI: one line on stderr, exit code 2, no traceback, nothing written."""

from __future__ import annotations

import gzip
import io
import json
import struct
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from nasengine.cli.main import main
from tests.conftest import TINY

TINY_SETS = [f"--set={k}={json.dumps(v)}" for k, v in {**TINY, "resolutions": [8]}.items()]
TRAIN_FAST = ["--epochs", "1", "--batch-size", "32", "--quiet", *TINY_SETS]


def png_bytes(value: int, size=(8, 8), mode: str = "L") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new(mode, size[::-1], value if mode == "L" else (value, value, value)).save(buffer, "PNG")
    return buffer.getvalue()


def image_folder(root: Path, classes=("a", "b"), per_class: int = 10) -> Path:
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            (root / name / f"{i}.png").write_bytes(png_bytes(40 + 150 * c + i))
    return root


def tiny_arrays(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` 8x8 uint8 images of 2 classes that differ in brightness (learnable in one epoch)."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.int64)
    x = rng.integers(0, 100, (n, 8, 8)).astype(np.uint8) + (100 * y)[:, None, None].astype(np.uint8)
    return x, y


# --- builders of bad inputs: each returns the --data argument --------------------------------------------
def empty_folder(tmp: Path) -> str:
    (tmp / "empty").mkdir()
    return str(tmp / "empty")


def single_class(tmp: Path) -> str:
    return str(image_folder(tmp / "one", classes=("only",)))


def lengths_differ(tmp: Path) -> str:
    x, y = tiny_arrays()
    np.savez(tmp / "d.npz", x=x, y=y[:-3])
    return str(tmp / "d.npz")


def val_lengths_differ(tmp: Path) -> str:
    x, y = tiny_arrays()
    np.savez(tmp / "d.npz", x=x, y=y, x_val=x[:10], y_val=y[:9])
    return str(tmp / "d.npz")


def non_image_file(tmp: Path) -> str:
    root = image_folder(tmp / "imgs")
    (root / "b" / "notes.txt").write_text("labels were checked by hand")
    return str(root)


def tiny_image_folder(tmp: Path) -> str:
    return str(image_folder(tmp / "tiny", per_class=1))


def corrupt_png(tmp: Path) -> str:
    root = image_folder(tmp / "imgs")
    (root / "a" / "broken.png").write_bytes(png_bytes(7)[:40])  # PNG signature, then cut off
    return str(root)


def not_an_image_at_all(tmp: Path) -> str:
    root = image_folder(tmp / "imgs")
    (root / "a" / "fake.jpg").write_bytes(b"this is text, not a JPEG")
    return str(root)


def idx_wrong_magic(tmp: Path) -> str:
    root = tmp / "idx"
    root.mkdir()
    x, y = tiny_arrays(60)
    images = bytes.fromhex("12345678") + struct.pack(">3I", *x.shape) + x.tobytes()  # not 0x00000803
    labels = bytes.fromhex("00000801") + struct.pack(">I", len(y)) + y.astype(np.uint8).tobytes()
    (root / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
    (root / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    return str(root)


def idx_truncated(tmp: Path) -> str:
    root = tmp / "idx"
    root.mkdir()
    x, y = tiny_arrays(60)
    images = bytes.fromhex("00000803") + struct.pack(">3I", *x.shape) + x.tobytes()[:-5]
    labels = bytes.fromhex("00000801") + struct.pack(">I", len(y)) + y.astype(np.uint8).tobytes()
    (root / "train-images-idx3-ubyte").write_bytes(images)
    (root / "train-labels-idx1-ubyte").write_bytes(labels)
    return str(root)


def npz_without_x(tmp: Path) -> str:
    x, y = tiny_arrays()
    np.savez(tmp / "d.npz", images=x, y=y)
    return str(tmp / "d.npz")


class _Sentinel:
    """Unpickling this creates a directory: proof that a reader unpickled the file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.mkdir, (self.marker,)


def npz_pickled(tmp: Path) -> str:
    x = np.empty((3,), dtype=object)
    x[:] = [_Sentinel(str(tmp / "UNPICKLED")) for _ in range(3)]
    np.savez(tmp / "d.npz", x=x, y=np.arange(3))
    return str(tmp / "d.npz")


def npz_with_nan(tmp: Path) -> str:
    x, y = tiny_arrays()
    x = x.astype(np.float32)
    x[3, 4, 5] = np.nan
    np.savez(tmp / "d.npz", x=x, y=y)
    return str(tmp / "d.npz")


def npz_negative_labels(tmp: Path) -> str:
    x, y = tiny_arrays()
    np.savez(tmp / "d.npz", x=x, y=y - 1)
    return str(tmp / "d.npz")


def npz_one_class(tmp: Path) -> str:
    x, y = tiny_arrays()
    np.savez(tmp / "d.npz", x=x, y=np.zeros_like(y))
    return str(tmp / "d.npz")


def npz_bad_channels(tmp: Path) -> str:
    x, y = tiny_arrays()
    np.savez(tmp / "d.npz", x=np.repeat(x[..., None], 5, axis=-1), y=y)
    return str(tmp / "d.npz")


def not_a_zip(tmp: Path) -> str:
    (tmp / "d.npz").write_bytes(b"PK\x03\x04 but nothing after")
    return str(tmp / "d.npz")


def missing_path(tmp: Path) -> str:
    return str(tmp / "no" / "such" / "data.npz")


def unknown_layout(tmp: Path) -> str:
    (tmp / "loose").mkdir()
    (tmp / "loose" / "a.png").write_bytes(png_bytes(3))
    return str(tmp / "loose")


CASES: list[tuple[Callable[[Path], str], list[str]]] = [
    (empty_folder, ["empty"]),
    (single_class, ["at least 2 classes", "found 1"]),
    (lengths_differ, ["200 images but 197 labels", "d.npz"]),
    (val_lengths_differ, ["10 images but 9 labels", "y_val"]),
    (tiny_image_folder, ["too few samples", "each class needs 2 or more", "--val-fraction"]),
    (corrupt_png, ["broken.png", "not a readable image"]),
    (not_an_image_at_all, ["fake.jpg", "not a readable image"]),
    (idx_wrong_magic, ["train-images-idx3-ubyte.gz", "magic"]),
    (idx_truncated, ["train-images-idx3-ubyte", "data bytes"]),
    (npz_without_x, ["'x'", "images, y"]),
    (npz_pickled, ["pickle", "d.npz"]),
    (npz_with_nan, ["NaN"]),
    (npz_negative_labels, ["non-negative"]),
    (npz_one_class, ["at least 2 classes"]),
    (npz_bad_channels, ["C 1 or 3", "(200, 8, 8, 5)"]),
    (not_a_zip, ["not a readable .npz"]),
    (missing_path, ["no such file or directory"]),
    (unknown_layout, ["not an .npz file"]),
]


def assert_one_line_error(capsys, code: int, fragments: list[str]) -> str:
    captured = capsys.readouterr()
    assert code == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("nasengine: error: "), lines[0]
    assert "Traceback" not in captured.err + captured.out
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def test_files_that_are_not_images_are_skipped_and_counted(tmp_path: Path, capsys) -> None:
    """A README or notes.txt beside the images is left out, and `nasengine data` says so (it was fatal)."""
    folder = non_image_file(tmp_path)
    (Path(folder) / "README.md").write_text("where the images came from")
    assert main(["data", folder]) == 0
    out = capsys.readouterr().out
    assert "skipped 2 file(s) that are not PNG/JPEG images: b/notes.txt, README.md" in out
    assert "train" in out and "least populated" not in out


def test_a_broken_pipe_ends_quietly(tmp_path: Path) -> None:
    """`nasengine data ... --json | head -1`: no BrokenPipeError traceback when the reader stops early."""
    import subprocess
    import sys

    result = subprocess.run(f"{sys.executable} -m nasengine data digits --json | head -1", shell=True,
                            capture_output=True, text=True)
    assert result.stdout.strip() == "{" and result.stderr == ""


@pytest.mark.parametrize("make, fragments", CASES, ids=[make.__name__ for make, _ in CASES])
def test_bad_data_stops_train_before_anything_is_written(make, fragments, tmp_path: Path, capsys) -> None:
    data = make(tmp_path)
    out = tmp_path / "sn"
    code = main(["train", "ofa_mbv3", "--data", data, "--out", str(out), *TRAIN_FAST])
    assert_one_line_error(capsys, code, fragments)
    assert not out.exists()
    assert not (tmp_path / "UNPICKLED").exists()


@pytest.mark.parametrize("make, fragments", [(single_class, ["at least 2 classes"]), (npz_pickled, ["pickle"]),
                                             (idx_wrong_magic, ["magic"])])
def test_the_data_command_reports_the_same_problems(make, fragments, tmp_path: Path, capsys) -> None:
    assert_one_line_error(capsys, main(["data", make(tmp_path)]), fragments)
    assert not (tmp_path / "UNPICKLED").exists()


@pytest.mark.parametrize("options, fragments", [
    (["--val-fraction", "0.6", "--test-fraction", "0.5"], ["fractions"]),
    (["--test-fraction", "0"], ["no test split", "--test-fraction"]),  # no test split in the files either
    (["--augment", "warp"], ["warp", "affine"]),
], ids=["fractions-over-1", "zero-test-fraction", "unknown-augmentation"])
def test_bad_data_options_are_one_line_errors(options: list[str], fragments: list[str], tmp_path: Path,
                                              capsys) -> None:
    x, y = tiny_arrays()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    out = tmp_path / "sn"
    code = main(["train", "ofa_mbv3", "--data", str(tmp_path / "d.npz"), "--out", str(out), *options, *TRAIN_FAST])
    assert_one_line_error(capsys, code, fragments)
    assert not out.exists()


def test_a_family_with_no_default_data_needs_data(tmp_path: Path, capsys) -> None:
    out = tmp_path / "sn"
    assert_one_line_error(capsys, main(["train", "ofa_mbv3", "--out", str(out), *TRAIN_FAST]), ["--data"])
    assert not out.exists()


# --- plugins that cannot be loaded ------------------------------------------------------------------------
def test_a_plugin_that_raises_on_import(tmp_path: Path, capsys) -> None:
    plugin = tmp_path / "exploding_plugin.py"
    plugin.write_text("from nasengine import supernets\n\n"
                      "raise RuntimeError('the plugin author forgot something\\nsecond line')\n")
    x, y = tiny_arrays()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    out = tmp_path / "sn"
    for argv in (["--plugin", str(plugin), "train", "ofa_mbv3"], ["train", "ofa_mbv3", "--plugin", str(plugin)]):
        code = main([*argv, "--data", str(tmp_path / "d.npz"), "--out", str(out), *TRAIN_FAST])
        line = assert_one_line_error(capsys, code, ["exploding_plugin.py", "RuntimeError",
                                                    "the plugin author forgot something"])
        assert "second line" not in line
        assert not out.exists()


def test_a_plugin_with_a_syntax_error(tmp_path: Path, capsys) -> None:
    plugin = tmp_path / "typo_plugin.py"
    plugin.write_text("def broken(:\n    pass\n")
    out = tmp_path / "sn"
    code = main(["--plugin", str(plugin), "train", "ofa_mbv3", "--data", "digits", "--out", str(out), *TRAIN_FAST])
    assert_one_line_error(capsys, code, ["typo_plugin.py", "SyntaxError"])
    assert not out.exists()


def test_a_plugin_that_registers_an_existing_supernet_name(tmp_path: Path, capsys) -> None:
    plugin = tmp_path / "clashing_plugin.py"
    plugin.write_text("from nasengine import supernets\n\n\n@supernets.register('ofa_mbv3')\ndef mine(**kwargs):\n"
                      "    raise AssertionError('never built')\n")
    x, y = tiny_arrays()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    out = tmp_path / "sn"
    code = main(["--plugin", str(plugin), "train", "ofa_mbv3", "--data", str(tmp_path / "d.npz"), "--out", str(out),
                 *TRAIN_FAST])
    assert_one_line_error(capsys, code, ["clashing_plugin.py", "ofa_mbv3", "registered twice"])
    assert not out.exists()
    from nasengine import supernets

    assert supernets.entry("ofa_mbv3").module == "nasengine.supernets.ofa_mbv3"  # the built-in family is untouched


WEIGHTED_OP_PLUGIN = """
import torch
from torch import nn

from nasengine import supernets
from nasengine.kernels.describe import OpSpec
from nasengine.kernels.static import register_static
from nasengine.supernets.ofa_mbv3 import OFAConfig, OFAMobileNetV3


class PluginGain(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(features))

    def forward(self, x):
        return x * self.weight


register_static("PluginGain", PluginGain, lambda m: {"features": m.weight.numel()},
                describe=lambda m, x, y: OpSpec("scale", m.weight.numel(), m.weight.numel()){rule})


class Gained(OFAMobileNetV3):
    def _export_active(self):
        return nn.Sequential(super()._export_active(), PluginGain(self.num_classes))


@supernets.register("gained_mbv3", task="digits", config=OFAConfig)
def gained(**kwargs):
    return Gained(OFAConfig(**kwargs))
"""


def test_a_plugin_op_with_weights_but_no_quantization_rule_is_refused_before_training(tmp_path: Path, capsys) -> None:
    """Fake quantization would skip the op silently: the family is refused before anything is trained or written."""
    plugin = tmp_path / "gain_plugin.py"
    plugin.write_text(WEIGHTED_OP_PLUGIN.replace("{rule}", ""))
    out = tmp_path / "sn"
    code = main(["--plugin", str(plugin), "train", "gained_mbv3", "--out", str(out), *TRAIN_FAST])
    assert_one_line_error(capsys, code, ["gained_mbv3", "'PluginGain' holds weights", "quantization rule",
                                         "quantize="])
    assert not out.exists()


def test_a_missing_plugin_file_or_module(tmp_path: Path, capsys) -> None:
    out = tmp_path / "sn"
    code = main(["--plugin", str(tmp_path / "nowhere.py"), "train", "ofa_mbv3_digits", "--out", str(out)])
    assert_one_line_error(capsys, code, ["nowhere.py", "does not exist"])
    code = main(["--plugin", "no_such_module_for_nasengine", "train", "ofa_mbv3_digits", "--out", str(out)])
    assert_one_line_error(capsys, code, ["no_such_module_for_nasengine", "cannot be found"])
    assert not out.exists()


# --- data changed after training ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_on_npz(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny supernet trained for one epoch on 200 8x8 images in `data.npz` (a few seconds)."""
    root = tmp_path_factory.mktemp("changed")
    x, y = tiny_arrays()
    np.savez(root / "data.npz", x=x, y=y)
    assert main(["train", "ofa_mbv3", "--data", str(root / "data.npz"), "--out", str(root / "sn"),
                 *TRAIN_FAST]) == 0
    return root / "data.npz", root / "sn"


@pytest.fixture
def restore(trained_on_npz):
    data, _ = trained_on_npz
    original = data.read_bytes()
    yield
    data.write_bytes(original)


def test_training_records_the_data_as_a_spec(trained_on_npz) -> None:
    import hashlib

    data, sn = trained_on_npz
    task = json.loads((sn / "config.json").read_text())["task"]
    assert task["kind"] == "npz" and task["path"] == str(data.resolve())
    assert task["files"] == {"data.npz": hashlib.sha256(data.read_bytes()).hexdigest()}
    assert task["input_shape"] == [1, 8, 8] and task["num_classes"] == 2
    assert task["split"]["sizes"] == {"train": 150, "val": 20, "test": 30}


def test_search_refuses_changed_data(trained_on_npz, restore, tmp_path: Path, capsys) -> None:
    data, sn = trained_on_npz
    x, y = tiny_arrays()
    x[0, 0, 0] ^= 1  # one pixel
    np.savez(data, x=x, y=y)
    out = tmp_path / "run"
    code = main(["search", str(sn), "--out", str(out), "--evals", "4", "--quiet"])
    line = assert_one_line_error(capsys, code, [f"{data.resolve()} is changed"])
    assert line.count(data.name) == 1  # the file's path once (it was printed as d.npz/d.npz)
    assert not out.exists()


def test_search_refuses_missing_data(trained_on_npz, restore, tmp_path: Path, capsys) -> None:
    data, sn = trained_on_npz
    data.unlink()
    out = tmp_path / "run"
    code = main(["search", str(sn), "--out", str(out), "--evals", "4", "--quiet"])
    assert_one_line_error(capsys, code, [str(data.resolve()), "missing"])
    assert not out.exists()


def test_search_on_unchanged_data_runs(trained_on_npz, tmp_path: Path, capsys) -> None:
    _, sn = trained_on_npz
    out = tmp_path / "run"
    assert main(["search", str(sn), "--out", str(out), "--evals", "4", "--quiet"]) == 0, capsys.readouterr().err
    assert (out / "results.csv").is_file()
