"""Library code leaves third-party global settings alone (logging, optuna verbosity, matplotlib backend, torch's
random state and thread count)."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib
import optuna
import pytest
import torch
from torch import nn

from nasengine.graphs.onnx_writer import to_onnx
from nasengine.graphs.quantization import calibration_feeds, quantize_layers
from nasengine.reporting.reports import write_reports
from nasengine.searching.objectives import Objective
from nasengine.searching.problem import Pending
from nasengine.searching.store import TrialStore, open_storage
from nasengine.search_spaces import Choice, Space


def _global_settings() -> tuple:
    return (optuna.logging.get_verbosity(), tuple(logging.getLogger().filters), logging.getLogger().level,
            logging.getLogger("onnxruntime.quantization").level, matplotlib.get_backend())


def test_quantize_store_and_plots_change_no_global_setting(tmp_path: Path) -> None:
    before = _global_settings()
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3)).eval()
    graph = to_onnx(model, torch.zeros(1, 1, 8, 8), dynamic_batch=True)
    assert quantize_layers(graph, calibration_feeds(torch.randn(16, 1, 8, 8).numpy()))
    (tmp_path / "run").mkdir()
    space = Space([Choice("a", [1, 2])])
    objectives = [Objective("error"), Objective("latency_ms:d", device="d")]
    store = TrialStore(open_storage(tmp_path / "run", None), "study", space, objectives)
    rows = store.evaluate([Pending(i, 0, {"a": a}) for i, a in enumerate([1, 2])],
                          lambda arch: ({"error": 0.5 / arch["a"], "accuracy": 1 - 0.5 / arch["a"],
                                         "latency_ms:d": float(arch["a"])}, {}))
    write_reports(tmp_path / "run", rows, objectives, [])
    assert (tmp_path / "run" / "pareto.png").stat().st_size > 0
    assert _global_settings() == before


@pytest.mark.parametrize("module", ["nasengine.reporting.fronts", "nasengine.reporting.axes",
                                    "nasengine.reporting.plots", "nasengine.reporting.reports",
                                    "nasengine.exporting.exporter", "nasengine.searching",
                                    "nasengine.searching.runner"])
def test_each_module_imports_first_in_a_fresh_process(module: str) -> None:
    """No import cycle depends on which module a program happens to import first."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def _torch_globals() -> tuple:
    import hashlib

    return hashlib.sha1(torch.random.get_rng_state().numpy().tobytes()).hexdigest(), torch.get_num_threads()


def test_train_search_export_and_evaluate_leave_torch_globals_alone(tmp_path: Path) -> None:
    """A program that seeds torch and sets its thread count, then calls the engine, keeps both."""
    from nasengine.exporting import evaluate_subnet
    from nasengine.exporting.exporter import ExportRequest, export
    from nasengine.searching.runner import SearchRequest, search
    from nasengine.training import TrainRequest, train
    from tests.conftest import TINY

    torch.manual_seed(1234)
    before = (*_torch_globals(), _global_settings())
    train(TrainRequest("ofa_mbv3_digits", tmp_path / "sn", epochs=1, batch_size=128, progress=False,
                       overrides=dict(TINY)))
    search(SearchRequest(tmp_path / "sn", tmp_path / "run", ("torch-cpu-2t",), evals=4, progress=False))
    export(ExportRequest(tmp_path / "run", tmp_path / "exp"))
    evaluate_subnet(tmp_path / "exp")
    assert (*_torch_globals(), _global_settings()) == before
