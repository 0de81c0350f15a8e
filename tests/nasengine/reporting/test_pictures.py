"""pareto.png and hypervolume.png say what they show (issue #24, point 4): readable numbers, axes that show the
quantity they name, INT8/FP32 subnets told apart, 3-objective fronts without a false staircase, and a hypervolume
whose scale is stated and can be fixed across runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nasengine.reporting import reports
from nasengine.reporting.fronts import pareto_frame, results_frame
from nasengine.reporting.plots import hypervolume_figure, pareto_figure, precision_classes
from nasengine.reporting.reports import engine_accuracy, summary, write_reports
from nasengine.searching.hypervolume import hypervolume_by_evaluation, hypervolume_trace
from nasengine.searching.objectives import MAXIMIZE, Objective, Row
from tests.cli_helpers import one_line_error, run_cli

ERROR, PARAMS = Objective("error"), Objective("params")
LAT = Objective("latency_ms:a", device="a", label="latency (ms)")
SCORE = Objective("score", MAXIMIZE, "score")


def rows_of(points: list[dict[str, float]], details: list[dict] | None = None) -> list[Row]:
    """Rows numbered in order, accuracy = 1 - error where an error is given (as the engine records both)."""
    out = []
    for i, metrics in enumerate(points):
        metrics = dict(metrics)
        if "error" in metrics:
            metrics.setdefault("accuracy", 1.0 - metrics["error"])
        out.append(Row({"id": i}, f"k{i}", metrics, (details or [{}] * len(points))[i], i, i // 10))
    return out


def figure_of(rows: list[Row], objectives: list[Objective], **kwargs):
    results = results_frame(rows, objectives)
    fig = pareto_figure(results, pareto_frame(results, objectives), objectives, **kwargs)
    fig.canvas.draw()
    return results, fig


def dense_front_rows() -> list[Row]:
    """60 front points along a smooth curve, packed at one end, plus 40 dominated rows."""
    rng = np.random.default_rng(3)
    t = np.sort(rng.random(60))
    points = [{"error": 0.02 + 0.1 * (1 - v) ** 2, "latency_ms:a": 0.05 + v} for v in t]
    points += [{"error": 0.1 + 0.2 * rng.random(), "latency_ms:a": 0.6 + rng.random()} for _ in range(40)]
    return rows_of(points)


def boxes(ax, texts) -> list:
    renderer = ax.figure.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in texts]


def same_points(drawn, expected) -> bool:
    """Whether two sets of (x, y) points agree (in any order)."""
    drawn, expected = np.asarray(drawn, dtype=float), np.asarray(expected, dtype=float)
    if drawn.shape != expected.shape:
        return False
    order = (lambda p: p[np.lexsort(p.T[::-1])]) if len(drawn) else (lambda p: p)
    return bool(np.allclose(order(drawn), order(expected)))


def front_points(ax) -> np.ndarray:
    """The (x, y) of the front points as drawn (every collection the figure tags as front)."""
    parts = [c.get_offsets() for c in ax.collections if str(c.get_gid() or "").startswith("front")]
    return np.concatenate(parts) if parts else np.zeros((0, 2))


# ------------------------------------------------------------------------------------------------ a) labels

def test_dense_front_numbers_never_overlap_and_the_star_keeps_its_number() -> None:
    rows = dense_front_rows()
    results = results_frame(rows, [ERROR, LAT])
    pareto = pareto_frame(results, [ERROR, LAT])
    assert len(pareto) == 60
    starred = int(pareto["number"].iloc[30])  # in the densest part of the front
    fig = pareto_figure(results, pareto, [ERROR, LAT], chosen=starred)
    fig.canvas.draw()
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_gid() in ("front-label", "exported-label")]
    found = boxes(ax, labels)
    assert len(labels) >= 10  # a readable share of the front is numbered
    overlapping = [(labels[i].get_text(), labels[j].get_text()) for i in range(len(found))
                   for j in range(i + 1, len(found)) if found[i].overlaps(found[j])]
    assert overlapping == []
    assert len({t.get_text() for t in labels}) == len(labels)  # one number per point
    star_label = [t for t in ax.texts if t.get_gid() == "exported-label"]
    assert [t.get_text() for t in star_label] == [str(starred)]
    star = next(c for c in ax.collections if c.get_gid() == "exported")
    assert star_label[0].get_zorder() > star.get_zorder()  # drawn above its star, not hidden by it
    # ... and beside it, not under it
    centre = ax.transData.transform(star.get_offsets()[0])
    box = boxes(ax, star_label)[0]
    assert not box.contains(*centre)
    # the extreme points of the front are numbered
    numbers = {t.get_text() for t in labels}
    fastest = pareto.loc[pareto["latency_ms:a"].idxmin(), "number"]
    most_accurate = pareto.loc[pareto["error"].idxmin(), "number"]
    assert {str(fastest), str(most_accurate)} <= numbers


# ---------------------------------------------------------------------------------------------- b) axes

@pytest.mark.parametrize("objectives, x_column, y_column", [
    ([SCORE, LAT], "score", "latency_ms:a"),  # a maximised objective is like any other: first on x
    ([LAT, SCORE], "latency_ms:a", "score"),
    ([PARAMS, SCORE], "params", "score"),
])
def test_each_axis_shows_the_objective_it_names(objectives, x_column, y_column) -> None:
    rng = np.random.default_rng(0)
    rows = rows_of([{"score": float(rng.random() * 10), "latency_ms:a": float(rng.random() + 0.1),
                     "params": float(rng.integers(100, 200)), "error": float(rng.random() * 0.2)}
                    for _ in range(30)])
    results, fig = figure_of(rows, objectives)
    ax = fig.axes[0]
    pareto = pareto_frame(results, objectives)
    names = {"score": "score", "latency_ms:a": "latency", "params": "params"}
    assert names[x_column] in ax.get_xlabel() and names[y_column] in ax.get_ylabel()
    assert "accuracy" not in ax.get_xlabel() + ax.get_ylabel()  # accuracy is no objective here
    drawn = front_points(ax)
    expected = pareto[[x_column, y_column]].to_numpy(dtype=float)
    assert same_points(drawn, expected)


def test_accuracy_is_on_y_whatever_the_objective_order() -> None:
    rng = np.random.default_rng(1)
    rows = rows_of([{"error": float(rng.random() * 0.3), "latency_ms:a": float(rng.random() + 0.1)}
                    for _ in range(30)])
    for objectives in ([ERROR, LAT], [LAT, ERROR]):
        results, fig = figure_of(rows, objectives)
        ax = fig.axes[0]
        assert "latency" in ax.get_xlabel() and "top-1 accuracy" in ax.get_ylabel()
        pareto = pareto_frame(results, objectives)
        expected = np.column_stack([pareto["latency_ms:a"], 100 * (1 - pareto["error"])])
        assert same_points(front_points(ax), expected)


# --------------------------------------------------------------------------------------- c) run kinds

def python_api_rows() -> list[Row]:
    """A user's own `error` objective (a loss, not a top-1 error) and an unrelated recorded `accuracy`."""
    rng = np.random.default_rng(2)
    return [Row({"id": i}, f"k{i}", {"error": float(2 + rng.random() * 3), "latency_ms": float(rng.random() + 0.1),
                                      "accuracy": float(rng.random())}, number=i) for i in range(25)]


