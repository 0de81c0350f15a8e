"""Run reports: every evaluated subnet (results.csv), the Pareto set per device (pareto.csv) and its plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from nasengine.records import Evaluation
from search_spaces.storage import atomic_file


def pareto_mask(costs: np.ndarray) -> np.ndarray:
    """Boolean mask of non-dominated rows of `costs` (all minimised); exact duplicates are all kept."""
    costs = np.asarray(costs, dtype=float)
    n = costs.shape[0]
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        if not mask[i]:
            continue
        dominated_by = np.all(costs <= costs[i], axis=1) & np.any(costs < costs[i], axis=1)
        if dominated_by.any():
            mask[i] = False
    return mask


def latency_column(device: str) -> str:
    return f"latency_ms:{device}"


def results_frame(evaluations: Sequence[Evaluation], devices: Sequence[str]) -> pd.DataFrame:
    """One row per evaluated subnet; `latency_ms` is the first device's median, then one column per device."""
    rows = []
    for e in evaluations:
        first = e.latency[devices[0]]
        row = {"arch": json.dumps(e.arch, separators=(",", ":")), "accuracy": e.accuracy,
               "error": 1.0 - e.accuracy, "latency_ms": first.median_ms, "latency_iqr_ms": first.iqr_ms,
               "latency_repeats": first.repeats, "params": e.params, "macs": e.macs}
        for d in devices:
            row[latency_column(d)] = e.latency[d].median_ms
            row[f"latency_source:{d}"] = e.latency[d].source
        rows.append(row)
    columns = ["arch", "accuracy", "error", "latency_ms", "latency_iqr_ms", "latency_repeats", "params", "macs"]
    columns += [c for d in devices for c in (latency_column(d), f"latency_source:{d}")]
    return pd.DataFrame(rows, columns=columns)


def pareto_frame(results: pd.DataFrame, devices: Sequence[str], latency_budget_ms: float | None = None) -> pd.DataFrame:
    """Per device: subnets not beaten on both error and latency (within the budget), fastest first."""
    fronts = []
    for device in devices:
        col = latency_column(device)
        pool = results if latency_budget_ms is None else results[results[col] <= latency_budget_ms]
        if pool.empty:
            continue
        front = pool[pareto_mask(pool[["error", col]].to_numpy())].copy()
        front.insert(0, "device", device)
        front["latency_ms"] = front[col]
        fronts.append(front.sort_values([col, "error"]))
    if not fronts:
        return pd.DataFrame(columns=["device", *results.columns])
    return pd.concat(fronts, ignore_index=True)


def _atomic(path: Path, write) -> None:  # type: ignore[no-untyped-def]
    with atomic_file(path) as tmp:
        write(tmp)


def plot_pareto(results: pd.DataFrame, pareto: pd.DataFrame, devices: Sequence[str], path: Path,
                latency_budget_ms: float | None = None) -> None:
    """Accuracy vs latency per device: all evaluated subnets in grey, the Pareto set as a red staircase."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5 * len(devices), 4.2))  # no pyplot: the process-wide backend stays the user's
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(devices), squeeze=False)
    for ax, device in zip(axes[0], devices):
        col = latency_column(device)
        ax.scatter(results[col], 100 * results["accuracy"], s=12, c="0.7", label=f"evaluated ({len(results)})")
        front = pareto[pareto["device"] == device]
        if not front.empty:
            ax.step(front[col], 100 * front["accuracy"], where="post", c="tab:red", lw=1.2)
            ax.scatter(front[col], 100 * front["accuracy"], s=22, c="tab:red", label=f"Pareto ({len(front)})")
        if latency_budget_ms is not None:
            ax.axvline(latency_budget_ms, ls="--", c="k", lw=0.8, label="latency budget")
        ax.set_xscale("log")
        ax.set_xlabel(f"latency on {device} (ms, median)")
        ax.set_ylabel("top-1 accuracy (%, search split)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    _atomic(path, lambda p: fig.savefig(p, dpi=110, format="png"))


def write_reports(run_dir: Path, evaluations: Sequence[Evaluation], devices: Sequence[str],
                  latency_budget_ms: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """results.csv, pareto.csv and pareto.png in `run_dir`, each written atomically."""
    results = results_frame(evaluations, devices)
    pareto = pareto_frame(results, devices, latency_budget_ms)
    _atomic(run_dir / "results.csv", lambda p: results.to_csv(p, index=False))
    _atomic(run_dir / "pareto.csv", lambda p: pareto.to_csv(p, index=False))
    plot_pareto(results, pareto, devices, run_dir / "pareto.png", latency_budget_ms)
    return results, pareto
