"""How many candidates per second LINAS's inner loop scores on predictions alone (no real evaluation).

Fits one predictor per objective (two objectives) on 200 random archs of a supernet's space with synthetic
targets, then times the vectorised predicted problem on 20,000 random candidates, per predictor kind.

    python benchmarks/linas_inner.py SUPERNET_DIR [--kinds gbr,ridge,svr,mlp,ensemble]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from nasengine import supernets
from nasengine.searching.objectives import Objective
from nasengine.searching.problem import SearchProblem
from nasengine.searching.strategies.linas import _Predicted
from nasengine.searching.variation import GeneLayout
from nasengine.predictors.accuracy import fit_predictor
from nasengine.search_spaces.encoding import OneHotEncoding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("supernet_dir", type=Path)
    parser.add_argument("--kinds", default="gbr,ridge,svr,mlp,ensemble")
    parser.add_argument("--candidates", type=int, default=20000)
    args = parser.parse_args()
    space = supernets.from_config(supernets.io.read_config(args.supernet_dir)).space
    problem = SearchProblem(space, [Objective("a"), Objective("b")], [], 1, lambda items: [])
    rng = np.random.default_rng(0)
    X = np.stack([OneHotEncoding().encode(space, space.sample(rng=rng)) for _ in range(200)])
    targets = [X @ rng.random(X.shape[1]), np.sin(X @ rng.random(X.shape[1]))]
    candidates = GeneLayout(space).random(args.candidates, rng)
    print(f"| predictor kind | candidates scored per second (2 objectives, {args.candidates:,} candidates) |")
    print("|---|---|")
    for kind in args.kinds.split(","):
        models = [fit_predictor(X, y, kind=kind) for y in targets]
        predicted = _Predicted(problem, models, [])
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            predicted._evaluate(candidates, {})
            best = min(best, time.perf_counter() - started)
        print(f"| {kind} | {args.candidates / best:,.0f} |")


if __name__ == "__main__":
    main()
