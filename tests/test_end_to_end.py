"""The README's main job, end to end with its default settings, judged by the core pipeline's bar (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def nasengine(*args: object) -> str:
    result = subprocess.run([sys.executable, "-m", "nasengine", *map(str, args)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_default_job_meets_the_bar(tmp_path: Path) -> None:
    started = time.perf_counter()
    nasengine("train", "ofa_mbv3_digits", "--out", tmp_path / "supernet", "--quiet")
    nasengine("search", tmp_path / "supernet", "--device", "ort-cpu-1t", "--out", tmp_path / "search", "--quiet")
    nasengine("export", tmp_path / "search", "--out", tmp_path / "subnet")
    minutes = (time.perf_counter() - started) / 60

    final = json.loads((tmp_path / "supernet" / "config.json").read_text())["final_accuracy"]
    assert final["max"]["test"] >= 0.97 and final["min"]["test"] >= 0.90, final

    # The search explores the whole measured latency range of the supernet; the front itself is narrower on
    # digits (accuracy saturates near 99 % around 0.07 ms, see BENCHMARKS.md), so its span is reported, and the
    # front must trade accuracy for latency monotonically with more than one point.
    results = pd.read_csv(tmp_path / "search" / "results.csv")
    latency = "latency_ms:ort-cpu-1t"
    assert results[latency].max() / results[latency].min() >= 5.0
    pareto = pd.read_csv(tmp_path / "search" / "pareto.csv").sort_values(latency)
    assert len(pareto) >= 3 and pareto["accuracy"].is_monotonic_increasing

    manifest = json.loads((tmp_path / "subnet" / "manifest.json").read_text())
    code = ("import json, sys, nasengine; print(json.dumps(nasengine.evaluate_subnet(sys.argv[1])))")
    reproduced = subprocess.run([sys.executable, "-c", code, str(tmp_path / "subnet")], capture_output=True,
                                text=True, check=True).stdout
    assert json.loads(reproduced) == manifest["accuracy"]
    # This VM alternates between fast and slow phases lasting about a second (up to 1.7x apart, whatever the
    # process; see BENCHMARKS.md), so one re-measurement may land in the other phase than the manifest's: the
    # export's latency must be reproduced by at least one of three fresh-process re-measurements.
    remeasured = [json.loads(nasengine("measure", tmp_path / "subnet", "--device", "ort-cpu-1t", "--json"))[0]
                  ["median_ms"] for _ in range(3)]
    assert min(abs(ms / manifest["latency_ms"] - 1) for ms in remeasured) <= 0.20, (manifest["latency_ms"], remeasured)
    print(f"\nend-to-end: {minutes:.1f} min, max {final['max']['test']:.2%}, min {final['min']['test']:.2%}, "
          f"searched span {results[latency].max() / results[latency].min():.1f}x, "
          f"Pareto span {pareto[latency].max() / pareto[latency].min():.1f}x")