def test_a_python_api_error_objective_is_drawn_as_itself() -> None:
    objectives = [Objective("error", label="top-1 error"), Objective("latency_ms", label="latency (ms)")]
    rows = python_api_rows()
    results, fig = figure_of(rows, objectives, engine_accuracy=False)
    ax = fig.axes[0]
    assert "top-1" not in ax.get_ylabel() and "%" not in ax.get_ylabel()
    assert ax.get_ylabel() == "error (lower is better)" and ax.get_xlabel() == "latency_ms (lower is better)"
    pareto = pareto_frame(results, objectives)
    expected = pareto[["latency_ms", "error"]].to_numpy(dtype=float)  # the values as they are, not 100 * (1 - e)
    assert same_points(front_points(ax), expected)
    # a supernet run's error is the engine's top-1 error: drawn as accuracy in %
    _, fig = figure_of(rows, objectives, engine_accuracy=True)
    assert "top-1 accuracy" in fig.axes[0].get_ylabel()


def test_reports_know_the_kind_of_run_from_run_json(tmp_path: Path, monkeypatch) -> None:
    assert engine_accuracy({"supernet_dir": "/sn", "devices": []}) is True
    assert engine_accuracy({"api": "python", "objectives": []}) is False
    seen = []
    real = reports.plot_pareto
    monkeypatch.setattr(reports, "plot_pareto", lambda *a, **k: seen.append(a[-1]) or real(*a, **k))
    objectives = [Objective("error"), Objective("latency_ms")]
    for name, identity in (("python", {"api": "python"}), ("cli", {"supernet_dir": "/sn", "devices": []})):
        run = tmp_path / name
        run.mkdir()
        (run / "run.json").write_text(json.dumps({"identity": identity, "status": "running"}))
        write_reports(run, python_api_rows(), objectives)
    assert seen == [False, True]


