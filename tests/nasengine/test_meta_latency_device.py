"""Few-shot latency devices in the product: adapt from local sources, then search on `meta:TARGET`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from nasengine.errors import UserError
from nasengine.meta_latency import LatencyCache, adapt_device
from nasengine.search.runner import SearchRequest, search
from predictors.metrics import spearman_rho


def test_adapt_then_search_on_the_predicted_device(tiny_supernet_dir: Path, tmp_path: Path) -> None:
    result = adapt_device("ort-cpu-1t", tiny_supernet_dir, ["torch-cpu-1t", "ort-cpu-2t"], pool=40, support=10,
                          check=12, progress=False)
    assert result["check"]["n"] == 12 and result["check"]["spearman_rho"] > 0.5
    info = json.loads((Path(result["path"]) / "model.json").read_text())
    assert len(info["support"]) == 10 and info["sources"] == ["torch-cpu-1t", "ort-cpu-2t"]
    # sources were cached: a second adaptation for another target measures nothing on them again
    cached = LatencyCache(tiny_supernet_dir / "latency_data").read("torch-cpu-1t")
    assert len(cached) == 40
    out = search(SearchRequest(tiny_supernet_dir, tmp_path / "run", ("meta:ort-cpu-1t", "ort-cpu-1t"), evals=10,
                               progress=False))
    results = out["results"]
    assert results["latency_source:meta:ort-cpu-1t"].str.startswith("meta:ort-cpu-1t").all()
    assert spearman_rho(results["latency_ms:ort-cpu-1t"], results["latency_ms:meta:ort-cpu-1t"]) > 0.5


def test_adapt_rejects_bad_requests(tiny_supernet_dir: Path) -> None:
    with pytest.raises(UserError, match="other than the target"):
        adapt_device("ort-cpu-1t", tiny_supernet_dir, ["ort-cpu-1t"], progress=False)
    with pytest.raises(UserError, match="--support"):
        adapt_device("ort-cpu-1t", tiny_supernet_dir, ["torch-cpu-1t"], pool=10, support=20, progress=False)
    with pytest.raises(UserError, match="unknown device"):
        adapt_device("ort-cpu-1t", tiny_supernet_dir, ["phone-9"], progress=False)
    with pytest.raises(UserError, match="no adapted latency predictor"):
        search(SearchRequest(tiny_supernet_dir, tiny_supernet_dir.parent / "none", ("meta:phone-9",), evals=4,
                             progress=False))
