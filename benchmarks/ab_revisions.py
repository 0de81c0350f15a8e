"""Run one benchmark script against the code of two git revisions, alternating, and report each figure's ratio.

The script (from the working tree) is run with the packages of `--base` (a temporary git worktree) and of the
working tree in turn, `--rounds` times each (A B A B ...), so both see the same phases of a noisy machine. The
script must accept `--json PATH` and write a flat or one-level nested object of numbers there.

    python benchmarks/ab_revisions.py --base HEAD~3 --rounds 3 -- benchmarks/measurement_cost.py --archs 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def _flat(data: dict, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key} / "))
        elif isinstance(value, (int, float)):
            out[f"{prefix}{key}"] = float(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare the working tree against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("script", nargs=argparse.REMAINDER, help="-- SCRIPT [ARGS...]")
    args = parser.parse_args()
    script = [a for a in args.script if a != "--"]
    repo = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                               check=True).stdout.strip())
    with tempfile.TemporaryDirectory() as tmp:
        base_tree = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(base_tree), args.base],
                       check=True, capture_output=True)
        try:
            figures: dict[str, list[dict[str, float]]] = {"base": [], "current": []}
            for i in range(args.rounds):
                for label, tree in (("base", base_tree), ("current", repo)):
                    out = Path(tmp) / f"{label}-{i}.json"
                    env = {**os.environ, "PYTHONPATH": str(tree)}
                    subprocess.run([sys.executable, str(repo / script[0]), *script[1:], "--json", str(out)],
                                   check=True, env=env, cwd=tmp, stdout=subprocess.DEVNULL)
                    figures[label].append(_flat(json.loads(out.read_text())))
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(base_tree)],
                           capture_output=True)
    print(f"{script[0]}: {args.base} vs working tree, {args.rounds} alternating rounds\n")
    print("| figure | base (median) | current (median) | current / base (median of rounds) |")
    print("|---|---|---|---|")
    for key in figures["base"][0]:
        base = [f[key] for f in figures["base"]]
        current = [f[key] for f in figures["current"]]
        ratios = [c / b for c, b in zip(current, base) if b]
        print(f"| {key} | {statistics.median(base):.4g} | {statistics.median(current):.4g} | "
              f"{statistics.median(ratios):.3f} |")


if __name__ == "__main__":
    main()
