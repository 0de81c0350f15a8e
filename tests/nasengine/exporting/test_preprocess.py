"""Exports run on raw samples: for every built-in data kind a tiny supernet is trained, searched and exported, and a
fresh interpreter predicts on the original uint8 images (or strings) with torch, with onnxruntime and through
model.raw.onnx; the raw path must reproduce the engine's own preprocessed split and its predictions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import nasengine
from nasengine import supernets
from nasengine.exporting.exporter import ExportRequest, export
from nasengine.exporting.preprocess import export_preprocessing, normalize_images, read_preprocessing
from nasengine.exporting.raw_graph import RAW_GRAPH, raw_graph
from nasengine.kernels.inputs import apply_input_transform, as_args, image_input
from nasengine.searching.runner import SearchRequest, search
from nasengine.tasks import task_from_spec
from nasengine.tasks.arrays import split_indices
from nasengine.tasks.readers import read_image_folder, read_npz
from nasengine.training.run import TrainRequest, train
from tests.conftest import TINY
from tests.text_data import write_sentiment_tsv, write_tiny_checkpoint

FASHION = Path("/usr/share/datasets/fashion-mnist")
KINDS = ("digits", "fashion-mnist", "npz_hw", "npz_hwc", "image_folder", "text")
RESOLUTION = {"digits": 12, "fashion-mnist": 16, "npz_hw": 16, "npz_hwc": 12, "image_folder": 8}  # all resize
MARGIN = 1e-4  # labels are compared where the engine's two best logits differ by more than this

FRESH = r"""
import json, sys
import numpy as np
import nasengine

exp, raw_path, out = sys.argv[1:4]
text = raw_path.endswith(".json")
raw = json.load(open(raw_path)) if text else np.load(raw_path, allow_pickle=False)
res = {}
runs = [("torch", "torch", None), ("ort", "onnxruntime", None)] + ([] if text else [("graph", "onnxruntime", "raw")])
for name, backend, graph in runs:
    predictor = nasengine.load_predictor(exp, backend=backend, graph=graph)
    res[name + "_labels"] = predictor.predict(raw)
    res[name + "_logits"] = predictor.logits(raw)
    res[name + "_proba"] = predictor.predict_proba(raw)
    res[name + "_single"] = np.asarray([predictor.predict(raw[0])])
