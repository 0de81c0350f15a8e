"""Few-shot latency devices in the product: adapt from local sources, then search on `meta:TARGET`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nasengine.search_spaces.registry import RegistryError

from nasengine.measurement.devices import registry
from nasengine.measurement.devices.base import DeviceConfig
from nasengine.measurement.devices.registry import register_device
from nasengine.errors import UserError
from nasengine.measurement.adapt import LatencyCache, adapt_device
from nasengine.searching.runner import SearchRequest, search
from nasengine.measurement.profiling import profile_device
from nasengine.training.loading import load_trained
from nasengine.search_spaces.samplers import sample_unique
from nasengine.predictors.metrics import spearman_rho
from nasengine.kernels.describe import DESCRIPTORS, cost_descriptors
from nasengine.measurement.devices.predicted import N_DESCRIPTORS, PredictedLatency, arch_features


def board_latency(arch: dict) -> float:
    """A deterministic stand-in for a remote board: per-block cost growing with kernel area, expand ratio and
    input area (the engine's local devices are too noisy on a tiny supernet to judge ranking in a unit test)."""
    blocks = [arch[k[: -len("kernel")] + "expand"] * arch[k] ** 2 for k in arch
              if k.endswith(".kernel") and arch[k] is not None]
    return 0.02 + 2e-4 * (arch["resolution"] / 8) ** 2 * sum(blocks)


def test_adapt_then_search_on_the_predicted_device(tiny_supernet_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(registry, "_DEVICES", registry._DEVICES.copy())  # the board is registered for this test only
    net, _ = load_trained(tiny_supernet_dir)
    pool = sample_unique(net.space, 40, seed=0, include_extremes=True)  # the pool adapt_device draws (seed 0)
    pd.DataFrame({"arch": [json.dumps(a) for a in pool], "latency_ms": [board_latency(a) for a in pool]}).to_csv(
        tmp_path / "board.csv", index=False)
    register_device(DeviceConfig("lab-board", "table", {"csv": str(tmp_path / "board.csv")}))

    result = adapt_device("lab-board", tiny_supernet_dir, ["torch-cpu-1t", "ort-cpu-1t"], pool=40, support=10,
                          check=12, progress=False)
    assert result["check"]["n"] == 12 and result["check"]["spearman_rho"] > 0.5, result["check"]
    info = json.loads((Path(result["path"]) / "model.json").read_text())
    assert len(info["support"]) == 10 and info["sources"] == ["torch-cpu-1t", "ort-cpu-1t"]
    # sources were cached: a second adaptation for another target measures nothing on them again
    cached = LatencyCache(tiny_supernet_dir / "latency_data").read("torch-cpu-1t")
    assert len(cached) == 40
    out = search(SearchRequest(tiny_supernet_dir, tmp_path / "run", ("meta:lab-board", "ort-cpu-1t"), evals=10,
                               progress=False))
    results = out["results"]
    assert results["latency_source:meta:lab-board"].str.startswith("meta:lab-board").all()
    assert set(out["pareto"]["device"]) == {"meta:lab-board", "ort-cpu-1t"}
    truth = [board_latency(json.loads(a)) for a in results["arch"]]
    assert spearman_rho(truth, results["latency_ms:meta:lab-board"]) > 0.5
    # devices whose latency comes from data (a predictor, a table) are refused by profiling: they run no model
    for name in ("meta:lab-board", "lab-board"):
        with pytest.raises(UserError, match="does not run models"):
            profile_device(name, tiny_supernet_dir, tmp_path / "t.json", check=4, progress=False)


def test_adapt_rejects_bad_requests(tiny_supernet_dir: Path) -> None:
    with pytest.raises(UserError, match="other than the target"):
        adapt_device("ort-cpu-1t", tiny_supernet_dir, ["ort-cpu-1t"], progress=False)
    with pytest.raises(UserError, match="--support"):
        adapt_device("ort-cpu-1t", tiny_supernet_dir, ["torch-cpu-1t"], pool=10, support=20, progress=False)
    with pytest.raises(RegistryError, match="unknown device"):
        adapt_device("ort-cpu-1t", tiny_supernet_dir, ["phone-9"], progress=False)
    with pytest.raises(UserError, match="no adapted latency predictor"):
        search(SearchRequest(tiny_supernet_dir, tiny_supernet_dir.parent / "none", ("meta:phone-9",), evals=4,
                             progress=False))


def test_adapt_command_on_a_device_from_a_config_file(tiny_supernet_dir: Path, tmp_path: Path) -> None:
    net, _ = load_trained(tiny_supernet_dir)
    pool = sample_unique(net.space, 12, seed=3, include_extremes=True)
    pd.DataFrame({"arch": [json.dumps(a) for a in pool], "latency_ms": [board_latency(a) for a in pool]}).to_csv(
        tmp_path / "board.csv", index=False)
    (tmp_path / "devices.toml").write_text('[devices.cfg-board]\nbackend = "table"\n'
                                           f'csv = "{tmp_path / "board.csv"}"\n')
    run = subprocess.run([sys.executable, "-m", "nasengine", "device", "adapt", "cfg-board", str(tiny_supernet_dir),
                          "--sources", "torch-cpu-1t", "--pool", "12", "--support", "4", "--check", "4", "--seed",
                          "3", "--quiet"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "NASENGINE_DEVICES": str(tmp_path / "devices.toml")})
    assert run.returncode == 0, run.stderr
    assert "adapted a latency predictor for cfg-board from 4 measurements" in run.stdout
    info = json.loads((tiny_supernet_dir / "latency_models" / "cfg-board" / "model.json").read_text())
    assert info["sources"] == ["torch-cpu-1t"] and info["check"]["n"] == 4


def test_descriptors_agree_with_the_supernets_cost(tiny_supernet_dir: Path) -> None:
    net, _ = load_trained(tiny_supernet_dir)
    seen = set()
    for arch in sample_unique(net.space, 12, seed=0, include_extremes=True):
        layers = net.describe(arch)
        d = cost_descriptors(layers)
        cost = net.cost(arch)
        assert d["macs"] == cost.macs and d["params"] == cost.params
        assert d["ops"] >= d["layers"] > 0
        features = arch_features(net.space, arch, layers)  # the predictor's encoding ends with the descriptors
        assert list(features[-N_DESCRIPTORS:]) == [d[name] for name in DESCRIPTORS]
        seen.add((d["layers"], d["grouped_convs"], d["ops"]))
    assert len(seen) > 1, "depth and block choices must change the counts"


def test_a_saved_predictor_with_unknown_features_is_refused(tiny_supernet_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "latency_models" / "odd"
    folder.mkdir(parents=True)
    net, _ = load_trained(tiny_supernet_dir)
    (folder / "model.json").write_text(json.dumps({"target": "odd", "support": [], "space": net.space.to_dict(),
                                                   "features": "onehot+something_new"}))
    with pytest.raises(ValueError, match="is not an adapted latency predictor"):
        PredictedLatency(folder)
