"""A small tabular problem whose true front is known by enumeration; functions are top-level so spawned
worker processes can import them."""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

from nasengine.search_spaces import Choice, Space

SPACE = Space([Choice("depth", [1, 2, 3]), Choice("width", [8, 16, 32, 64]), Choice("kernel", [3, 5, 7]),
               Choice("act", ["relu", "gelu", "swish"]), Choice("norm", ["bn", "ln"])], name="toy")
ACT_GAIN = {"relu": 0.0, "gelu": 0.03, "swish": 0.02}


def error(arch: dict[str, Any]) -> float:
    capacity = arch["depth"] * arch["width"] * (1 + 0.1 * arch["kernel"])
    return 1.0 / (1.0 + capacity / 40.0) - ACT_GAIN[arch["act"]] + (0.01 if arch["norm"] == "ln" else 0.0)


def latency_ms(arch: dict[str, Any]) -> float:
    return arch["depth"] * arch["width"] * arch["kernel"] ** 2 / 500.0 * (1.2 if arch["act"] == "gelu" else 1.0) \
        + (0.05 if arch["norm"] == "ln" else 0.0)


def all_archs() -> list[dict[str, Any]]:
    return [SPACE.validate(dict(zip(SPACE.names, values)))
            for values in itertools.product(*(g.options for g in SPACE.genes))]


def logged(log: Path, delay_s: float = 0.0):  # noqa: ANN201
    """`error` that appends each arch it evaluates (and the pid) to `log`, optionally slowly."""
    def fn(arch: dict[str, Any]) -> float:
        with open(log, "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "arch": arch}) + "\n")
        if delay_s:
            time.sleep(delay_s)
        return error(arch)

    return fn


def worker_search(out: str, log: str, budget: int, strategy: str, storage: str | None, delay_s: float,
                  go: str, seed: int = 0) -> int:
    """One worker of a shared search (run in a spawned process): says it is ready (imports done), waits for
    the `go` file so that all workers start at once, searches; returns the number of rows it saw."""
    import nasengine
    from nasengine.searching import SearchOptions

    Path(f"{go}.{os.getpid()}.ready").touch()
    while not Path(go).exists():
        time.sleep(0.01)

    result = nasengine.search(SPACE, {"error": logged(Path(log), delay_s), "latency_ms": latency_ms},
                              strategy=strategy, budget=budget, seed=seed, out=out,
                              options=SearchOptions(storage=storage, study_name="shared" if storage else None))
    return len(result.rows)