inputs = nasengine.preprocess(exp, raw)
if text:
    res.update(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
else:
    import onnxruntime as ort
    import torch

    res["inputs"] = inputs
    res["inputs_torch"] = nasengine.preprocess(exp, torch.from_numpy(np.ascontiguousarray(raw))).numpy()
    res["list_labels"] = nasengine.load_predictor(exp).predict(list(raw[:3]))
    session = ort.InferenceSession(exp + "/model.raw.onnx", providers=["CPUExecutionProvider"])  # as a user would
    nhwc = raw if raw.ndim == 4 else raw[..., None]
    res["user_logits"] = session.run(None, {"raw": nhwc if nhwc.dtype == np.uint8 else nhwc.astype(np.float32)})[0]
res["supernets_imported"] = np.asarray(any(k.startswith("nasengine.supernets") for k in sys.modules))
np.savez(out, **res)
"""


@dataclass
class Case:
    """An export, raw samples of its test split, and what the engine computes on that split itself."""

    kind: str
    exp: Path
    raw: Any  # np.ndarray of raw images, or a list of strings
    engine_inputs: Any  # the engine's preprocessed (and resized) split inputs
    engine_logits: np.ndarray
    engine_labels: np.ndarray  # class names when the data names them, else indices


# --- data of each kind -----------------------------------------------------------------------------------------
def _images(rng: np.random.Generator, n: int, shape: tuple[int, ...], classes: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 noise whose brightness follows the label (learnable enough; any value 0..255 occurs)."""
    y = np.arange(n) % classes
    rng.shuffle(y)
    base = 40 + 50 * y.reshape(-1, *([1] * len(shape)))
    return np.clip(base + rng.normal(0, 40, (n, *shape)), 0, 255).astype(np.uint8), y.astype(np.int64)


def _prepare(kind: str, root: Path) -> tuple[dict[str, Any], Any]:
    """(TrainRequest arguments, raw test samples getter) for a data kind written under `root`."""
    rng = np.random.default_rng(0)
    if kind == "digits":
        return {"supernet": "ofa_mbv3_digits"}, _digits_raw
    if kind == "fashion-mnist":
        if not FASHION.is_dir():
            pytest.skip(f"{FASHION} is missing (apt-get install -y dataset-fashion-mnist)")
        return {"supernet": "ofa_mbv3", "data": "fashion-mnist",
                "data_options": {"max_train": 200, "val_fraction": 0.005}}, _fashion_raw
    if kind in ("npz_hw", "npz_hwc"):
        x, y = _images(rng, 200, (12, 12) if kind == "npz_hw" else (10, 10, 3), 4)
        np.savez(root / f"{kind}.npz", x=x, y=y)
        return {"supernet": "ofa_mbv3", "data": str(root / f"{kind}.npz")}, lambda task: _npz_raw(task, x)
    if kind == "image_folder":
        from PIL import Image

        x, y = _images(rng, 160, (11, 9, 3), 4)
        for i, (image, label) in enumerate(zip(x, y)):
            (root / "folder" / f"class{label}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(image, "RGB").save(root / "folder" / f"class{label}" / f"{i:03d}.png")
        return {"supernet": "ofa_mbv3", "data": str(root / "folder")}, _folder_raw
    ckpt = write_tiny_checkpoint(root / "ckpt")
    train_tsv, dev = write_sentiment_tsv(root / "train.tsv", 160), write_sentiment_tsv(root / "dev.tsv", 40, seed=1)
    return {"supernet": "bert", "data": str(train_tsv), "checkpoint": ckpt,
            "data_options": {"dev": str(dev), "max_length": 12}}, lambda task: _dev_texts(dev)


def _digits_raw(task: Any) -> np.ndarray:
    """The original 8x8 images (floats 0..16, as scikit-learn gives them) of the digits test split."""
    from sklearn.datasets import load_digits

    from nasengine.tasks.digits import _indices

    return load_digits().images[_indices()["test"]]


def _fashion_raw(task: Any) -> np.ndarray:
    """The first 300 official test images, uint8 28x28 as the IDX file holds them."""
    from nasengine.tasks.readers import find_idx_files, read_idx

    return read_idx(find_idx_files(FASHION)["test"][0])[:300]


def _npz_raw(task: Any, x: np.ndarray) -> np.ndarray:
    source, index = split_indices(read_npz(Path(task.spec["path"])), task.options.split)["test"]
    assert source == "train"
    return x[index]


def _folder_raw(task: Any) -> np.ndarray:
    """The test split's PNG files, decoded by Pillow as a user would (uint8 HxWx3)."""
    from PIL import Image

    data = read_image_folder(Path(task.spec["path"]), None)  # its files in sample order
    _, index = split_indices(data, task.options.split)["test"]
    return np.stack([np.asarray(Image.open(data.files[i])) for i in index])


def _dev_texts(dev: Path) -> list[str]:
    return [line.split("\t", 1)[1] for line in dev.read_text().splitlines()[1:]]


# --- fixtures: one trained, searched and exported supernet per kind; one fresh interpreter per export --------------
@pytest.fixture(scope="module", params=KINDS)
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Case:
    kind = request.param
    root = tmp_path_factory.mktemp(kind.replace("-", "_"))
    args, raw_of = _prepare(kind, root)
    train(TrainRequest(out=root / "sn", epochs=1, batch_size=32, progress=False,
                       overrides={} if kind == "text" else dict(TINY), **args))
    search(SearchRequest(root / "sn", root / "run", evals=2, strategy="random", objectives=("error", "params"),
                         progress=False))
    arch = None
    if kind in RESOLUTION:  # a resolution other than the images' own: the resize step is exercised
        arch = {**supernets.load_supernet(root / "sn")[0].space.max(), "resolution": RESOLUTION[kind]}
    export(ExportRequest(root / "run", root / "exp", arch=arch))
    config = json.loads((root / "exp" / "config.json").read_text())
    task = task_from_spec(config["task"])
    raw = raw_of(task)
    split = task.split("test").subset(slice(0, len(raw)))
    inputs = split.inputs if kind == "text" else apply_input_transform(split.inputs, config["input_transform"])
    with torch.no_grad():
        logits = nasengine.load_subnet(root / "exp")(*as_args(inputs)).numpy()
    classes = config["preprocessing"]["classes"]
    labels = np.asarray(classes)[logits.argmax(1)] if classes else logits.argmax(1)
    return Case(kind, root / "exp", raw, inputs, logits, labels)


@pytest.fixture(scope="module")
def fresh(case: Case) -> dict[str, np.ndarray]:
    """What a fresh interpreter (no supernet code) computes from the raw samples and the export alone."""
    raw_file = case.exp.parent / ("raw.json" if case.kind == "text" else "raw.npy")
    if case.kind == "text":
        raw_file.write_text(json.dumps(case.raw))
    else:
        np.save(raw_file, case.raw)
    out = case.exp.parent / "fresh.npz"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", FRESH, str(case.exp), str(raw_file), str(out)], check=True, env=env,
                   capture_output=True, text=True)
    with np.load(out, allow_pickle=False) as data:
        return dict(data)


def _decided(case: Case) -> np.ndarray:
    """Samples whose engine prediction is not a near-tie (float noise between backends cannot flip them)."""
    top = np.sort(case.engine_logits, axis=1)
    return top[:, -1] - top[:, -2] > MARGIN


# --- the raw path on every kind --------------------------------------------------------------------------------------
def test_raw_samples_give_the_engines_own_inputs(case: Case, fresh: dict[str, np.ndarray]) -> None:
    if case.kind == "text":
        for name in ("input_ids", "attention_mask"):
            assert np.array_equal(fresh[name], case.engine_inputs[name].numpy()), name
        return
    expected = case.engine_inputs.numpy()
    assert fresh["inputs"].shape == expected.shape and fresh["inputs"].dtype == np.float32
    assert np.abs(fresh["inputs"] - expected).max() <= 1e-5
    assert np.abs(fresh["inputs_torch"] - expected).max() <= 1e-5


def test_raw_predictions_match_the_engine_in_torch_and_onnxruntime(case: Case, fresh: dict[str, np.ndarray]) -> None:
    decided = _decided(case)
    assert decided.mean() > 0.8  # the comparison covers almost every sample
    assert not fresh["supernets_imported"]
    for name in ("torch", "ort") + (() if case.kind == "text" else ("graph",)):
        assert len(fresh[f"{name}_labels"]) == len(case.engine_labels), name
        assert np.array_equal(fresh[f"{name}_labels"][decided], case.engine_labels[decided]), name
        np.testing.assert_allclose(fresh[f"{name}_logits"], case.engine_logits, atol=1e-4, err_msg=name)
        proba = fresh[f"{name}_proba"]
        assert proba.shape == case.engine_logits.shape and np.allclose(proba.sum(1), 1, atol=1e-5)
        if decided[0]:
            assert fresh[f"{name}_single"][0] == case.engine_labels[0], name  # one sample in, one label out
    if case.kind != "text":
        np.testing.assert_allclose(fresh["user_logits"], case.engine_logits, atol=1e-4)  # model.raw.onnx directly
        assert np.array_equal(fresh["list_labels"][decided[:3]], case.engine_labels[:3][decided[:3]])


def test_every_export_records_one_versioned_contract(case: Case) -> None:
    config = json.loads((case.exp / "config.json").read_text())
    manifest = json.loads((case.exp / "manifest.json").read_text())
    contract = config["preprocessing"]
    assert manifest["preprocessing"] == contract and read_preprocessing(case.exp) == contract
    assert contract["schema"] == "nasengine-preprocessing" and contract["version"] == 1
    if case.kind == "text":
        assert contract["kind"] == "text" and (case.exp / contract["tokenizer"]).is_file()
        assert [(i["name"], i["dtype"], i["shape"]) for i in contract["inputs"]] == [
            ("input_ids", "int64", [12]), ("attention_mask", "int64", [12])]
        assert contract["max_length"] == 12 and contract["classes"] == ["0", "1"]
        assert not (case.exp / RAW_GRAPH).exists()
        return
    channels = 3 if case.kind in ("npz_hwc", "image_folder") else 1
    assert contract["kind"] == "image" and contract["channels"] == channels == contract["raw"]["channels"]
    assert len(contract["mean"]) == len(contract["std"]) == channels  # lists for every kind, digits included
    r = RESOLUTION[case.kind]
    assert contract["resize"]["size"] == [r, r] and contract["resize"]["align_corners"] is False
    assert contract["inputs"] == [{"name": "input", "dtype": "float32", "shape": [channels, r, r], "layout": "NCHW"}]
    assert contract["raw_graph"]["file"] == RAW_GRAPH and (case.exp / RAW_GRAPH).is_file()
    assert contract["raw_graph"]["max_abs_error"] <= 1e-4
    assert contract["scale"] == (1 / 16 if case.kind == "digits" else 1 / 255)
    assert (contract["classes"] is None) == (case.kind in ("digits", "npz_hw", "npz_hwc"))
    if case.kind == "image_folder":
        assert contract["classes"] == ["class0", "class1", "class2", "class3"] and "PIL" in contract["decode"]


def test_exports_without_the_contract_still_predict(case: Case, tmp_path: Path) -> None:
    """An export written before the contract (config.json without it, the old free-form manifest entry) gets it
    derived from its task spec, and predicts the same."""
    old = tmp_path / "old"
    shutil.copytree(case.exp, old)
    config = json.loads((old / "config.json").read_text())
    new = config.pop("preprocessing")
    (old / "config.json").write_text(json.dumps(config))
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["preprocessing"] = {"input": "images", "then": "bilinear resize to the subnet's resolution"}
    (old / "manifest.json").write_text(json.dumps(manifest))
    (old / RAW_GRAPH).unlink(missing_ok=True)
    derived = read_preprocessing(old)
    assert "derived" in derived
    assert {k: v for k, v in derived.items() if k not in ("derived", "raw_graph")} == \
        {k: v for k, v in new.items() if k != "raw_graph"}
    raw = case.raw[:8]
    labels = nasengine.load_predictor(old, backend="onnxruntime").predict(raw)
    decided = _decided(case)[:8]
    assert np.array_equal(labels[decided], case.engine_labels[:8][decided])


def test_raw_inputs_are_checked_with_one_line_errors(case: Case) -> None:
    predictor = nasengine.load_predictor(case.exp)
    if case.kind == "text":
        for bad in ([1, 2], [], None):
            with pytest.raises(ValueError, match="a string or a non-empty list of strings") as info:
                predictor.predict(bad)
            assert "\n" not in str(info.value)
        return
    spec = predictor.preprocessing["raw"]
    h, w, c = spec["height"], spec["width"], spec["channels"]
    for bad in (np.zeros((h + 1, w), np.uint8), np.zeros((2, h, w, c + 1), np.uint8), np.zeros((2, 5, c, h, w)),
                np.zeros((h, w, 2), np.uint8)):
        with pytest.raises(ValueError, match=rf"raw images must have shape .*\(N, {h}, {w}, {c}\).*got shape") as info:
            predictor.predict(bad)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="uint8 or float"):
        predictor.predict(np.zeros((2, h, w, c), bool))
    with pytest.raises(ValueError, match="NaN"):
        predictor.predict(np.full((2, h, w, c), np.nan))
    with pytest.raises(ValueError, match="backend must be one of torch, onnxruntime"):
        nasengine.load_predictor(case.exp, backend="tensorflow")


