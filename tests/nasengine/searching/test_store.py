"""The trial store: several workers share one search without duplicate evaluations, a killed worker's claim is
taken over, and a PostgreSQL server works as the shared store."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from collections import Counter
from pathlib import Path

import optuna

from nasengine.searching.api import load_rows
from nasengine.searching.objectives import Objective
from nasengine.searching.problem import Pending
from nasengine.searching.store import StoreSettings, TrialStore, open_storage
from tests.nasengine.searching import toy

OBJECTIVES = [Objective("error"), Objective("latency_ms")]


def evaluations(log: Path) -> Counter:
    lines = log.read_text().splitlines() if log.exists() else []
    return Counter(json.dumps(json.loads(line)["arch"], sort_keys=True) for line in lines)


def pids(log: Path) -> set[int]:
    return {json.loads(line)["pid"] for line in log.read_text().splitlines()}


def start_workers(n: int, out: Path, log: Path, budget: int, storage: str | None = None, delay_s: float = 0.05,
                  strategy: str = "nsga2") -> list[multiprocessing.Process]:
    """n spawned workers of one search, released together once all have imported everything (the journal
    case: all on the same run directory, which they race to prepare)."""
    context = multiprocessing.get_context("spawn")
    go = log.parent / "go"
    processes = []
    for i in range(n):
        target = out if storage is None else out / f"worker{i}"
        process = context.Process(target=toy.worker_search,
                                  args=(str(target), str(log), budget, strategy, storage, delay_s, str(go)))
        process.start()
        processes.append(process)
    deadline = time.time() + 120
    while len(list(log.parent.glob("go.*.ready"))) < n and time.time() < deadline:
        time.sleep(0.02)
    go.touch()
    return processes


def test_two_workers_share_a_journal_store_without_duplicate_evaluations(tmp_path: Path) -> None:
    out, log = tmp_path / "run", tmp_path / "calls.jsonl"
    workers = start_workers(2, out, log, budget=40)
    for process in workers:
        process.join(timeout=300)
        assert process.exitcode == 0
    counts = evaluations(log)
    assert len(counts) == 40 and max(counts.values()) == 1  # the budget, each arch once
    assert len(pids(log)) == 2  # both did some of the work
    rows = load_rows(out)
    assert len(rows) == 40 and len({r.worker for r in rows}) == 2


def test_a_killed_workers_claim_is_taken_over_and_nothing_finished_is_redone(tmp_path: Path) -> None:
    out, log = tmp_path / "run", tmp_path / "calls.jsonl"
    victim, survivor = start_workers(2, out, log, budget=40, delay_s=0.1)
    deadline = time.time() + 120
    while sum(evaluations(log).values()) < 10 and time.time() < deadline:
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)  # at a random moment, possibly mid-evaluation
    victim.join()
    survivor.join(timeout=300)
    assert survivor.exitcode == 0
    counts = evaluations(log)
    assert len(counts) == 40
    assert sum(counts.values()) - len(counts) <= 1  # at most the arch in flight in the killed worker
    assert len(load_rows(out)) == 40


def test_a_stale_claim_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    storage = open_storage(tmp_path, None)
    store = TrialStore(storage, "s", toy.SPACE, OBJECTIVES)
    arch = toy.SPACE.max()
    key = toy.SPACE.key(arch)
    dead = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
    dead.start()
    dead.join()
    claim = store._claim(arch, key, 0, 0)
    storage.set_trial_user_attr(claim, "claim", {"host": store.host, "pid": dead.pid, "token": "gone",
                                                 "time": time.time()})
    other = TrialStore(open_storage(tmp_path, None), "s", toy.SPACE, OBJECTIVES)
    rows = other.evaluate([Pending(0, 0, arch)], lambda a: ({"error": toy.error(a), "latency_ms": 1.0}, {}))
    assert rows[0].metrics["error"] == toy.error(arch)
    states = Counter(t.state for t in storage.get_all_trials(other.study_id))
    assert states[optuna.trial.TrialState.FAIL] == 1 and states[optuna.trial.TrialState.COMPLETE] == 1


def test_a_live_claim_is_waited_for_not_duplicated(tmp_path: Path) -> None:
    storage = open_storage(tmp_path, None)
    first = TrialStore(storage, "s", toy.SPACE, OBJECTIVES, StoreSettings(poll_s=0.01))
    arch = toy.SPACE.min()
    claim = first._claim(arch, toy.SPACE.key(arch), 0, 0)  # this process, alive: a live claim
    first.worker = "first"

    calls = []

    def evaluate(a):  # noqa: ANN001, ANN202
        calls.append(a)
        return {"error": 0.5, "latency_ms": 1.0}, {}

    import threading

    def finish() -> None:
        time.sleep(0.3)
        storage.set_trial_user_attr(claim, "metrics", {"error": 0.25, "latency_ms": 2.0})
        storage.set_trial_user_attr(claim, "details", {})
        storage.set_trial_state_values(claim, optuna.trial.TrialState.COMPLETE, [0.25, 2.0])

    threading.Thread(target=finish).start()
    second = TrialStore(open_storage(tmp_path, None), "s", toy.SPACE, OBJECTIVES, StoreSettings(poll_s=0.01))
    second.token = first.token  # same process: the claim is live (pid alive, same start time)
    second.pid = first.pid
    rows = second.evaluate([Pending(0, 0, arch)], evaluate)
    assert calls == [] and rows[0].metrics["error"] == 0.25


def test_postgresql_store_serves_two_workers(postgres_url: str, tmp_path: Path) -> None:
    from tests.postgres import create_database

    url = create_database(postgres_url, "search_two_workers")
    log = tmp_path / "calls.jsonl"
    workers = start_workers(2, tmp_path, log, budget=30, storage=url)
    for process in workers:
        process.join(timeout=300)
        assert process.exitcode == 0
    counts = evaluations(log)
    assert len(counts) == 30 and max(counts.values()) == 1
    study = optuna.load_study(study_name="shared", storage=url)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 30 and len({t.user_attrs["arch_key"] for t in complete}) == 30
    assert all(len(t.values) == 2 and "metrics" in t.user_attrs for t in complete)


def test_a_failing_heartbeat_is_reported_not_swallowed(caplog) -> None:
    """When the claim cannot be refreshed (the database is gone), the worker says that another machine may take
    the evaluation over, and still completes its result."""

    class FlakyStorage(optuna.storages.InMemoryStorage):
        def set_trial_user_attr(self, trial_id, key, value):
            if key == "claim":
                raise OSError("connection to the database lost")
            super().set_trial_user_attr(trial_id, key, value)

    store = TrialStore(FlakyStorage(), "study", toy.SPACE, OBJECTIVES,
                       StoreSettings(claim_timeout_s=5.0, heartbeat_s=0.01))

    def slow(arch):
        time.sleep(0.2)
        return {"error": toy.error(arch), "latency_ms": toy.latency_ms(arch)}, {}

    arch = toy.SPACE.sample(seed=0)
    with caplog.at_level("WARNING", logger="nasengine.searching"):
        (row,) = store.evaluate([Pending(0, 0, toy.SPACE.validate(arch))], slow)
    assert row.metrics["error"] == toy.error(arch)
    assert store.heartbeat_failures > 0
    assert "connection to the database lost" in caplog.text and "another worker may evaluate" in caplog.text


def test_workers_of_one_session_share_failures_and_a_later_session_retries_them(tmp_path: Path) -> None:
    calls: list[str] = []

    def failing(arch):
        calls.append(json.dumps(arch))
        raise RuntimeError("out of memory")

    arch = toy.SPACE.validate(toy.SPACE.sample(seed=0))
    items = [Pending(0, 0, arch)]
    first = TrialStore(open_storage(tmp_path, None), "s", toy.SPACE, OBJECTIVES, StoreSettings(session="a"))
    (row,) = first.evaluate(items, failing)
    assert row.failed and row.error == "RuntimeError: out of memory"
    same = TrialStore(open_storage(tmp_path, None), "s", toy.SPACE, OBJECTIVES, StoreSettings(session="a"))
    assert same.evaluate(items, failing)[0].failed and len(calls) == 1  # another worker of the session: not again
    later = TrialStore(open_storage(tmp_path, None), "s", toy.SPACE, OBJECTIVES, StoreSettings(session="b"))
    assert not later.evaluate(items, lambda a: ({"error": 0.1, "latency_ms": 1.0}, {}))[0].failed  # retried
