"""The ViT family goes through the same commands as the CNN: train, search (with policies), export, reload."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli_helpers import run_cli

SMALL = ["--set", "depths=[1,2]", "--set", "dims=[16,32]", "--set", "heads=[1,2]"]


def test_train_search_export_and_reload(tmp_path: Path, capsys) -> None:
    code, out, err = run_cli(capsys, "train", "vit_digits", "--out", tmp_path / "sn", "--epochs", 2, "--quiet", *SMALL)
    assert code == 0, err
    code, out, err = run_cli(capsys, "search", tmp_path / "sn", "--out", tmp_path / "run", "--evals", 6,
                             "--strategy", "random", "--quantization", "search", "--quiet")
    assert code == 0, err
    code, out, err = run_cli(capsys, "export", tmp_path / "run", "--out", tmp_path / "exp")
    assert code == 0, err
    manifest = json.loads((tmp_path / "exp" / "manifest.json").read_text())
    assert manifest["onnx_max_abs_error"] <= 1e-4
    script = ("import sys, torch, nasengine, json; m = nasengine.load_subnet(sys.argv[1]); "
              "print(json.dumps([type(m).__name__, sys.modules.get('nasengine.supernets') is None]))")
    fresh = subprocess.run([sys.executable, "-c", script, str(tmp_path / "exp")], capture_output=True, text=True,
                           check=True)
    assert json.loads(fresh.stdout) == ["Sequential", True]  # a plain module, no supernet code imported
    code, out, err = run_cli(capsys, "evaluate", tmp_path / "exp")
    assert code == 0 and f"{manifest['accuracy']:.2%}" in out
    # transformer blocks also offer weight-only INT8/INT4 (MatMulNBits); an export with them ships that graph
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    genes = {g["name"]: g for g in run["identity"]["space"]["genes"]}
    blocks = [name for name, gene in genes.items() if name.startswith("q.") and "w4" in gene["options"]]
    assert blocks and all(genes[name]["options"] == ["fp32", "int8", "w8", "w4"] for name in blocks)
    others = [name for name in genes if name.startswith("q.") and name not in blocks]
    assert "q.embed" in others and all(genes[name]["options"] == ["fp32", "int8"] for name in others)  # conv, Gemm
    import onnx
    import pandas as pd

    best = json.loads(pd.read_csv(tmp_path / "run" / "results.csv")["arch"][1])  # the largest subnet
    arch = {**best, **{name: ("w4" if i % 2 else "w8") for i, name in enumerate(blocks)}}
    code, out, err = run_cli(capsys, "export", tmp_path / "run", "--out", tmp_path / "wexp",
                             "--arch", json.dumps(arch))
    assert code == 0, err
    manifest = json.loads((tmp_path / "wexp" / "manifest.json").read_text())
    assert manifest["graph"] == "model.int8.onnx" and set(manifest["quant_policy"].values()) >= {"w8", "w4"}
    nodes = onnx.load(str(tmp_path / "wexp" / "model.int8.onnx")).graph.node
    bits = sorted({a.i for n in nodes if n.op_type == "MatMulNBits" for a in n.attribute if a.name == "bits"})
    assert bits == [4, 8]
    code, out, err = run_cli(capsys, "evaluate", tmp_path / "wexp")
    assert code == 0 and f"{manifest['accuracy']:.2%}" in out
    # a table at a weight-only precision prices those layers for later searches
    code, out, err = run_cli(capsys, "device", "profile", "ort-cpu-1t", tmp_path / "sn", "--precision", "w4",
                             "--check", 4, "--quiet")
    assert code == 0, err
    assert (tmp_path / "sn" / "latency_tables" / "ort-cpu-1t.w4.json").is_file()