def test_every_raw_layout_gives_the_same_predictions(case: Case) -> None:
    if case.kind not in ("digits", "npz_hwc"):
        pytest.skip("layouts are checked on one gray and one colour export")
    predictor = nasengine.load_predictor(case.exp)
    raw = np.asarray(case.raw[:6])
    nhwc = raw if raw.ndim == 4 else raw[..., None]
    expected = predictor.predict(nhwc)
    layouts = [nhwc.transpose(0, 3, 1, 2), torch.from_numpy(np.ascontiguousarray(nhwc)), list(nhwc)]
    if raw.ndim == 3:
        layouts += [raw, list(raw), raw.astype(np.uint8)]  # digits: whole values 0..16 as uint8 too
    for layout in layouts:
        assert np.array_equal(predictor.predict(layout), expected)
    assert [predictor.predict(image) for image in raw] == list(expected)  # HW or HWC: one label each


# --- the contract and the ONNX pre-processing graph without training ------------------------------------------------
def test_resize_is_recorded_only_when_the_export_resizes() -> None:
    from nasengine.tasks.digits import Digits

    task = Digits().preprocessing
    plain = export_preprocessing(task, {}, image_input([1, 8, 8]))
    assert plain["resize"] is None and not any("resize" in step for step in plain["steps"])
    assert plain["mean"] == [pytest.approx(0.3048, abs=1e-3)] and len(plain["std"]) == 1
    resized = export_preprocessing(task, {"resize": [12, 12]}, image_input([1, 12, 12]))
    assert resized["resize"]["size"] == [12, 12] and resized["resize"]["onnx"]["coordinate_transformation_mode"] == \
        "half_pixel" and resized["inputs"][0]["shape"] == [1, 12, 12]


