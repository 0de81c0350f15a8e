"""What `nasengine search` prints when it ends: subnets searched, failures, each device's front (its score range and
the timing searched on), and the final hypervolume with the scale it was measured on."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def print_search_summary(result: dict[str, Any], out: str | Path) -> None:
    """The summary lines of a finished search whose run directory is `out` (printed as the user gave it)."""
    print(f"searched {result['evaluated']} subnets ({result['new_this_session']} new) in {result['seconds']:.0f}s "
          f"-> {out}")
    if result.get("failed"):
        print(f"  {result['failed']} evaluations failed and were left out (why: {out}/failures.csv)")
    pareto = result["pareto"]
    objectives_text = ", ".join(str(c) for c in result.get("objectives", []))
    for device, front in pareto.groupby("device", sort=False, dropna=False):
        where = f"{device}: " if isinstance(device, str) and device else ""
        line = f"  {where}{len(front)} Pareto subnets"
        if "perplexity" in front:
            line += f", perplexity {front['perplexity'].min():.2f}-{front['perplexity'].max():.2f}"
        elif "accuracy" in front:
            line += f", accuracy {front['accuracy'].min():.2%}-{front['accuracy'].max():.2%}"
        timed = [c for c in map(str, result.get("objectives", [])) if c.endswith(f"_ms:{device}")]
        column = timed[0] if timed else f"latency_ms:{device}"  # the timing searched on (decode, say), else prefill
        if isinstance(device, str) and column in front:
            low, high = front[column].min(), front[column].max()
            stem = column.split("_ms:")[0]
            line += f", {'' if stem == 'latency' else stem + ' '}{low:.3f}-{high:.3f} ms ({high / low:.1f}x)"
        print(line + (f" ({objectives_text})" if objectives_text else ""))
    hypervolume = _final_hypervolume(Path(out), result.get("hypervolume"))
    if hypervolume is not None:
        fixed = hypervolume.get("normalisation") == "fixed"
        scale = (f"the fixed [ideal, nadir] of --hv-reference (reference id {hypervolume.get('reference_id')}; "
                 f"comparable with runs of the same reference)" if fixed
                 else "this run's [best, worst] (not comparable across runs)")
        print(f"  hypervolume {hypervolume['value']:.4f} with the objectives scaled to {scale}, reference point at "
              f"ideal + {hypervolume.get('reference'):g} x (nadir - ideal); per round in {out}/hypervolume.csv")
    if pareto.empty:
        print("  no evaluated subnet meets the constraints")


def _final_hypervolume(run: Path, summary: Any) -> dict[str, Any] | None:
    """The run's final hypervolume and its scale as hypervolume.csv records it (the summary's when unreadable)."""
    import pandas as pd

    try:
        last = pd.read_csv(run / "hypervolume.csv").iloc[-1]
        return {"value": float(last["hypervolume"]), "reference": float(last["reference"]),
                "normalisation": str(last.get("normalisation", "run")), "reference_id": last.get("reference_id")}
    except (OSError, ValueError, KeyError, IndexError):
        return summary if isinstance(summary, dict) and summary.get("value") is not None else None
