"""Smoke test: optuna's RDBStorage on a real PostgreSQL server, written by two processes at once."""

from __future__ import annotations

import multiprocessing as mp

import optuna
import pytest
from optuna.storages import RDBStorage
from optuna.trial import TrialState

N_PER_WORKER = 15
STUDY = "two_writers"


def _add_trials(url: str, worker: int, barrier) -> None:
    """Runs in a spawned process: append N_PER_WORKER completed two-objective trials to the study."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=STUDY, storage=RDBStorage(url),
                              sampler=optuna.samplers.RandomSampler(seed=worker))
    barrier.wait(timeout=120)  # both processes write at the same time
    for _ in range(N_PER_WORKER):
        trial = study.ask()
        x = trial.suggest_float("x", 0.0, 1.0)
        trial.set_user_attr("worker", worker)
        study.tell(trial, [x, (1.0 - x) ** 2])


def test_rdb_storage_two_processes(postgres_url: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = RDBStorage(postgres_url)
    assert storage.engine.dialect.name == "postgresql"
    if STUDY in optuna.get_all_study_names(storage):  # an external server ($NASENGINE_TEST_POSTGRES_URL) keeps data
        optuna.delete_study(study_name=STUDY, storage=storage)
    optuna.create_study(study_name=STUDY, storage=storage, directions=["minimize", "minimize"])

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_add_trials, args=(postgres_url, w, barrier)) for w in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]

    study = optuna.load_study(study_name=STUDY, storage=RDBStorage(postgres_url))
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 2 * N_PER_WORKER
    assert sorted(t.number for t in trials) == list(range(2 * N_PER_WORKER))
    assert all(t.state == TrialState.COMPLETE and len(t.values) == 2 for t in trials)
    assert all(t.values[0] == pytest.approx(t.params["x"]) for t in trials)
    assert sorted(t.user_attrs["worker"] for t in trials) == [0] * N_PER_WORKER + [1] * N_PER_WORKER
    assert study.directions == [optuna.study.StudyDirection.MINIMIZE] * 2
    assert 1 <= len(study.best_trials) <= len(trials)