@pytest.mark.parametrize("raw_shape,size,dtype", [((8, 8, 1), (12, 12), "uint8"), ((28, 28, 1), (16, 16), "uint8"),
                                                  ((11, 9, 3), (8, 8), "uint8"), ((10, 6, 3), (16, 16), "float32"),
                                                  ((9, 9, 1), (9, 9), "uint8"), ((12, 12, 3), (5, 7), "uint8")])
def test_the_onnx_preprocessing_graph_computes_what_torch_does(raw_shape: tuple[int, int, int], size: tuple[int, int],
                                                               dtype: str) -> None:
    """model.raw.onnx's steps (Cast, scale, normalise, transpose, Resize linear half_pixel) against the torch path,
    in front of an identity model: up- and downsampling, non-square, float input, and no resize."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    h, w, c = raw_shape
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["logits"])], "identity",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", c, *size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", c, *size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    contract = {"raw": {"height": h, "width": w, "channels": c, "dtype": dtype}, "scale": 1 / 255,
                "mean": [0.3, 0.5, 0.4][:c], "std": [0.2, 0.25, 0.3][:c],
                "resize": None if size == (h, w) else {"size": list(size)}, "inputs": [{"name": "input"}]}
    raw = np.random.default_rng(1).integers(0, 256, (3, h, w, c)).astype(dtype)
    got = ort.InferenceSession(raw_graph(contract, model), providers=["CPUExecutionProvider"]).run(None, {"raw": raw})
    expected = normalize_images(contract, raw, "numpy")
    assert got[0].shape == expected.shape == (3, c, *size)
    assert np.abs(got[0] - expected).max() <= 1e-4


def test_an_export_whose_task_says_nothing_is_refused_by_name(tmp_path: Path) -> None:
    config = {"format": "nasengine-subnet", "task": {"kind": "mystery", "name": "m"}, "input_transform": {},
              "input_shape": [1, 4, 4]}
    with pytest.raises(ValueError, match=r"records no preprocessing .*mystery.*export the subnet again"):
        read_preprocessing(config)
    custom = export_preprocessing({"input": "hand-made features"}, {}, image_input([1, 4, 4]))
    with pytest.raises(ValueError, match="hand-made features"):
        nasengine.preprocess(custom, np.zeros((4, 4)))
