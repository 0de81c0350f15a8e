"""`nasengine search` over a trained supernet: chosen objectives, constraints, strategies, workers, export pick."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.cli_helpers import run_cli
from nasengine.reporting.fronts import pareto_mask
from nasengine.searching.api import load_rows


def test_objectives_error_params_give_the_front_of_those_objectives(tiny_supernet_dir: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code, text, err = run_cli(capsys, "search", tiny_supernet_dir, "--out", out, "--evals", "16",
                              "--objectives", "error,params", "--quiet")
    assert code == 0, err
    results, pareto = pd.read_csv(out / "results.csv"), pd.read_csv(out / "pareto.csv")
    assert not any(c.startswith("latency") for c in results)  # no device was needed, none was measured
    expected = set(results["number"][pareto_mask(results[["error", "params"]].to_numpy())])
    assert set(pareto["number"]) == expected
    identity = json.loads((out / "run.json").read_text())["identity"]
    assert [o["column"] for o in identity["objectives"]] == ["error", "params"]
    code, _, err = run_cli(capsys, "export", out, "--out", tmp_path / "exp", "--pick", "most-accurate")
    assert code == 0, err
    manifest = json.loads((tmp_path / "exp" / "manifest.json").read_text())
    best = results.loc[results["number"].isin(expected)].sort_values(["accuracy", "params"],
                                                                     ascending=[False, True]).iloc[0]
    assert json.loads(best["arch"]) == manifest["arch"]


def test_a_constraint_keeps_the_front_within_its_bound(tiny_supernet_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    rows_all = None
    code, _, err = run_cli(capsys, "search", tiny_supernet_dir, "--out", out, "--evals", "12",
                           "--objectives", "error,macs", "--constraint", "params<=20000", "--quiet")
    assert code == 0, err
    rows_all = pd.read_csv(out / "results.csv")
    pareto = pd.read_csv(out / "pareto.csv")
    assert (pareto["params"] <= 20000).all()
    assert len(rows_all) == 12


@pytest.mark.parametrize("strategy", ["linas", "tpe"])
def test_predictor_and_optuna_strategies_run_from_the_cli(strategy: str, tiny_supernet_dir: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "search", tiny_supernet_dir, "--out", out, "--evals", "20", "--strategy",
                           strategy, "--objectives", "error,params", "--quiet")
    assert code == 0, err
    rows = load_rows(out)
    assert len(rows) == 20 and len({r.key for r in rows}) == 20
    if strategy == "linas":  # validated candidates record what the predictors promised
        predicted = [r for r in rows if "predicted:error" in r.details]
        assert predicted and all(np.isfinite(r.details["predicted:params"]) for r in predicted)
        assert "predicted:error" in pd.read_csv(out / "results.csv")


def test_two_workers_reach_the_budget_without_duplicate_evaluations(tiny_supernet_dir: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "search", tiny_supernet_dir, "--out", out, "--evals", "16", "--workers", "2",
                           "--objectives", "error,params", "--quiet")
    assert code == 0, err
    from nasengine.searching.store import open_storage

    run = json.loads((out / "run.json").read_text())
    storage = open_storage(out, None)
    trials = storage.get_all_trials(storage.get_study_id_from_name(run["study"]))
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 16 and len({t.user_attrs["arch_key"] for t in complete}) == 16
    # (whether the second process got any work depends on timing: it starts while the first evaluates; the
    # sharing itself is tested with slow evaluations in test_store.py)
    assert run["status"] == "complete" and len(pd.read_csv(out / "results.csv")) == 16
    assert run["summary"]["new_this_session"] == 16  # every worker's evaluations, not the main process's alone


def test_bad_search_options_are_one_line_errors(tiny_supernet_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    for args, message in [(["--objectives", "error,bogus"], "unknown metric 'bogus'"),
                          (["--objectives", ","], "at least one objective"),
                          (["--constraint", "params<<3"], "is not METRIC<=NUMBER"),
                          (["--strategy", "nope"], "unknown search strategy"),
                          (["--storage", "redis://x"], "is not a database URL"),
                          (["--constraint", "latency_ms:ort-cpu-9t<=1", "--device", "ort-cpu-1t"],
                           "device 'ort-cpu-9t' is not searched"),
                          (["--constraint", "params:ort-cpu-1t<=1"], "is not measured per device")]:
        code, _, err = run_cli(capsys, "search", tiny_supernet_dir, "--out", tmp_path / "bad", "--evals", "4",
                               *args)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and message in lines[0], (args, err)


def test_a_registered_metric_that_nothing_computes_is_refused_before_anything_is_written(
        tiny_supernet_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nasengine.searching.objectives import METRICS, Metric, register_metric

    if "flops_only_named" not in METRICS:
        register_metric(Metric("flops_only_named"))
    code, _, err = run_cli(capsys, "search", tiny_supernet_dir, "--out", tmp_path / "run", "--evals", "4",
                           "--objectives", "error,flops_only_named")
    assert code == 2 and "'flops_only_named' is not computed" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_a_device_specific_constraint_bounds_that_device_only(tiny_supernet_dir: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "search", tiny_supernet_dir, "--out", out, "--evals", "6", "--device",
                           "ort-cpu-1t", "--objectives", "error,params", "--constraint", "latency_ms:ort-cpu-1t<=50",
                           "--quiet")
    assert code == 0, err
    constraints = json.loads((out / "run.json").read_text())["identity"]["constraints"]
    assert constraints == [{"column": "latency_ms:ort-cpu-1t", "op": "<=", "bound": 50.0, "device": "ort-cpu-1t"}]


def test_members_strategy_evaluates_the_nested_members_only(tiny_supernet_dir, tmp_path, capsys) -> None:
    from nasengine.search_spaces.samplers import nested_archs
    from nasengine.supernets.io import load_supernet

    code, out, err = run_cli(capsys, "search", tiny_supernet_dir, "--out", tmp_path / "run", "--strategy", "members",
                             "--evals", 20, "--quiet")
    assert code == 0, err
    net, _ = load_supernet(tiny_supernet_dir)
    rows = pd.read_csv(tmp_path / "run" / "results.csv")
    assert [json.loads(a) for a in rows["arch"]] == nested_archs(net.space)