def test_the_python_api_writes_its_own_names_on_the_axes(tmp_path: Path, monkeypatch) -> None:
    import nasengine
    from nasengine.search_spaces import Choice, Space

    labels = []
    real = reports.plot_pareto

    def spy(results, pareto, objectives, path, constraints=(), chosen=None, engine=True):
        fig = pareto_figure(results, pareto, objectives, constraints, chosen, engine)
        labels.append(fig.axes[0].get_ylabel())
        real(results, pareto, objectives, path, constraints, chosen, engine)

    monkeypatch.setattr(reports, "plot_pareto", spy)
    space = Space([Choice("depth", [1, 2, 3]), Choice("width", [16, 32, 64])])
    nasengine.search(space, {"error": lambda a: 0.5 / a["depth"] + a["width"] / 100,
                             "latency_ms": lambda a: a["depth"] * a["width"] / 10},
                     strategy="random", budget=5, out=tmp_path / "run")
    assert labels == ["error (lower is better)"]


# ----------------------------------------------------------------------------------------- d) INT8 / FP32

def quant_rows() -> list[Row]:
    """Policies all FP32, mixed and all INT8 in turn; latencies and errors spread so each kind reaches the front."""
    rng = np.random.default_rng(4)
    rows = []
    for i in range(45):
        share = (0.0, 0.5, 1.0)[i % 3]
        policy = {f"layer{k}": "int8" if k < round(4 * share) else "fp32" for k in range(4)}
        rows.append({"error": float(rng.random() * 0.3), "latency_ms:a": float(rng.random() + 0.05)})
        rows[-1]["policy"] = policy
    return rows_of([{k: v for k, v in r.items() if k != "policy"} for r in rows],
                   [{"quant_policy": json.dumps(r["policy"])} for r in rows])


def test_int8_and_fp32_subnets_are_told_apart() -> None:
    rows = quant_rows()
    results, fig = figure_of(rows, [ERROR, LAT])
    classes = precision_classes(results)
    assert list(classes[:6]) == ["fp32", "mixed", "int8"] * 2
    assert precision_classes(results.drop(columns=["quant_policy"])) is None  # an FP32 run: no marks
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    for text, name in (("all layers FP32", "fp32"), ("mixed precisions", "mixed"), ("all layers INT8", "int8")):
        assert f"{text} ({int((classes == name).sum())})" in legend
    pareto = pareto_frame(results, [ERROR, LAT])
    front_classes = precision_classes(pareto)
    paths = {}
    for name in ("fp32", "mixed", "int8"):
        drawn = [c for c in ax.collections if c.get_gid() == f"front:{name}"]
        expected = pareto[front_classes == name]
        if len(expected):
            points = np.column_stack([expected["latency_ms:a"], 100 * (1 - expected["error"])])
            assert same_points(drawn[0].get_offsets(), points)
            paths[name] = drawn[0].get_paths()[0].vertices.tolist()
    assert len(paths) >= 2 and len({json.dumps(v) for v in paths.values()}) == len(paths)  # distinct markers


# ----------------------------------------------------------------------------------------- e) 3 objectives

