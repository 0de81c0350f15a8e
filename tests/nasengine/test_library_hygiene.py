"""Library code leaves third-party global settings alone (logging, optuna verbosity, matplotlib backend)."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib
import optuna
import pandas as pd
import torch
from torch import nn

from nasengine.devices.quantize import quantize_int8, random_feeds
from nasengine.onnx_writer import to_onnx
from nasengine.reports import plot_pareto
from nasengine.store import RunStore
from search_spaces import Choice, Space


def _global_settings() -> tuple:
    return (optuna.logging.get_verbosity(), tuple(logging.getLogger().filters), logging.getLogger().level,
            logging.getLogger("onnxruntime.quantization").level, matplotlib.get_backend())


def test_quantize_store_and_plots_change_no_global_setting(tmp_path: Path) -> None:
    before = _global_settings()
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3)).eval()
    graph = to_onnx(model, torch.zeros(1, 1, 8, 8))
    assert quantize_int8(graph, random_feeds(graph, 1))
    (tmp_path / "run").mkdir()
    RunStore(tmp_path / "run", Space([Choice("a", [1, 2])]))
    results = pd.DataFrame({"accuracy": [0.5, 0.7], "latency_ms:d": [1.0, 2.0]})
    pareto = results.assign(device="d")
    plot_pareto(results, pareto, ["d"], tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0
    assert _global_settings() == before
