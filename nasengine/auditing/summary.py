"""The audit's numbers: rank agreement with a bootstrap interval, the free proxies on the same archs, the gap."""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from nasengine.predictors.metrics import kendall_tau, spearman_rho

BOOTSTRAP_ROUNDS = 2000
INTERVAL = 0.90
SIMILAR_COST = 2.0  # pairs of archs at most this factor apart in MACs count as of similar cost


@dataclass(frozen=True)
class AuditSummary:
    """Kendall tau of the inherited accuracies against the standalone ones (with a bootstrap 90 % interval over
    the archs), the tau of the MACs and params proxies on the same archs, and the gap in points."""

    archs: int
    tau: float
    tau_low: float
    tau_high: float
    spearman: float
    tau_macs: float
    tau_params: float
    mean_gap_points: float
    worst_gap_points: float
    # the same rank agreement over the pairs of archs within SIMILAR_COST of each other in MACs, where counting
    # MACs cannot tell them apart and a search needs the supernet (NaN with no such pair)
    similar_pairs: int = 0
    tau_similar: float = float("nan")
    tau_macs_similar: float = float("nan")
    # with several seeds of each reference: their mean Kendall tau between seeds (the ceiling of `tau`: no
    # supernet ranks the archs more alike than training alone does twice) and mean |difference| in points
    reference_seeds: int = 1
    reference_tau: float = float("nan")
    reference_difference_points: float = float("nan")

    def line(self) -> str:
        seeds = (f"; {self.reference_seeds} seeds of training alone agree at tau {self.reference_tau:.3f} (mean "
                 f"difference {self.reference_difference_points:.2f} points), the ceiling of any tau here"
                 if self.reference_seeds > 1 else "")
        return (f"{self.archs} archs: Kendall tau {self.tau:.3f} (90% interval {self.tau_low:.3f}..{self.tau_high:.3f})"
                f", MACs proxy {self.tau_macs:.3f}, params proxy {self.tau_params:.3f}; among the {self.similar_pairs} "
                f"pairs within {SIMILAR_COST:g}x in MACs: {self.tau_similar:.3f} vs MACs {self.tau_macs_similar:.3f}; "
                f"inherited minus standalone: mean {self.mean_gap_points:+.2f} points, worst "
                f"{self.worst_gap_points:+.2f}{seeds}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: floats rounded, an undefined tau (no pair of similar cost) as None."""
        return {k: (None if np.isnan(v) else round(v, 4)) if isinstance(v, float) else v
                for k, v in asdict(self).items()}


def bootstrap_tau(truth: np.ndarray, scores: np.ndarray, seed: int = 0,
                  rounds: int = BOOTSTRAP_ROUNDS) -> tuple[float, float]:
    """The central 90 % of Kendall tau over archs drawn with replacement (draws with a single distinct arch,
    where tau is undefined, are skipped)."""
    rng = np.random.default_rng(seed)
    n, taus = len(truth), []
    for _ in range(rounds):
        idx = rng.integers(0, n, n)
        if len(set(idx.tolist())) < 2:
            continue
        tau = kendall_tau(truth[idx], scores[idx])
        if np.isfinite(tau):
            taus.append(tau)
    if not taus:
        return float("nan"), float("nan")
    low, high = np.quantile(taus, [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2])
    return float(low), float(high)


def pairwise_tau(truth: np.ndarray, scores: np.ndarray, pairs: Sequence[tuple[int, int]]) -> float:
    """Kendall's tau-a over the given pairs only: (concordant - discordant) / pairs (ties count as neither)."""
    if not pairs:
        return float("nan")
    signs = [np.sign(truth[i] - truth[j]) * np.sign(scores[i] - scores[j]) for i, j in pairs]
    return float(np.sum(signs) / len(pairs))


def similar_cost_pairs(macs: np.ndarray, factor: float = SIMILAR_COST) -> list[tuple[int, int]]:
    return [(i, j) for i in range(len(macs)) for j in range(i + 1, len(macs))
            if max(macs[i], macs[j]) <= factor * max(min(macs[i], macs[j]), 1)]


def summarize(rows: Sequence[Mapping[str, Any]], seed: int = 0) -> AuditSummary:
    """Summary of rows holding inherited, standalone, macs and params (at least 3 rows)."""
    if len(rows) < 3:
        raise ValueError(f"a ranking needs at least 3 archs, got {len(rows)}")
    standalone = np.array([r["standalone"] for r in rows], float)
    inherited = np.array([r["inherited"] for r in rows], float)
    gaps = (inherited - standalone) * 100
    low, high = bootstrap_tau(standalone, inherited, seed)
    macs = np.array([r["macs"] for r in rows], float)
    pairs = similar_cost_pairs(macs)
    return AuditSummary(
        archs=len(rows), tau=kendall_tau(standalone, inherited), tau_low=low, tau_high=high,
        spearman=spearman_rho(standalone, inherited),
        tau_macs=kendall_tau(standalone, np.array([r["macs"] for r in rows], float)),
        tau_params=kendall_tau(standalone, np.array([r["params"] for r in rows], float)),
        mean_gap_points=float(gaps.mean()), worst_gap_points=float(gaps.min()), similar_pairs=len(pairs),
        tau_similar=pairwise_tau(standalone, inherited, pairs), tau_macs_similar=pairwise_tau(standalone, macs, pairs),
        **_reference_agreement(rows))


def plot_audit(rows: Sequence[Mapping[str, Any]], summary: AuditSummary, title: str, path: Any) -> None:
    """Inherited against standalone accuracy per arch (colour: MACs), with the y = x line of a supernet whose
    subnets are as good as trained alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    standalone = np.array([r["standalone"] for r in rows]) * 100
    inherited = np.array([r["inherited"] for r in rows]) * 100
    macs = np.array([r["macs"] for r in rows]) / 1e6
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    low = float(min(standalone.min(), inherited.min())) - 1
    high = float(max(standalone.max(), inherited.max())) + 1
    ax.plot([low, high], [low, high], color="0.6", lw=1, ls="--", label="y = x (as good as trained alone)")
    dots = ax.scatter(standalone, inherited, c=np.log10(np.maximum(macs, 1e-9)), cmap="viridis", s=28, zorder=3)
    fig.colorbar(dots, ax=ax, label="log10 MMACs")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel("trained alone: test accuracy (%)")
    ax.set_ylabel("inherited from the supernet: test accuracy (%)")
    ax.set_title(f"{title}\nKendall tau {summary.tau:.2f} [{summary.tau_low:.2f}, {summary.tau_high:.2f}], "
                 f"mean gap {summary.mean_gap_points:+.1f} pts", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _reference_agreement(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How alike several seeds of training alone rank and score the archs (rows with `standalone_seeds`, a JSON
    list per arch); nothing with one seed."""
    seeds = [r.get("standalone_seeds") for r in rows]
    if any(s is None for s in seeds):
        return {}
    table = np.array([json.loads(s) if isinstance(s, str) else s for s in seeds], float)  # archs x seeds
    if table.ndim != 2 or table.shape[1] < 2:
        return {}
    pairs = list(itertools.combinations(range(table.shape[1]), 2))
    return {"reference_seeds": table.shape[1],
            "reference_tau": float(np.mean([kendall_tau(table[:, a], table[:, b]) for a, b in pairs])),
            "reference_difference_points": float(np.mean([np.abs(table[:, a] - table[:, b]).mean() * 100
                                                          for a, b in pairs]))}