def test_a_three_objective_front_is_drawn_pair_by_pair_without_staircase() -> None:
    rng = np.random.default_rng(5)
    rows = rows_of([{"error": float(rng.random() * 0.3), "latency_ms:a": float(rng.random() + 0.05),
                     "params": float(rng.integers(1000, 9000))} for _ in range(40)])
    objectives = [ERROR, LAT, PARAMS]
    results, fig = figure_of(rows, objectives)
    pareto = pareto_frame(results, objectives)
    assert len(fig.axes) == 3  # error-latency, error-params, latency-params
    pairs = {(ax.get_xlabel().split(" ")[0], ax.get_ylabel().split(" ")[0]) for ax in fig.axes}
    assert pairs == {("median", "top-1"), ("params", "top-1"), ("median", "params")}
    for ax in fig.axes:
        assert "over all 3 objectives" in ax.get_title() and "no staircase" in ax.get_title()
        assert len(ax.lines) == 0  # no staircase: a projection of a 3-objective front is none
        assert len(front_points(ax)) == len(pareto)  # the whole front, in every panel


# ------------------------------------------------------------------------------------------ f) hypervolume

REFERENCE = {"ideal": {"error": 0.0, "params": 0.0}, "nadir": {"error": 1.0, "params": 1000.0}, "reference": 1.1}


def run_with(tmp_path: Path, name: str, rows: list[Row], reference: dict | None) -> pd.DataFrame:
    run = tmp_path / name
    run.mkdir()
    identity = {"supernet_dir": "/sn", "devices": [], **({"hv_reference": reference} if reference else {})}
    (run / "run.json").write_text(json.dumps({"identity": identity, "status": "running"}))
    write_reports(run, rows, [ERROR, PARAMS])
    return pd.read_csv(run / "hypervolume.csv")


def test_runs_with_the_same_reference_have_comparable_hypervolumes(tmp_path: Path) -> None:
    found = [{"error": 0.2, "params": 400}, {"error": 0.3, "params": 200}, {"error": 0.21, "params": 210}]
    a = rows_of(found)
    b = rows_of([*found, {"error": 0.6, "params": 10}])  # everything a found, and one more front point
    own_a, own_b = run_with(tmp_path, "a", a, None), run_with(tmp_path, "b", b, None)
    # each on its own scale: b looks worse although its front contains a's (the reason for a fixed reference)
    assert own_b["hypervolume"].iloc[-1] < own_a["hypervolume"].iloc[-1]
    assert set(own_a["normalisation"]) == {"run"}
    fixed_a, fixed_b = run_with(tmp_path, "fa", a, REFERENCE), run_with(tmp_path, "fb", b, REFERENCE)
    assert fixed_b["hypervolume"].iloc[-1] > fixed_a["hypervolume"].iloc[-1]
    # hand-checked: a scales to (0.2, 0.4), (0.21, 0.21), (0.3, 0.2); the reference point is (1.1, 1.1)
    assert fixed_a["hypervolume"].iloc[-1] == pytest.approx(0.9 * 0.7 + 0.89 * 0.19 + 0.8 * 0.01)
    for trace in (fixed_a, fixed_b):
        assert set(trace["normalisation"]) == {"fixed"}
        assert json.loads(trace["ideal"].iloc[0]) == REFERENCE["ideal"]
        assert json.loads(trace["nadir"].iloc[0]) == REFERENCE["nadir"]
    assert fixed_a["reference_id"].iloc[0] == fixed_b["reference_id"].iloc[0] != ""
    info = summary(b, [ERROR, PARAMS], identity={"hv_reference": REFERENCE})
    assert info["hypervolume"]["normalisation"] == "fixed"
    assert info["hypervolume"]["value"] == pytest.approx(fixed_b["hypervolume"].iloc[-1])
    assert info["hypervolume"]["reference_id"] == fixed_b["reference_id"].iloc[0]
    assert summary(b, [ERROR, PARAMS])["hypervolume"]["normalisation"] == "run"


