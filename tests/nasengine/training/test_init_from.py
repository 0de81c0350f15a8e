"""`nasengine train --init-from SN`: fine-tune a trained supernet into another configuration of the same shapes."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.cli_helpers import one_line_error, run_cli
from tests.conftest import TINY


def _sets(overrides: dict) -> list[str]:
    return [a for k, v in overrides.items() for a in ("--set", f"{k}={json.dumps(v)}")]


def test_training_starts_from_the_given_weights(tiny_supernet_dir: Path, tmp_path: Path, capsys) -> None:
    strides = {**TINY, "stage_strides": [1, 1]}  # other strides, the same parameter shapes
    code, out, err = run_cli(capsys, "train", "ofa_mbv3_digits", "--out", tmp_path / "sn", "--epochs", 1,
                             "--lr", 1e-9, "--init-from", tiny_supernet_dir, "--quiet", *_sets(strides))
    assert code == 0, err
    start, tuned = load_file(str(tiny_supernet_dir / "model.safetensors")), load_file(str(tmp_path / "sn" /
                                                                                          "model.safetensors"))
    conv = "stem.conv.weight"
    assert torch.allclose(start[conv], tuned[conv], atol=1e-5)  # a vanishing learning rate keeps the start
    config = json.loads((tmp_path / "sn" / "config.json").read_text())
    assert config["training"]["init_from"]["weights_sha1"]


def test_weights_of_another_shape_are_refused_before_anything_is_written(tiny_supernet_dir: Path, tmp_path: Path,
                                                                         capsys) -> None:
    wider = {**TINY, "head_width": 48}
    code, out, err = run_cli(capsys, "train", "ofa_mbv3_digits", "--out", tmp_path / "sn", "--epochs", 1,
                             "--init-from", tiny_supernet_dir, "--quiet", *_sets(wider))
    assert "--init-from" in one_line_error(code, err) and "shape" in err
    assert not (tmp_path / "sn").exists()
    code, out, err = run_cli(capsys, "train", "ofa_mbv3_digits", "--out", tmp_path / "sn", "--init-from",
                             tmp_path / "nothing", "--quiet", *_sets(TINY))
    assert "no trained supernet there" in one_line_error(code, err)


def test_starting_from_the_output_directory_itself_is_refused(tiny_supernet_dir: Path, tmp_path: Path,
                                                             capsys) -> None:
    code, out, err = run_cli(capsys, "train", "ofa_mbv3_digits", "--out", tiny_supernet_dir, "--overwrite",
                             "--init-from", tiny_supernet_dir, "--quiet", *_sets(TINY))
    assert "--init-from must differ from --out" in one_line_error(code, err)
    assert (tiny_supernet_dir / "model.safetensors").is_file()
