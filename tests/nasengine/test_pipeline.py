"""The core pipeline on a tiny supernet: train -> search -> export -> reload, and its contracts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch

import nasengine
from nasengine.errors import UserError
from nasengine.exporting.exporter import ExportRequest, export
from nasengine.searching.runner import SearchRequest, search
from nasengine.searching.api import load_rows
from nasengine import supernets


def test_training_writes_a_loadable_supernet_and_log(tiny_supernet_dir: Path) -> None:
    config = json.loads((tiny_supernet_dir / "config.json").read_text())
    assert config["supernet"] == "ofa_mbv3_digits" and config["task"]["name"] == "digits"
    log = pd.read_csv(tiny_supernet_dir / "train_log.csv")
    assert list(log["epoch"]) == [0, 1] and {"loss", "val_acc_max", "val_acc_min"} <= set(log.columns)
    assert not (tiny_supernet_dir / "checkpoints").exists()
    net, _ = supernets.load_supernet(tiny_supernet_dir)
    assert net.config["head_width"] == 32


def test_search_writes_results_pareto_and_plot(tiny_run_dir: Path) -> None:
    results = pd.read_csv(tiny_run_dir / "results.csv")
    pareto = pd.read_csv(tiny_run_dir / "pareto.csv")
    assert len(results) == 12
    latency = "latency_ms:ort-cpu-1t"
    assert {"number", "arch", "accuracy", latency, "latency_iqr_ms:ort-cpu-1t", "params", "macs"} <= set(results)
    assert "latency_ms" not in results  # every latency names its device
    archs = [json.loads(a) for a in results["arch"]]
    assert len({json.dumps(a, sort_keys=True) for a in archs}) == 12
    assert (results[latency] > 0).all() and results["accuracy"].between(0, 1).all()
    # no Pareto row is dominated by any evaluated row, and every non-dominated row is in it
    assert set(pareto["device"]) == {"ort-cpu-1t"}
    for _, row in results.iterrows():
        better = (results["error"] <= row["error"]) & (results[latency] <= row[latency])
        strictly = (results["error"] < row["error"]) | (results[latency] < row[latency])
        assert (row["number"] in set(pareto["number"])) == (not (better & strictly).any())
    assert (tiny_run_dir / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    trace = pd.read_csv(tiny_run_dir / "hypervolume.csv")
    assert trace["hypervolume"].is_monotonic_increasing and trace["evaluations"].iloc[-1] == 12


def test_rerunning_a_complete_search_reuses_every_evaluation(tiny_supernet_dir: Path, tiny_run_dir: Path) -> None:
    store_size = (tiny_run_dir / "store.journal").stat().st_size
    result = search(SearchRequest(tiny_supernet_dir, tiny_run_dir, evals=12, progress=False))
    assert result["new_this_session"] == 0 and result["evaluated"] == 12
    assert (tiny_run_dir / "store.journal").stat().st_size == store_size


def test_search_refuses_to_mix_runs(tiny_supernet_dir: Path, tiny_run_dir: Path) -> None:
    with pytest.raises(UserError, match="seed=0 .*now 1.*--overwrite"):
        search(SearchRequest(tiny_supernet_dir, tiny_run_dir, evals=12, seed=1, progress=False))


def test_export_reloads_without_supernet_and_reproduces_its_numbers(tiny_run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "exp"
    manifest = export(ExportRequest(tiny_run_dir, out, pick="most-accurate"))
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "model.onnx", "model.raw.onnx",
                                               "manifest.json"}
    for key in ("arch", "accuracy", "latency_ms", "device", "accuracy_split"):
        assert key in manifest
    results = pd.read_csv(tiny_run_dir / "results.csv")
    assert manifest["search_accuracy"] == pytest.approx(results["accuracy"].max())  # no budget: most accurate
    # a fresh interpreter that never imports supernets reproduces the test accuracy
    code = ("import json, sys, nasengine; m = nasengine.load_subnet(sys.argv[1]); "
            "assert type(m).__module__.startswith('torch'); "
            "assert not any(k.startswith('nasengine.supernets') for k in sys.modules), 'supernets imported'; "
            "print(json.dumps(nasengine.evaluate_subnet(sys.argv[1])))")
    reproduced = json.loads(subprocess.run([sys.executable, "-c", code, str(out)], check=True, capture_output=True,
                                           text=True).stdout)
    assert reproduced == manifest["accuracy"]
    # ONNX and torch agree
    module = nasengine.load_subnet(out)
    x = torch.randn(3, *manifest["input_shape"])
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(onnx_out, module(x).detach().numpy(), atol=1e-4)


def test_export_budget_picks_within_budget_or_fails_cleanly(tiny_run_dir: Path, tmp_path: Path) -> None:
    results = pd.read_csv(tiny_run_dir / "results.csv")
    budget = float(results["latency_ms:ort-cpu-1t"].median())
    manifest = export(ExportRequest(tiny_run_dir, tmp_path / "fast", latency_budget_ms=budget))
    assert manifest["search_latency_ms"] <= budget
    with pytest.raises(UserError, match="no evaluated subnet runs within"):
        export(ExportRequest(tiny_run_dir, tmp_path / "none", latency_budget_ms=1e-6))
    assert not (tmp_path / "none").exists()
    with pytest.raises(UserError, match="already exists"):
        export(ExportRequest(tiny_run_dir, tmp_path / "fast"))


def test_store_survives_a_torn_last_line(tiny_supernet_dir: Path, tiny_run_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(tiny_run_dir, copy)
    with open(copy / "store.journal", "ab") as f:
        f.write(b'{"op_code": 4, "worker_id": "x", "study_id": 0, "datetime_start": "20')  # crash mid-write
    assert len(load_rows(copy)) == 12
    result = search(SearchRequest(tiny_supernet_dir, copy, evals=13, progress=False))
    assert result["evaluated"] == 13 and result["new_this_session"] == 1
    assert len(load_rows(copy)) == 13
