"""`nasengine search --quantization`: policies searched with the arch, applied for real, exported as INT8."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pandas as pd
import pytest

from nasengine.graphs.quantization import is_quantized
from tests.cli_helpers import one_line_error, run_cli


@pytest.fixture(scope="module")
def quant_run(tiny_supernet_dir: Path, tmp_path_factory) -> Path:
    from nasengine.searching.runner import SearchRequest, search

    out = tmp_path_factory.mktemp("quant") / "run"
    search(SearchRequest(tiny_supernet_dir, out, evals=10, strategy="random", progress=False, quantization="search"))
    return out


def test_policy_genes_are_searched_and_recorded(quant_run: Path) -> None:
    results = pd.read_csv(quant_run / "results.csv")
    archs = [json.loads(a) for a in results["arch"]]
    policies = [json.loads(p) for p in results["quant_policy"]]
    assert all(any(k.startswith("q.") for k in arch) for arch in archs)
    for arch, policy in zip(archs, policies):  # the policy names exactly the active layers' genes
        assert policy == {k[2:]: v for k, v in arch.items() if k.startswith("q.") and v is not None}
    mixed = [set(p.values()) for p in policies]
    assert {"int8"} in mixed or any(len(m) == 2 for m in mixed)
    fp32_size = results["params"] * 4 / 1e6
    has_int8 = [("int8" in p.values()) for p in policies]
    assert (results["size_mb"][has_int8] < fp32_size[has_int8]).all()
    assert (results["size_mb"][[not h for h in has_int8]] == fp32_size[[not h for h in has_int8]]).all()
    run = json.loads((quant_run / "run.json").read_text())
    assert run["identity"]["quantization"]["mode"] == "search"
    assert run["identity"]["quantization"]["calibration_method"] == "minmax"


def test_export_writes_the_int8_graph_and_reproduces_it_in_a_fresh_process(quant_run: Path, tmp_path: Path,
                                                                           capsys) -> None:
    results = pd.read_csv(quant_run / "results.csv")
    policies = [json.loads(p) for p in results["quant_policy"]]
    row = next(i for i, p in enumerate(policies) if "int8" in p.values())
    arch = results["arch"][row]
    code, out, err = run_cli(capsys, "export", quant_run, "--out", tmp_path / "exp", "--arch", arch)
    assert code == 0, err
    manifest = json.loads((tmp_path / "exp" / "manifest.json").read_text())
    assert manifest["graph"] == "model.int8.onnx" and manifest["quant_policy"] == policies[row]
    assert manifest["search_accuracy"] == pytest.approx(results["accuracy"][row])
    graph = (tmp_path / "exp" / "model.int8.onnx").read_bytes()
    assert is_quantized(graph) and not is_quantized((tmp_path / "exp" / "model.onnx").read_bytes())
    onnx.checker.check_model(onnx.load_model_from_string(graph))
    script = ("import json,sys; from nasengine.exporting.subnet import score_subnet; "
              "print(json.dumps(score_subnet(sys.argv[1])))")
    fresh = subprocess.run([sys.executable, "-c", script, str(tmp_path / "exp")], capture_output=True, text=True,
                           check=True)
    score = json.loads(fresh.stdout)
    assert score["graph"] == "model.int8.onnx" and score["accuracy"] == manifest["accuracy"]  # exactly
    assert manifest["fp32"]["accuracy"] == run_fp32_accuracy(tmp_path / "exp")
    code, out, err = run_cli(capsys, "measure", tmp_path / "exp", "--graph", "int8", "--json")
    assert code == 0 and json.loads(out)[0]["median_ms"] > 0


def run_fp32_accuracy(path: Path) -> float:
    from nasengine.exporting.subnet import evaluate_subnet

    return evaluate_subnet(path, graph="fp32")


@pytest.mark.parametrize("device, message", [("torch-cpu-1t", "cannot run quantized graphs"),
                                             ("ort-cpu-1t-int8", "quantizes every layer itself")])
def test_devices_that_cannot_run_a_policy_are_refused_before_anything_is_written(
        tiny_supernet_dir: Path, tmp_path: Path, capsys, device: str, message: str) -> None:
    code, out, err = run_cli(capsys, "search", tiny_supernet_dir, "--out", tmp_path / "run", "--evals", 4,
                             "--quantization", "int8", "--device", device)
    assert message in one_line_error(code, err)
    assert not (tmp_path / "run").exists()


def test_an_fp32_export_has_no_int8_graph(tiny_run_dir: Path, tmp_path: Path, capsys) -> None:
    code, out, err = run_cli(capsys, "export", tiny_run_dir, "--out", tmp_path / "exp")
    assert code == 0, err
    assert not (tmp_path / "exp" / "model.int8.onnx").exists()
    code, out, err = run_cli(capsys, "evaluate", tmp_path / "exp", "--graph", "int8")
    assert "has no model.int8.onnx" in one_line_error(code, err)
