"""The default export pick weighs validation noise (issue #24, point 5): the fastest Pareto subnet whose accuracy is
within a one-sided 90 % Wilson bound of the most accurate one's; `--pick most-accurate` keeps the old rule."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from nasengine.errors import UserError
from nasengine.exporting.exporter import PickRule, choose_subnet, pick_subnet, wilson_lower_bound
from nasengine.reporting.fronts import results_frame
from nasengine.searching.objectives import Objective, Row
from tests.cli_helpers import one_line_error, run_cli

ERROR, PARAMS = Objective("error"), Objective("params")
LAT = Objective("latency_ms:d", device="d", label="latency (ms)")
N_VAL = 359  # the digits validation split: one image is 0.28 %


def main_job_results() -> pd.DataFrame:
    """The main job's front around #187 and #172, one validation image apart; #150 is three images further."""
    figures = {187: (357, 0.109), 172: (356, 0.045), 150: (350, 0.020), 160: (356, 0.060), 120: (349, 0.300)}
    rows = [Row({"id": n}, f"k{n}", {"accuracy": right / N_VAL, "error": 1 - right / N_VAL, "latency_ms:d": ms,
                                     "params": 1000.0 + n}, number=n) for n, (right, ms) in figures.items()]
    return results_frame(rows, [ERROR, LAT])


def test_the_wilson_bound_is_the_stated_interval() -> None:
    # one-sided 90 % = the lower end of the two-sided 80 % Wilson score interval (hand-checked with scipy's)
    assert wilson_lower_bound(357 / 359, 359) == pytest.approx(0.986672859787, abs=1e-9)
    assert wilson_lower_bound(0.5, 100) == pytest.approx(0.436442, abs=1e-6)
    assert wilson_lower_bound(1.0, 50) < 1.0  # a perfect score is not certain either


def test_within_noise_picks_the_faster_subnet_and_most_accurate_keeps_the_old_one() -> None:
    results = main_job_results()
    picked, record = pick_subnet(results, [ERROR, LAT], [], "d", PickRule("within-noise", N_VAL))
    assert int(picked["number"]) == 172  # 99.16 % at 0.045 ms: one image below #187, 2.4x faster
    assert int(choose_subnet(results, [ERROR, LAT], [], "d", pick="most-accurate")["number"]) == 187
    assert int(choose_subnet(results, [ERROR, LAT], [], "d", val_size=N_VAL)["number"]) == 172  # the default
    assert record["rule"] == "within-noise" and record["by"] == "latency_ms:d"
    assert record["interval"] == {"method": "wilson score", "sided": "lower", "confidence": 0.9, "n": N_VAL,
                                  "accuracy": pytest.approx(357 / N_VAL),
                                  "lower_bound": pytest.approx(wilson_lower_bound(357 / N_VAL, N_VAL))}
    assert sorted(record["candidates"]) == [172, 187]  # #150 (97.5 %) is beyond the noise; #160 is dominated
    assert record["most_accurate"]["number"] == 187 and record["picked"]["number"] == 172
    assert record["picked"]["latency_ms:d"] == pytest.approx(0.045)
    assert "Wilson" in record["text"] and "n = 359" in record["text"] and "98.67%" in record["text"]
    json.dumps(record, allow_nan=False)  # fit for manifest.json
    _, old = pick_subnet(results, [ERROR, LAT], [], "d", PickRule("most-accurate", N_VAL))
    assert old["rule"] == "most-accurate" and old["picked"]["number"] == 187


def test_a_smaller_split_is_noisier() -> None:
    results = main_job_results()
    # on 40 validation images the same accuracies are within noise of one another down to #150
    picked, record = pick_subnet(results, [ERROR, LAT], [], "d", PickRule("within-noise", 40))
    assert int(picked["number"]) == 150 and record["interval"]["n"] == 40


def test_the_latency_budget_applies_first() -> None:
    results = main_job_results()
    picked, record = pick_subnet(results, [ERROR, LAT], [], "d", PickRule("within-noise", N_VAL, 0.05))
    # within 0.05 ms the most accurate is #172; #150 is beyond the noise of it
    assert int(picked["number"]) == 172 and record["most_accurate"]["number"] == 172
    with pytest.raises(UserError, match="no evaluated subnet runs within 0.01 ms on d"):
        pick_subnet(results, [ERROR, LAT], [], "d", PickRule("within-noise", N_VAL, 0.01))


def test_without_a_latency_objective_the_next_objective_decides() -> None:
    results = main_job_results()
    # params: 1000 + number: #160 beats #172 at equal accuracy, so #187 and #160 are within noise; #160 is smaller
    picked, record = pick_subnet(results, [ERROR, PARAMS], [], "d", PickRule("within-noise", N_VAL))
    assert int(picked["number"]) == 160 and record["by"] == "params"
    assert "the best on params" in record["text"]
    assert int(choose_subnet(results, [ERROR, PARAMS], [], "d", pick="most-accurate")["number"]) == 187


def test_the_cli_rejects_an_unknown_pick(tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(capsys, "export", tmp_path, "--out", tmp_path / "exp", "--pick", "fastest")
    assert "invalid choice: 'fastest'" in one_line_error(code, err)


def test_export_records_and_prints_the_rule(tiny_supernet_dir: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "search", tiny_supernet_dir, "--out", run, "--evals", "8",
                           "--objectives", "error,params", "--quiet")
    assert code == 0, err
    results = pd.read_csv(run / "results.csv")
    code, out, err = run_cli(capsys, "export", run, "--out", tmp_path / "noise", "--quiet")
    assert code == 0, err
    manifest = json.loads((tmp_path / "noise" / "manifest.json").read_text())
    pick = manifest["pick"]
    n_val = manifest["search_split"]["n"]
    assert pick["rule"] == "within-noise" and pick["interval"]["n"] == n_val and pick["by"] == "params"
    best = pick["most_accurate"]
    assert best["accuracy"] == pytest.approx(results["accuracy"].max())
    assert pick["interval"]["lower_bound"] == pytest.approx(wilson_lower_bound(best["accuracy"], n_val))
    chosen = results[results["number"] == pick["picked"]["number"]].iloc[0]
    assert json.loads(chosen["arch"]) == manifest["arch"]
    assert chosen["accuracy"] >= pick["interval"]["lower_bound"]
    assert f"pick (within-noise): #{pick['picked']['number']}" in out and "Wilson" in out
    code, out, err = run_cli(capsys, "export", run, "--out", tmp_path / "best", "--pick", "most-accurate", "--quiet")
    assert code == 0, err
    manifest = json.loads((tmp_path / "best" / "manifest.json").read_text())
    assert manifest["pick"]["rule"] == "most-accurate"
    assert manifest["search_accuracy"] == pytest.approx(results["accuracy"].max())
    # the same --out with the other rule is another export, not this one again
    code, _, err = run_cli(capsys, "export", run, "--out", tmp_path / "best", "--quiet")
    assert "pick='most-accurate'" in one_line_error(code, err)
