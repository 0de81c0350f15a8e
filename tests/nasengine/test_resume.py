"""Every run directory can be resumed after a crash: kill the process for real, run the command again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from nasengine.searching.api import load_rows
from tests.conftest import TINY
from nasengine import supernets


def start(*args: object) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "nasengine", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def kill_when(proc: subprocess.Popen, condition, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "condition never met"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def run(*args: object) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "nasengine", *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def tiny_sets() -> list[str]:
    return [item for key, value in TINY.items() for item in ("--set", f"{key}={json.dumps(value)}")]


def test_training_killed_after_a_checkpoint_resumes(tmp_path: Path) -> None:
    out = tmp_path / "sn"
    args = ["train", "ofa_mbv3_digits", "--out", out, "--epochs", "4", "--batch-size", "128", *tiny_sets()]
    proc = start(*args)
    kill_when(proc, lambda: any((out / "checkpoints").glob("epoch-0001/state.json")))
    assert not (out / "config.json").exists()
    result = run(*args)
    assert "resuming training" in result.stderr
    log = pd.read_csv(out / "train_log.csv")
    assert list(log["epoch"]) == [0, 1, 2, 3]
    supernets.load_supernet(out)


def test_search_killed_mid_run_resumes_without_redoing_work(tiny_supernet_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["search", tiny_supernet_dir, "--out", out, "--evals", "24", "--device", "ort-cpu-1t"]
    proc = start(*args)

    def stored() -> int:
        journal = out / "store.journal"
        return journal.read_text().count('"arch_key"') if journal.exists() else 0

    kill_when(proc, lambda: stored() >= 12)
    kept = {r.key: r.metrics["latency_ms:ort-cpu-1t"] for r in load_rows(out)}
    result = run(*args)
    assert "already in the store" in result.stderr
    after = {r.key: r for r in load_rows(out)}
    assert len(after) == 24
    for key, value in kept.items():  # nothing measured before the kill was measured again
        assert after[key].metrics["latency_ms:ort-cpu-1t"] == value
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 24 and results["arch"].is_unique


def test_search_killed_at_random_moments_ends_like_an_uninterrupted_search(tiny_supernet_dir: Path,
                                                                          tmp_path: Path) -> None:
    """Five SIGKILLs at seeded random moments, each followed by the same command: the finished run evaluated the
    same subnets with the same accuracies as a run never killed (objectives error and params are
    deterministic, so the strategy's path does not depend on measured latencies)."""
    import random

    def args(out: Path) -> list[object]:
        return ["search", tiny_supernet_dir, "--out", out, "--evals", "30", "--device", "ort-cpu-1t",
                "--objectives", "error,params", "--seed", "3"]

    run(*args(tmp_path / "whole"))
    killed = tmp_path / "killed"
    rng = random.Random(7)
    for _ in range(5):
        proc = start(*args(killed))
        time.sleep(rng.uniform(2.0, 6.0))  # process start and imports take about 2 s of this
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
    run(*args(killed))
    whole, resumed = (pd.read_csv(d / "results.csv") for d in (tmp_path / "whole", killed))
    assert sorted(whole["arch"]) == sorted(resumed["arch"]) and len(whole) == 30
    by_arch = resumed.set_index("arch")["accuracy"]
    assert all(by_arch[a] == acc for a, acc in zip(whole["arch"], whole["accuracy"]))
    assert json.loads((killed / "run.json").read_text())["status"] == "complete"