def test_the_hypervolume_axis_says_which_scale_it_is_on() -> None:
    rows = rows_of([{"error": 0.2, "params": 400}, {"error": 0.3, "params": 200}, {"error": 0.05, "params": 100}])
    objectives = [ERROR, PARAMS]
    own = hypervolume_trace(rows, objectives)
    ax = hypervolume_figure(hypervolume_by_evaluation(rows, objectives), own, objectives).axes[0]
    assert "normalised" not in ax.get_ylabel() and "this run's [best, worst]" in ax.get_ylabel()
    assert "at most 1.21" in ax.get_title() and "not comparable" in ax.get_title()
    ideal, nadir = {"error": 0.1, "params": 150}, {"error": 0.5, "params": 1000}  # row 2 beats this ideal
    fixed = hypervolume_trace(rows, objectives, ideal=ideal, nadir=nadir)
    curve = hypervolume_by_evaluation(rows, objectives, ideal=ideal, nadir=nadir)
    assert curve[-1] > 1.21  # so the figure must not claim a maximum
    ax = hypervolume_figure(curve, fixed, objectives).axes[0]
    assert "fixed" in ax.get_ylabel() and fixed["reference_id"].iloc[0] in ax.get_ylabel()
    assert "at most" not in ax.get_title() and "comparable with runs of the same reference" in ax.get_title()


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"ideal": {"error": 0}, "nadir": {"error": 1}}', "no ideal and nadir for objective 'params'"),
    ('{"ideal": {"error": 0.5, "params": 0}, "nadir": {"error": 0.1, "params": 100}}',
     "the ideal of 'error' (0.5) must be below its nadir"),
    ('{"ideal": {"error": 0, "params": 0}, "nadir": {"error": 1, "params": 9}, "refrence": 1.1}',
     "unknown key 'refrence'"),
    ('{"ideal": {"error": "low", "params": 0}, "nadir": {"error": 1, "params": 9}}', "must be a finite number"),
])
def test_a_bad_hv_reference_is_one_line_and_writes_nothing(tiny_supernet_dir: Path, tmp_path: Path, capsys,
                                                           content: str, message: str) -> None:
    reference = tmp_path / "reference.json"
    reference.write_text(content)
    code, _, err = run_cli(capsys, "search", tiny_supernet_dir, "--out", tmp_path / "run", "--evals", "4",
                           "--objectives", "error,params", "--hv-reference", reference, "--quiet")
    line = one_line_error(code, err)
    assert message in line and "--hv-reference" in line
    assert not (tmp_path / "run").exists()


def test_a_search_with_hv_reference_records_and_prints_its_scale(tiny_supernet_dir: Path, tmp_path: Path,
                                                                 capsys) -> None:
    reference = tmp_path / "reference.json"
    reference.write_text(json.dumps({"ideal": {"error": 0.0, "params": 0.0},
                                     "nadir": {"error": 1.0, "params": 1e6}, "extra:column": {}}))
    code, _, err = run_cli(capsys, "search", tiny_supernet_dir, "--out", tmp_path / "run", "--evals", "4",
                           "--objectives", "error,params", "--hv-reference", reference, "--quiet")
    assert "unknown key 'extra:column'" in one_line_error(code, err)
    reference.write_text(json.dumps({"ideal": {"error": 0.0, "params": 0.0, "macs": 0},
                                     "nadir": {"error": 1.0, "params": 1e6, "macs": 1e9}}))
    code, out, err = run_cli(capsys, "search", tiny_supernet_dir, "--out", tmp_path / "run", "--evals", "4",
                             "--objectives", "error,params", "--hv-reference", reference, "--quiet")
    assert code == 0, err
    run = tmp_path / "run"
    recorded = json.loads((run / "run.json").read_text())
    assert "hv_reference" not in recorded["identity"]  # a report setting: the study and its resume ignore it
    assert recorded["hv_reference"] == {"ideal": {"error": 0.0, "params": 0.0},
                                        "nadir": {"error": 1.0, "params": 1e6}, "reference": 1.1}
    assert recorded["summary"]["hypervolume"]["normalisation"] == "fixed"
    trace = pd.read_csv(run / "hypervolume.csv")
    assert set(trace["normalisation"]) == {"fixed"}
    assert json.loads(trace["nadir"].iloc[0]) == {"error": 1.0, "params": 1e6}
    assert f"reference id {trace['reference_id'].iloc[0]}" in out
    assert f"hypervolume {trace['hypervolume'].iloc[-1]:.4f}" in out
