"""benchmarks/int8_latency.py runs as a user runs it (--quick) and writes what it promises; timings are not judged."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nasengine.training.run import TrainRequest, train
from tests.conftest import TINY

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "int8_latency.py"
LAYER_COLUMNS = ["layer", "kind", "shape", "macs", "fp32_ms", "int8_ms", "ratio", "ratio_min", "ratio_max",
                 "fp32_iqr_ms", "int8_iqr_ms", "rounds", "calibration"]
SUBNET_COLUMNS = ["subnet", "variant", "input", "macs", "ms", "ratio_vs_fp32_folded", "ratio_min", "ratio_max",
                  "iqr_ms", "bn_nodes", "quantize_nodes", "dequantize_nodes", "nodes", "ort_bn_nodes", "ort_qdq_nodes",
                  "ort_nodes", "top1_agreement", "rounds"]


def run_benchmark(*args: object) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture(scope="module")
def quick_layers(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("int8") / "layers"
    return out, run_benchmark("--quick", "--out", out)


@pytest.fixture(scope="module")
def quick_subnets(tmp_path_factory) -> tuple[Path, str]:
    base = tmp_path_factory.mktemp("int8")
    train(TrainRequest("ofa_mbv3_digits", base / "supernet", epochs=1, batch_size=64, progress=False,
                       overrides=dict(TINY)))
    out = base / "subnets"
    return out, run_benchmark("--quick", "--skip-layers", "--supernet", base / "supernet", "--out", out)


def test_quick_layer_grid_writes_csv_and_markdown(quick_layers: tuple[Path, str]) -> None:
    out, stdout = quick_layers
    columns, rows = read_csv(out / "layers.csv")
    assert columns == LAYER_COLUMNS
    assert len(rows) >= 5
    kinds = {r["kind"] for r in rows}
    assert {"pointwise 1x1", "depthwise 3x3", "full 3x3", "mbconv", "linear"} <= kinds
    for r in rows:
        assert float(r["fp32_ms"]) > 0 and float(r["int8_ms"]) > 0 and int(r["macs"]) > 0
        assert 0 < float(r["ratio_min"]) <= float(r["ratio"]) <= float(r["ratio_max"])
        assert r["calibration"] == "standard-normal inputs"
    markdown = (out / "int8_latency.md").read_text()
    assert "## Layers" in markdown
    assert "| layer | shape (in -> out) | MACs | FP32 ms | INT8 ms | FP32/INT8 |" in markdown
    # no supernet given: the subnet part is skipped, and says so
    assert not (out / "subnets.csv").exists()
    assert "skipping the subnet part" in stdout and "Skipped: no `--supernet DIR` given." in markdown
    assert f"[{len(rows)}/{len(rows)}]" in stdout  # progress lines


def test_quick_subnets_count_nodes_of_each_graph(quick_subnets: tuple[Path, str]) -> None:
    out, stdout = quick_subnets
    columns, rows = read_csv(out / "subnets.csv")
    assert columns == SUBNET_COLUMNS
    assert [(r["subnet"], r["variant"]) for r in rows] == [
        (s, v) for s in ("max", "min") for v in ("FP32 folded", "FP32 unfolded", "INT8 from folded",
                                                 "INT8 from unfolded")]
    assert not (out / "layers.csv").exists()
    for r in rows:
        assert float(r["ms"]) > 0 and float(r["ratio_vs_fp32_folded"]) > 0 and int(r["macs"]) > 0
        folded, int8 = "unfolded" not in r["variant"], r["variant"].startswith("INT8")
        assert (int(r["bn_nodes"]) == 0) == folded, r
        assert (int(r["quantize_nodes"]) > 0) == int8 and (int(r["dequantize_nodes"]) > 0) == int8, r
        assert 0 <= float(r["top1_agreement"]) <= 1
        if r["variant"] == "FP32 folded":
            assert float(r["ratio_vs_fp32_folded"]) == 1.0 and float(r["top1_agreement"]) == 1.0
        assert 0 < float(r["ratio_min"]) <= float(r["ratio_vs_fp32_folded"]) <= float(r["ratio_max"])
    assert int(rows[0]["macs"]) > int(rows[4]["macs"])  # max subnet vs min subnet
    assert "## Subnets" in (out / "int8_latency.md").read_text()
