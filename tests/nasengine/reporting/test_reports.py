"""Reports, hypervolume and the export pick, on synthetic rows (no supernet, no search run)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from nasengine.errors import UserError
from nasengine.exporting.exporter import _mark_exported
from nasengine.exporting.exporter import choose_subnet as choose
from nasengine.reporting.fronts import pareto_frame, pareto_mask, results_frame
from nasengine.reporting.plots import pareto_figure
from nasengine.reporting.reports import mark_exported, objectives_from_identity, summary, write_reports
from nasengine.searching.hypervolume import (evaluations_to_reach, hypervolume_by_evaluation, hypervolume_trace,
                                             normalised_hypervolume)
from nasengine.searching.objectives import MAXIMIZE, Constraint, Objective, Row

ERROR, PARAMS = Objective("error"), Objective("params")
ACCURACY = Objective("accuracy", MAXIMIZE)
LAT_A = Objective("latency_ms:a", device="a", label="latency (ms)")
LAT_B = Objective("latency_ms:b", device="b", label="latency (ms)")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def row(number: int, round_: int = 0, **metrics: float) -> Row:
    """A row whose arch names its number, so a report line can be traced back to the row it came from."""
    details = {}
    for device in ("a", "b"):
        if f"latency_ms:{device}" in metrics:
            details.update({f"latency_iqr_ms:{device}": 0.01 * (number + 1), f"latency_repeats:{device}": 5,
                            f"latency_source:{device}": f"measured-{device}"})
    if "error" in metrics:
        metrics.setdefault("accuracy", 1.0 - metrics["error"])
    return Row({"id": number}, f"k{number}", dict(metrics), details, number, round_, "w0")


# error, params: hand-checked. 0, 1 and 3 form the front; 2 is beaten by 0, 4 by 1.
SMALL = [(0, 0.10, 500), (1, 0.20, 200), (2, 0.15, 600), (3, 0.30, 100), (4, 0.20, 300)]


def small_rows() -> list[Row]:
    rows = [row(n, error=e, params=p) for n, e, p in SMALL]
    return [rows[i] for i in (3, 0, 4, 2, 1)]  # out of order: reports must sort by number, not by position


def front_numbers(pareto: pd.DataFrame, device: str = "") -> list[int]:
    return [int(n) for n in pareto[pareto["device"].fillna("") == device]["number"]]


def test_pareto_mask_hand_checked_and_keeps_exact_duplicates() -> None:
    costs = np.array([[1, 5], [2, 2], [3, 3], [1, 5], [5, 1], [2, 2.5], [np.nan, 0]])
    assert pareto_mask(costs).tolist() == [True, True, False, True, True, False, False]
    costs3 = np.array([[1, 1, 1], [0, 2, 2], [1, 1, 2], [2, 2, 0], [2, 2, 2]])
    assert pareto_mask(costs3).tolist() == [True, True, False, True, False]


def test_pareto_mask_agrees_with_brute_force_and_is_fast() -> None:
    import time

    rng = np.random.default_rng(0)
    for m in (2, 3):
        costs = rng.integers(0, 8, size=(300, m)).astype(float)
        brute = [not any(np.all(costs[j] <= costs[i]) and np.any(costs[j] < costs[i]) for j in range(len(costs)))
                 for i in range(len(costs))]
        assert pareto_mask(costs).tolist() == brute
    t = np.linspace(0, 1, 10_000)
    started = time.perf_counter()
    assert pareto_mask(np.column_stack([t, 1 - t])).all()  # every point on the front: the worst case
    pareto_mask(rng.random((10_000, 3)))
    assert time.perf_counter() - started < 3.0


def test_front_for_error_and_params_is_hand_checked_and_keeps_numbers() -> None:
    results = results_frame(small_rows(), [ERROR, PARAMS])
    assert results["number"].tolist() == [0, 1, 2, 3, 4]
    pareto = pareto_frame(results, [ERROR, PARAMS])
    assert front_numbers(pareto) == [0, 1, 3]  # sorted by the first objective: lowest error first
    assert (pareto["device"].fillna("") == "").all()
    for _, line in pareto.iterrows():  # each front row is the results row of the same number, unchanged
        source = results[results["number"] == line["number"]].iloc[0]
        assert json.loads(line["arch"]) == {"id": int(line["number"])}
        assert line["error"] == source["error"] and line["params"] == source["params"]


def test_a_maximised_objective_is_maximised() -> None:
    rows = [row(0, accuracy=0.90, params=500), row(1, accuracy=0.80, params=200), row(2, accuracy=0.85, params=600),
            row(3, accuracy=0.70, params=100), row(4, accuracy=0.95, params=900), row(5, accuracy=0.60, params=150)]
    results = results_frame(rows, [ACCURACY, PARAMS])
    assert front_numbers(pareto_frame(results, [ACCURACY, PARAMS])) == [4, 0, 1, 3]  # most accurate first
    # A user metric to maximise, against a minimised one.
    rows = [Row({"id": i}, str(i), {"throughput": t, "params": p}, number=i)
            for i, (t, p) in enumerate([(10, 5), (20, 5), (30, 9), (5, 1), (25, 9)])]
    objectives = [Objective("throughput", MAXIMIZE), PARAMS]
    assert front_numbers(pareto_frame(results_frame(rows, objectives), objectives)) == [2, 1, 3]


def multi_device_rows() -> list[Row]:
    # Device a favours 0 and 2, device b favours 1 and 3; 4 is fast on b alone, 5 is slow everywhere.
    figures = [(0.10, 1.0, 9.0), (0.10, 5.0, 2.0), (0.20, 0.5, 9.5), (0.20, 6.0, 1.0), (0.30, 7.0, 0.5),
               (0.30, 8.0, 8.0)]
    return [row(n, round_=n // 2, error=e, **{"latency_ms:a": la, "latency_ms:b": lb, "params": 100 + n})
            for n, (e, la, lb) in enumerate(figures)]


def test_several_devices_give_one_front_each_with_that_devices_columns() -> None:
    objectives = [ERROR, LAT_A, LAT_B]
    results = results_frame(multi_device_rows(), objectives)
    pareto = pareto_frame(results, objectives)
    assert list(pareto.columns[:2]) == ["device", "number"]
    assert set(pareto["device"]) == {"a", "b"}
    assert front_numbers(pareto, "a") == [0, 2]
    assert front_numbers(pareto, "b") == [1, 3, 4]
    for device in ("a", "b"):
        for _, line in pareto[pareto["device"] == device].iterrows():
            source = results[results["number"] == line["number"]].iloc[0]
            assert line[f"latency_ms:{device}"] == source[f"latency_ms:{device}"]
            assert line[f"latency_source:{device}"] == f"measured-{device}"
    assert not {"latency_ms", "latency_iqr_ms", "latency_repeats", "latency_source"} & set(pareto.columns)


def test_constraints_exclude_rows_and_per_device_bounds_stay_on_their_device() -> None:
    results = results_frame(small_rows(), [ERROR, PARAMS])
    assert front_numbers(pareto_frame(results, [ERROR, PARAMS], [Constraint("error", "<=", 0.25)])) == [0, 1]
    # Without 0 (params <= 400), 2 is excluded too, and 4 stays beaten by 1.
    assert front_numbers(pareto_frame(results, [ERROR, PARAMS], [Constraint("params", "<=", 400)])) == [1, 3]
    objectives = [ERROR, LAT_A, LAT_B]
    results = results_frame(multi_device_rows(), objectives)
    on_b = Constraint("latency_ms:b", "<=", 1.5, "b")
    pareto = pareto_frame(results, objectives, [on_b])
    assert front_numbers(pareto, "b") == [3, 4]
    assert front_numbers(pareto, "a") == [0, 2]  # a bound on device b does not decide what suits device a
    everywhere = pareto_frame(results, objectives, [Constraint("error", ">=", 0.15)])
    assert front_numbers(everywhere, "a") == [2] and front_numbers(everywhere, "b") == [3, 4]


def test_results_csv_columns_name_their_device(tmp_path: Path) -> None:
    rows = multi_device_rows()
    rows[0].metrics["latency_ms"] = 123.0  # a bare per-device figure (an upstream mistake) is never written
    rows[0].metrics["energy_mj"] = 1.5
    rows[1].details["predicted:error"] = 0.11
    objectives = [ERROR, LAT_A, LAT_B]
    write_reports(tmp_path, rows, objectives)
    results = pd.read_csv(tmp_path / "results.csv")
    assert list(results.columns) == [
        "number", "round", "arch", "accuracy", "error", "params", "latency_ms:a", "latency_ms:b", "energy_mj",
        "latency_iqr_ms:a", "latency_repeats:a", "latency_source:a", "latency_iqr_ms:b", "latency_repeats:b",
        "latency_source:b", "predicted:error", "worker"]
    assert "latency_ms" not in pd.read_csv(tmp_path / "pareto.csv").columns
    assert results["number"].tolist() == list(range(6)) and results["round"].tolist() == [0, 0, 1, 1, 2, 2]
    assert results["arch"][0] == '{"id":0}'  # compact JSON
    assert results.loc[1, "predicted:error"] == 0.11 and np.isnan(results.loc[0, "predicted:error"])


def test_hypervolume_of_known_fronts() -> None:
    front = [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]]
    # Union of [0,1.1]x[1,1.1], [1,1.1]x[0,1.1], [.5,1.1]x[.5,1.1]: 0.11 + 0.11 - 0.01 + 0.36 - 0.06 - 0.06 + 0.01
    assert normalised_hypervolume(front, [0, 0], [1, 1]) == pytest.approx(0.46)
    # The same front in raw units, normalised by its own ideal and nadir; dominated and NaN points add nothing.
    raw = [[1.0, 20.0], [3.0, 10.0], [2.0, 15.0], [3.0, 20.0], [np.nan, 0.0]]
    assert normalised_hypervolume(raw, [1, 10], [3, 20]) == pytest.approx(0.46)
    assert normalised_hypervolume([[0.0, 0.0]], [0, 0], [1, 1], reference=2.0) == pytest.approx(4.0)
    assert normalised_hypervolume([[1.2, 0.0]], [0, 0], [1, 1]) == 0.0  # beyond the reference
    # 3-D: two boxes 1.21 x 0.1 overlapping in 0.1 x 1.1 x 0.1.
    assert normalised_hypervolume([[0, 0, 1], [1, 0, 0]], [0] * 3, [1] * 3) == pytest.approx(0.231)


def test_hypervolume_follows_directions_and_bounds() -> None:
    rows = [row(0, accuracy=0.9, params=300), row(1, accuracy=0.7, params=100)]
    objectives = [ACCURACY, PARAMS]
    # Bounds are raw values: accuracy's ideal is its maximum. The two points normalise to (0, 1) and (1, 0).
    curve = hypervolume_by_evaluation(rows, objectives, ideal={"accuracy": 0.9, "params": 100},
                                      nadir={"accuracy": 0.7, "params": 300})
    assert curve == pytest.approx([1.1 * 0.1, 0.11 + 0.11 - 0.01])
    assert hypervolume_by_evaluation(rows, objectives)[-1] == pytest.approx(0.21)  # the run's own bounds


def random_rows(n: int, seed: int = 0) -> list[Row]:
    rng = np.random.default_rng(seed)
    return [row(i, round_=i // 7, error=float(rng.random()), params=float(rng.integers(1, 10_000)),
                **{"latency_ms:a": float(rng.random() * 10)}) for i in range(n)]


def test_hypervolume_trace_is_monotone_and_matches_per_evaluation() -> None:
    rows = random_rows(120)
    objectives, constraints = [ERROR, PARAMS], [Constraint("latency_ms:a", "<=", 6.0, "a")]
    trace = hypervolume_trace(rows, objectives, constraints)
    assert trace["round"].tolist() == list(range(18))
    assert trace["evaluations"].tolist() == [min(7 * (r + 1), 120) for r in range(18)]
    assert (np.diff(trace["hypervolume"]) >= -1e-12).all() and trace["hypervolume"].iloc[-1] > 0
    curve = hypervolume_by_evaluation(rows, objectives, constraints)
    assert (np.diff(curve) >= -1e-12).all()
    assert curve[trace["evaluations"].to_numpy() - 1] == pytest.approx(trace["hypervolume"].to_numpy())
    # Infeasible rows change nothing: a row beyond the bound leaves the curve flat.
    infeasible = [i for i, r in enumerate(rows) if r.metrics["latency_ms:a"] > 6.0 and i > 0]
    assert all(curve[i] == curve[i - 1] for i in infeasible)
    # Only feasible rows set the default bounds.
    ideal = json.loads(trace["ideal"][0])
    assert ideal["error"] == min(r.metrics["error"] for r in rows if r.metrics["latency_ms:a"] <= 6.0)


def test_incremental_hypervolume_matches_direct_computation() -> None:
    rng = np.random.default_rng(1)
    for trial in range(30):
        points = rng.integers(0, 6, size=(25, 2)).astype(float)  # many ties and duplicates
        rows = [Row({}, str(i), {"x": p[0], "y": p[1]}, number=i) for i, p in enumerate(points)]
        objectives = [Objective("x"), Objective("y")]
        curve = hypervolume_by_evaluation(rows, objectives, ideal=[0, 0], nadir=[5, 5])
        direct = [normalised_hypervolume(points[:k + 1], [0, 0], [5, 5]) for k in range(len(points))]
        assert curve == pytest.approx(direct, abs=1e-12)


def test_hypervolume_by_evaluation_is_fast_for_thousands_of_rows() -> None:
    import time

    t = np.random.default_rng(2).permutation(np.linspace(0, 1, 5000))
    rows = [Row({}, str(i), {"error": float(v), "params": float(1 - v)}, number=i) for i, v in enumerate(t)]
    started = time.perf_counter()
    curve = hypervolume_by_evaluation(rows, [ERROR, PARAMS])
    assert time.perf_counter() - started < 1.0
    assert curve[-1] == pytest.approx(normalised_hypervolume(np.column_stack([t, 1 - t]), [0, 0], [1, 1]))


def test_evaluations_to_reach() -> None:
    rows = [row(0, error=0.5, params=500), row(1, error=0.5, params=600), row(2, error=0.1, params=100),
            row(3, error=0.05, params=50)]
    bounds = dict(ideal={"error": 0.0, "params": 0}, nadir={"error": 1.0, "params": 1000})
    curve = hypervolume_by_evaluation(rows, [ERROR, PARAMS], **bounds)
    assert evaluations_to_reach(curve, curve[0]) == 1
    assert evaluations_to_reach(curve, curve[2]) == 3
    assert evaluations_to_reach(rows, curve[3], [ERROR, PARAMS], **bounds) == 4
    assert evaluations_to_reach(rows, 2.0, [ERROR, PARAMS], **bounds) is None
    trace = pd.DataFrame({"evaluations": [2, 4], "hypervolume": [curve[1], curve[3]]})
    assert evaluations_to_reach(trace, curve[2]) == 4  # per-round resolution when given a trace


def test_reports_are_written(tmp_path: Path) -> None:
    rows = multi_device_rows()
    objectives = [ERROR, LAT_A, LAT_B]
    results, pareto = write_reports(tmp_path, rows, objectives, [Constraint("params", "<=", 104)], chosen={"a": 0})
    for name in ("pareto.png", "hypervolume.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == PNG_MAGIC
        Image.open(io.BytesIO(data)).verify()
    assert 5 not in front_numbers(pareto, "b")  # params 105 breaks the constraint
    hv = pd.read_csv(tmp_path / "hypervolume.csv")
    assert {"round", "evaluations", "hypervolume", "ideal", "nadir", "reference", "reference_point"} <= set(hv.columns)
    assert set(json.loads(hv["nadir"][0])) == {"error", "latency_ms:a", "latency_ms:b"}
    assert hv["reference"][0] == pytest.approx(1.1)
    info = summary(rows, objectives, [Constraint("params", "<=", 104)])
    assert info["evaluated"] == 6 and info["feasible"] == 5
    assert info["pareto_sizes"] == {"a": 2, "b": 3}
    assert info["hypervolume"]["value"] == pytest.approx(hv["hypervolume"].iloc[-1])
    json.dumps(info, allow_nan=False)  # fit for run.json


def labels_overlap(ax, axis: str) -> bool:
    renderer = ax.figure.canvas.get_renderer()
    ticks = ax.xaxis if axis == "x" else ax.yaxis
    boxes = [t.get_window_extent(renderer) for t in ticks.get_ticklabels(which="both")
             if t.get_visible() and t.get_text()]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_pareto_figure_names_devices_marks_the_export_and_has_readable_ticks() -> None:
    rows = multi_device_rows()
    for r, scale in zip(rows, (0.001, 0.04, 0.3, 2.0, 9.0, 40.0)):  # latency over 4.6 decades: a log axis
        r.metrics["latency_ms:a"] = scale
        # About one decade on b (3 to 39 ms, same order): where matplotlib's own log axis labels minor ticks.
        r.metrics["latency_ms:b"] = 4 * r.metrics["latency_ms:b"] + 1
    objectives = [ERROR, LAT_A, LAT_B]
    results = results_frame(rows, objectives)
    pareto = pareto_frame(results, objectives)
    fig = pareto_figure(results, pareto, objectives, chosen={"b": 3})
    fig.canvas.draw()
    ax_a, ax_b = fig.axes[:2]
    assert "on a" in ax_a.get_xlabel() and "on b" in ax_b.get_xlabel()
    assert "accuracy" in ax_a.get_ylabel()
    assert ax_a.get_xscale() == "log" and ax_b.get_xscale() == "log"
    for ax in (ax_a, ax_b):
        assert not labels_overlap(ax, "x") and not labels_overlap(ax, "y")
        assert not [t for t in ax.xaxis.get_ticklabels(minor=True) if t.get_text()]
        assert 2 <= len([t for t in ax.xaxis.get_ticklabels() if t.get_text()]) <= 6
    legend_b = [t.get_text() for t in ax_b.get_legend().get_texts()]
    legend_a = [t.get_text() for t in ax_a.get_legend().get_texts()]
    assert "exported" in legend_b and "exported" not in legend_a
    annotated = sorted(int(t.get_text()) for t in ax_b.texts)
    assert annotated == front_numbers(pareto, "b")


def test_two_objective_panels_keep_their_axes_and_staircase() -> None:
    rows = random_rows(30)
    two = [ERROR, PARAMS]
    results = results_frame(rows, two)
    fig = pareto_figure(results, pareto_frame(results, two), two)
    assert len(fig.axes) == 1 and "projected" not in fig.axes[0].get_title()
    assert "params" in fig.axes[0].get_xlabel() and "accuracy" in fig.axes[0].get_ylabel()
    assert len(fig.axes[0].lines) == 1  # the staircase


def run_dir_with(tmp_path: Path, rows: list[Row], objectives: list[Objective],
                 constraints: list[Constraint] = ()) -> Path:
    write_reports(tmp_path, rows, objectives, constraints)
    identity = {"devices": sorted({o.device for o in objectives if o.device}),
                "objectives": [o.to_dict() for o in objectives], "constraints": [c.to_dict() for c in constraints]}
    (tmp_path / "run.json").write_text(json.dumps({"identity": identity, "status": "complete"}))
    return tmp_path


def test_export_pick_follows_the_objectives(tmp_path: Path) -> None:
    def choose_subnet(*args, **kwargs):  # the old rule: --pick most-accurate (within-noise: test_export_pick.py)
        return choose(*args, **kwargs, pick="most-accurate")

    results = results_frame(small_rows(), [ERROR, PARAMS])
    assert int(choose_subnet(results, [ERROR, PARAMS], [], "a")["number"]) == 0  # the most accurate
    assert int(choose_subnet(results, [PARAMS, ERROR], [], "a")["number"]) == 0  # accuracy first, whatever the order
    # Equal error on the front (a third objective keeps both): the better on the next objective wins.
    macs = Objective("macs")
    tied = results_frame([row(0, error=0.1, params=200, macs=1), row(1, error=0.1, params=100, macs=5),
                          row(2, error=0.3, params=50, macs=1)], [ERROR, PARAMS, macs])
    assert int(choose_subnet(tied, [ERROR, PARAMS, macs], [], "a")["number"]) == 1
    assert int(choose_subnet(tied, [ERROR, macs, PARAMS], [], "a")["number"]) == 0
    rows = multi_device_rows()
    for r in rows:
        r.metrics["params"] = 200 - r.number  # the least accurate rows are now the smallest
    objectives = [PARAMS, LAT_A]  # no accuracy objective: the best on the first objective
    assert int(choose_subnet(results_frame(rows, objectives), objectives, [], "a")["number"]) == 5
    objectives = [LAT_A, PARAMS]
    assert int(choose_subnet(results_frame(rows, objectives), objectives, [], "a")["number"]) == 2
    objectives = [ERROR, LAT_A, LAT_B]
    results = results_frame(rows, objectives)
    assert int(choose_subnet(results, objectives, [], "a")["number"]) == 0  # error 0.10, 1.0 ms on a
    assert int(choose_subnet(results, objectives, [], "b")["number"]) == 1  # error 0.10, 2.0 ms on b
    assert int(choose_subnet(results, objectives, [], "a", latency_budget_ms=0.8)["number"]) == 2
    with pytest.raises(UserError, match="no evaluated subnet runs within 0.1 ms on a"):
        choose_subnet(results, objectives, [], "a", latency_budget_ms=0.1)
    with pytest.raises(UserError, match="qualifies"):
        choose_subnet(results, objectives, [Constraint("error", "<=", 0.01)], "a")


def test_identity_round_trip_and_legacy_runs() -> None:
    objectives, constraints = [ERROR, LAT_A, LAT_B], [Constraint("latency_ms:a", "<=", 2.0, "a")]
    identity = {"devices": ["a", "b"], "objectives": [o.to_dict() for o in objectives],
                "constraints": [c.to_dict() for c in constraints]}
    assert objectives_from_identity(identity) == (objectives, constraints)
    legacy_objectives, legacy_constraints = objectives_from_identity(
        {"devices": ["a"], "objectives": ["error", "latency"], "latency_budget_ms": 3.0})
    assert [o.column for o in legacy_objectives] == ["error", "latency_ms:a"]
    assert legacy_constraints == [Constraint("latency_ms:a", "<=", 3.0, "a")]
    named, _ = objectives_from_identity({"objectives": ["accuracy", "latency_ms:lut:x", "energy"]})
    assert named == [Objective("accuracy", MAXIMIZE, "top-1 accuracy"),
                     Objective("latency_ms:lut:x", label="latency (ms)", device="lut:x"),
                     Objective("energy", label="energy")]
    with pytest.raises(UserError):
        objectives_from_identity({"objectives": [{"direction": "up"}]})


def test_mark_exported_stars_the_subnet_and_records_it(tmp_path: Path) -> None:
    run = run_dir_with(tmp_path, multi_device_rows(), [ERROR, LAT_A, LAT_B])
    before = (run / "pareto.png").read_bytes()
    mark_exported(run, "b", 1)
    mark_exported(run, "b", 1)
    mark_exported(run, "a", 0)
    assert json.loads((run / "exported.json").read_text()) == {"exported": {"b": [1], "a": [0]}}
    after = (run / "pareto.png").read_bytes()
    assert after[:8] == PNG_MAGIC and after != before
    # A later report (a resumed search) keeps the marks it finds recorded.
    write_reports(run, multi_device_rows(), [ERROR, LAT_A, LAT_B])
    assert (run / "pareto.png").read_bytes() == after


def test_export_marks_what_it_exported(tmp_path: Path) -> None:
    run = run_dir_with(tmp_path, small_rows(), [ERROR, PARAMS])
    results = pd.read_csv(run / "results.csv")
    _mark_exported(run, "ort-cpu-1t", choose(results, [ERROR, PARAMS], [], "ort-cpu-1t", pick="most-accurate"))
    _mark_exported(run, "ort-cpu-1t", pd.Series({"accuracy": 0.5}))  # an --arch never evaluated: nothing to mark
    assert json.loads((run / "exported.json").read_text()) == {"exported": {"ort-cpu-1t": [0]}}


def test_reports_of_an_empty_or_wholly_infeasible_run(tmp_path: Path) -> None:
    objectives = [ERROR, LAT_A]
    results, pareto = write_reports(tmp_path / "empty", [], objectives)
    assert results.empty and pareto.empty and {"error", "latency_ms:a"} <= set(results.columns)
    assert (tmp_path / "empty" / "pareto.png").read_bytes()[:8] == PNG_MAGIC
    rows = multi_device_rows()
    results, pareto = write_reports(tmp_path / "none", rows, objectives, [Constraint("error", "<=", 0.01)])
    assert len(results) == 6 and pareto.empty
    hv = pd.read_csv(tmp_path / "none" / "hypervolume.csv")
    assert (hv["hypervolume"] == 0).all() and json.loads(hv["ideal"][0]) == {"error": None, "latency_ms:a": None}
    info = summary(rows, objectives, [Constraint("error", "<=", 0.01)])
    assert info["feasible"] == 0 and info["hypervolume"]["value"] == 0
    json.dumps(info, allow_nan=False)
