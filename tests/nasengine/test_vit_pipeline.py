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
