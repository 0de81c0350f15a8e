"""The run store: every real evaluation of a run, in an optuna journal file (crash-safe, append-only).

One study holds accuracies ("accuracy"), one per device holds latencies ("latency:<device>"). Each
record is a complete optuna trial written in one journal line, so a crash loses at most the
evaluation in flight; a torn last line is cut off when the store is reopened. Users can open the
same file with `optuna.load_study(storage=JournalStorage(JournalFileBackend(path)), study_name=...)`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import create_trial

from search_spaces.space import Space

ACCURACY = "accuracy"
JOURNAL = "store.journal"
_OPTUNA_TYPES = (int, float, str, bool, type(None))


def latency_study(device: str) -> str:
    return f"latency:{device}"


@dataclass(frozen=True)
class Record:
    """One stored evaluation: the metric value and its details (measurement, split, ...)."""

    key: str
    value: float
    attrs: dict[str, Any]


def _repair_torn_tail(path: Path) -> None:
    """Cut a partial last line left by a crash mid-write, so later appends stay parseable."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
            f.flush()
            os.fsync(f.fileno())


class RunStore:
    """Evaluations cached by (study, canonical arch key), persisted as optuna trials."""

    def __init__(self, run_dir: Path, space: Space):
        self.path = Path(run_dir) / JOURNAL
        self.space = space
        _repair_torn_tail(self.path)
        self.storage = JournalStorage(JournalFileBackend(str(self.path)))
        self._studies: dict[str, optuna.Study] = {}
        self._cache: dict[str, dict[str, Record]] = {}
        for name in optuna.get_all_study_names(self.storage):
            self._studies[name] = optuna.load_study(study_name=name, storage=self.storage)
            self._load(name)

    def _study(self, name: str) -> optuna.Study:
        if name not in self._studies:
            direction = "maximize" if name == ACCURACY else "minimize"
            self._studies[name] = optuna.create_study(storage=self.storage, study_name=name, direction=direction)
        return self._studies[name]

    def _load(self, name: str) -> None:
        cache = self._cache.setdefault(name, {})
        for trial in self._study(name).get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            attrs = dict(trial.user_attrs)
            key = attrs.pop("arch_key")
            cache[key] = Record(key, float(trial.value), attrs)

    def studies(self) -> list[str]:
        return sorted(self._cache)

    def get(self, study: str, key: str) -> Record | None:
        return self._cache.get(study, {}).get(key)

    def records(self, study: str) -> dict[str, Record]:
        return dict(self._cache.get(study, {}))

    def put(self, study: str, arch: Mapping[str, Any], value: float, attrs: Mapping[str, Any] | None = None) -> Record:
        """Persist one evaluation (idempotent per key: an existing record is returned unchanged)."""
        key = self.space.key(arch)
        existing = self.get(study, key)
        if existing is not None:
            return existing
        canonical = json.loads(key)
        params, dists = {}, {}
        for gene in self.space.genes:
            value_ = canonical[gene.name]
            if value_ is not None and all(isinstance(o, _OPTUNA_TYPES) for o in gene.options):
                params[gene.name] = value_
                dists[gene.name] = CategoricalDistribution(gene.options)
        record_attrs = {"arch_key": key, **dict(attrs or {})}
        self._study(study).add_trial(create_trial(params=params, distributions=dists, value=float(value),
                                                  user_attrs=record_attrs))
        record = Record(key, float(value), dict(attrs or {}))
        self._cache.setdefault(study, {})[key] = record
        return record
