"""Text through the same commands as images: train bert from a checkpoint on TSV files, search, export (ONNX with
token ids and attention mask), reload as a plain module, re-score and re-measure; and text data errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from nasengine.tasks import open_data, task_from_spec
from tests.nasengine.task_data import labelled
from tests.cli_helpers import one_line_error, run_cli
from tests.text_data import write_sentiment_tsv, write_tiny_checkpoint


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("text")
    return {"ckpt": write_tiny_checkpoint(root / "ckpt"), "train": write_sentiment_tsv(root / "train.tsv", 400),
            "dev": write_sentiment_tsv(root / "dev.tsv", 80, seed=1)}


def test_text_task_splits_tokens_and_spec(files: dict[str, Path]) -> None:
    options = {"tokenizer": str(files["ckpt"]), "dev": str(files["dev"]), "max_length": 12}
    task = open_data(str(files["train"]), options)
    train, val, test = (task.split(s) for s in ("train", "val", "test"))
    assert len(test) == 80 and len(train) + len(val) == 400 and len(val) == 8
    assert set(train.inputs) == {"input_ids", "attention_mask"} and train.inputs["input_ids"].shape[1] == 12
    assert train.inputs["input_ids"][0, 0] == 2  # [CLS] first
    batch, labels = next(iter(train.batches(16)))
    longest = int(train.inputs["attention_mask"][:16].sum(1).max())
    assert batch["input_ids"].shape == (16, longest) and labels.shape == (16,)  # padding no sample needs is gone
    rebuilt = task_from_spec(json.loads(json.dumps(task.spec)))
    assert torch.equal(rebuilt.split("val").inputs["input_ids"], val.inputs["input_ids"])
    files["train"].write_text(files["train"].read_text() + "1\tgood film\n")
    try:
        with pytest.raises(Exception, match="data changed since training"):
            task_from_spec(task.spec)
    finally:
        files["train"].write_text("".join(files["train"].read_text().splitlines(keepends=True)[:-1]))


def test_train_search_export_reload_measure(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    code, out, err = run_cli(capsys, "train", "bert", "--checkpoint", files["ckpt"], "--data", files["train"],
                             "--dev", files["dev"], "--max-length", 12, "--epochs", 8, "--batch-size", 16, "--lr", 2e-3,
                             "--warmup", 0.25, "--quiet",
                             "--out", tmp_path / "sn")
    assert code == 0, err
    config = json.loads((tmp_path / "sn" / "config.json").read_text())
    assert config["training"]["checkpoint"]["dir"] == str(files["ckpt"].resolve())
    assert config["final_accuracy"]["max"]["test"] > 0.7  # the sentiment word is learnt
    code, out, err = run_cli(capsys, "search", tmp_path / "sn", "--out", tmp_path / "run", "--evals", 5,
                             "--strategy", "random", "--device", "ort-cpu-1t", "--quiet")
    assert code == 0, err
    code, out, err = run_cli(capsys, "export", tmp_path / "run", "--out", tmp_path / "exp")
    assert code == 0, err
    exp = tmp_path / "exp"
    manifest = json.loads((exp / "manifest.json").read_text())
    assert manifest["onnx_max_abs_error"] <= 1e-4
    assert manifest["latency"]["inputs"] == "input_ids:int64[1,12],attention_mask:int64[1,12]"
    assert (exp / "vocab.txt").is_file()  # the tokenizer ships with the subnet
    graph = onnx.load(str(exp / "model.onnx"))
    assert [(i.name, i.type.tensor_type.elem_type) for i in graph.graph.input] == [
        ("input_ids", onnx.TensorProto.INT64), ("attention_mask", onnx.TensorProto.INT64)]
    script = ("import sys, json, nasengine; m = nasengine.load_subnet(sys.argv[1]); "
              "print(json.dumps([type(m).__name__, sys.modules.get('nasengine.supernets') is None]))")
    fresh = subprocess.run([sys.executable, "-c", script, str(exp)], capture_output=True, text=True, check=True)
    assert json.loads(fresh.stdout) == ["TextClassifier", True]
    code, out, err = run_cli(capsys, "evaluate", exp)
    assert code == 0 and f"{manifest['accuracy']:.2%}" in out
    code, out, err = run_cli(capsys, "evaluate", exp, "--graph", "fp32")
    assert code == 0
    code, out, err = run_cli(capsys, "measure", exp, "--device", "ort-cpu-1t")
    assert code == 0 and "median" in out


def test_text_errors_are_one_line(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tscore\nfine\t1\n")
    code, _, err = run_cli(capsys, "train", "bert", "--checkpoint", files["ckpt"], "--data", bad, "--out",
                           tmp_path / "a")
    assert "must name a `label` column" in one_line_error(code, err)
    code, _, err = run_cli(capsys, "train", "ofa_mbv3_digits", "--checkpoint", files["ckpt"], "--out", tmp_path / "b")
    assert "trained from scratch" in one_line_error(code, err)
    code, _, err = run_cli(capsys, "train", "bert", "--checkpoint", tmp_path / "nowhere", "--data", files["train"],
                           "--out", tmp_path / "c")
    assert "no such file or directory" in one_line_error(code, err)
    x, y = labelled()
    np.savez(tmp_path / "images.npz", x=x, y=y)
    code, _, err = run_cli(capsys, "train", "ofa_mbv3", "--data", tmp_path / "images.npz", "--holdout",
                           "sentence", "--out", tmp_path / "d")
    assert "--holdout applies to text data only" in one_line_error(code, err)
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


def test_per_layer_latency_table_covers_text_layers(files: dict[str, Path]) -> None:
    """Per-layer profiling times the embedding layer on token ids and the others on features, so lookup-table
    latency works for text subnets too."""
    from nasengine import supernets
    from nasengine.measurement.devices import get_device
    from nasengine.measurement.devices.timing import TimingSettings
    from nasengine.measurement.lut import profile

    net = supernets.create("bert", checkpoint=str(files["ckpt"]), max_length=12)
    device = get_device("ort-cpu-1t")
    device.timing = TimingSettings(warmup_runs=1, warmup_seconds=0, min_repeats=3, min_seconds=0, max_repeats=3)
    archs = [net.space.max(), net.space.min()]
    table = profile(net, device, archs)
    layers = net.describe(archs[1])
    assert layers[0].name == "embed" and net.layer_modules(archs[1])[0].input_dtype == "int64"
    assert table.predict(layers) > 0
