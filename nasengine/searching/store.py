"""The trial store: every real evaluation of a search is a trial of one optuna study, shared by all workers.

params = the genes (categorical), values = the objectives, user attributes = every metric, the details
(measurement spread, LINAS predictions), the worker, the round and the arch's index in the search trajectory.
The default storage is a journal file in the run directory (append-only, crash-safe); `storage=URL` puts it in
any optuna RDB (e.g. PostgreSQL) shared by workers on several machines.

Several workers never evaluate the same arch: before evaluating, a worker *claims* the arch by creating a
RUNNING trial; when two claims race, the lower trial id wins and the other is failed. A claim whose process is
gone (same host) or that is older than `claim_timeout_s` is taken over, so killing any worker loses at most
the evaluations it had in flight.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.exceptions import DuplicatedStudyError, UpdateFinishedTrialError
from optuna.study import StudyDirection
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import FrozenTrial, TrialState, create_trial

from nasengine.errors import UserError, first_line, one_line
from nasengine.searching.objectives import Objective, Row
from nasengine.searching.problem import Pending
from nasengine.search_spaces.choices import NumberRange
from nasengine.search_spaces.space import Arch, Space

JOURNAL = "store.journal"
LOG = logging.getLogger("nasengine.searching")
_OPTUNA_TYPES = (int, float, str, bool, type(None))
Evaluate = Callable[[Arch], tuple[dict[str, float], dict[str, Any]]]  # arch -> (metrics, details)


def _process_start(pid: int) -> str | None:
    """A token telling this process apart from a later one reusing its pid (Linux: start time in ticks)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[19]
    except (OSError, IndexError):
        return None


def host_identity() -> str:
    """This machine and PID namespace: containers sharing a hostname have different PID namespaces, so a pid
    is only checked for liveness where it means the same process."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}/{namespace}" if namespace else socket.gethostname()


def _alive(pid: int, token: str | None) -> bool:
    if token is not None and Path("/proc").is_dir():
        return _process_start(pid) == token
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _repair_torn_tail(path: Path) -> None:
    """Cut a partial last line left by a crash mid-write, so later appends stay parseable. Done under the
    journal's own lock, which every writer holds while appending: a line being written is never cut."""
    if not path.exists():
        return
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)
                f.flush()
                os.fsync(f.fileno())
    finally:
        lock.release()


def open_storage(run_dir: Path, url: str | None, repair: bool = False) -> BaseStorage:
    """The run's journal file, or the optuna RDB at `url` (a one-line error when it cannot be reached).

    `repair` cuts a torn last journal line left by a crash (under the journal's lock)."""
    if url is None:
        path = Path(run_dir) / JOURNAL
        if repair:
            _repair_torn_tail(path)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith(("sqlite:", "postgresql", "mysql")):
        for attempt in range(5):
            try:
                return optuna.storages.RDBStorage(url, heartbeat_interval=None)
            except Exception as exc:  # sqlalchemy raises many kinds; all mean "cannot use this URL"
                if "already exists" in str(exc) and attempt < 4:  # workers creating the schema at the same moment
                    time.sleep(0.2 * (attempt + 1))
                    continue
                raise UserError(f"cannot open --storage {redact(url)}: "
                                f"{first_line(exc).replace(url, str(redact(url)))}") from None
    raise UserError(f"--storage {redact(url)!r} is not a database URL (postgresql://..., mysql://..., sqlite:///...)")


def redact(url: str | None) -> str | None:
    """A storage URL without its password, for run.json and messages."""
    if url is None:
        return None
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def number_distribution(numbers: NumberRange) -> BaseDistribution:
    """The optuna distribution of a range gene's numbers (the trial store records them; samplers model them)."""
    if numbers.kind == "int":
        return IntDistribution(int(numbers.low), int(numbers.high), log=numbers.log, step=numbers.step)
    return FloatDistribution(numbers.low, numbers.high, log=numbers.log)


class _DropStudyCreated(logging.Filter):
    """optuna logs "A new study created in ..." on its own console handler; the run's files already say it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("A new study created")


@contextmanager
def _quiet_study_creation() -> Iterator[None]:
    """Drop optuna's study-created line while creating one, without changing optuna's logging otherwise."""
    quiet = _DropStudyCreated()
    loggers = [logging.getLogger("optuna"), *(logging.getLogger(n) for n in list(logging.root.manager.loggerDict)
                                              if n.startswith("optuna."))]
    targets = [*loggers, *(h for lg in loggers for h in lg.handlers)]
    for target in targets:
        target.addFilter(quiet)
    try:
        yield
    finally:
        for target in targets:
            target.removeFilter(quiet)


def open_study(storage: BaseStorage, name: str, directions: Sequence[str]) -> int:
    """The id of study `name`, created with `directions` when missing (several workers may race to create it)."""
    try:
        return storage.get_study_id_from_name(name)
    except KeyError:
        pass
    try:
        with _quiet_study_creation():
            return storage.create_new_study([StudyDirection[d.upper()] for d in directions], name)
    except DuplicatedStudyError:  # another worker created it at the same moment
        return storage.get_study_id_from_name(name)


def row_from_trial(trial: FrozenTrial) -> Row:
    """The Row a completed trial of the store holds."""
    attrs = trial.user_attrs
    key = attrs["arch_key"]
    return Row(json.loads(key), key, {k: float(v) for k, v in attrs.get("metrics", {}).items()},
               dict(attrs.get("details", {})), int(attrs.get("index", trial.number)), int(attrs.get("round", 0)),
               str(attrs.get("worker", "")))


@dataclass(frozen=True)
class StoreSettings:
    """How a store's worker behaves: its name, when a silent claim counts as dead (`claim_timeout_s`), how often it
    polls for others' results and refreshes its own claims, and the `session` its failed evaluations belong to
    (every worker of one session sees them and does not evaluate them again; a later session tries them again)."""

    worker: str | None = None
    claim_timeout_s: float = 1800.0
    poll_s: float = 0.2
    heartbeat_s: float = 60.0
    session: str = field(default_factory=lambda: uuid.uuid4().hex)


class TrialStore:
    """One search's evaluations: cached by arch key, claimed before evaluation, completed as optuna trials."""

    def __init__(self, storage: BaseStorage, study_name: str, space: Space, objectives: Sequence[Objective],
                 settings: StoreSettings | None = None):
        settings = settings or StoreSettings()
        self.storage, self.space, self.objectives = storage, space, list(objectives)
        self.study_name, self.claim_timeout_s, self.poll_s = study_name, settings.claim_timeout_s, settings.poll_s
        self.heartbeat_s, self.heartbeat_failures, self.session = settings.heartbeat_s, 0, settings.session
        self.host, self.pid = host_identity(), os.getpid()
        self.token = _process_start(self.pid)
        self.worker = settings.worker or f"{socket.gethostname()}:{self.pid}"
        directions = [o.direction for o in self.objectives]
        self.study_id = open_study(storage, study_name, directions)
        recorded = [d.name.lower() for d in storage.get_study_directions(self.study_id)]
        if recorded != directions:
            raise UserError(f"the store's study {study_name!r} has directions {recorded}, this search "
                            f"{directions}; give this search another study name (--study)")
        self.completed: dict[str, Row] = {}
        self.failed: dict[str, Row] = {}  # evaluations that raised in this session (a later session tries again)
        self.refresh()

    # ------------------------------------------------------------------ reading
    def _trials(self, states: tuple[TrialState, ...]) -> list[FrozenTrial]:
        return self.storage.get_all_trials(self.study_id, deepcopy=False, states=states)

    def refresh(self) -> dict[str, list[FrozenTrial]]:
        """Read completed trials into the cache; return the live RUNNING claims by arch key.

        RUNNING trials are read first: a trial only ever leaves RUNNING, so one that completes between the two
        reads is seen as completed, never missed by both."""
        claims: dict[str, list[FrozenTrial]] = {}
        for trial in self._trials((TrialState.RUNNING,)):
            key = trial.user_attrs.get("arch_key")
            if key is not None:
                claims.setdefault(key, []).append(trial)
        for trial in self._trials((TrialState.COMPLETE,)):
            key = trial.user_attrs.get("arch_key")
            if key is not None and key not in self.completed:
                self.completed[key] = row_from_trial(trial)
        for trial in self._trials((TrialState.FAIL,)):  # this session's failed evaluations, by any worker
            attrs = trial.user_attrs
            key = attrs.get("arch_key")
            if attrs.get("evaluation_failed") and attrs.get("session") == self.session and key is not None \
                    and key not in self.failed and key not in self.completed:
                self.failed[key] = Row(json.loads(key), key, {}, {}, int(attrs.get("index", trial.number)),
                                       int(attrs.get("round", 0)), str(attrs.get("worker", "")),
                                       error=str(attrs.get("failed_because", "")))
        return claims

    # ------------------------------------------------------------------ claims
    def _stale(self, trial: FrozenTrial) -> bool:
        claim = trial.user_attrs.get("claim", {})
        if claim.get("host") == self.host:
            if claim.get("pid") == self.pid and claim.get("token") == self.token:
                return False
            return not _alive(int(claim.get("pid", -1)), claim.get("token"))
        return time.time() - float(claim.get("time", 0.0)) > self.claim_timeout_s

    def _fail(self, trial_id: int, reason: str, evaluation: bool = False) -> None:
        """End a claim as failed; `evaluation`: the arch's evaluation itself raised (not a lost or stale claim)."""
        try:
            self.storage.set_trial_user_attr(trial_id, "failed_because", reason)
            if evaluation:
                self.storage.set_trial_user_attr(trial_id, "evaluation_failed", True)
                self.storage.set_trial_user_attr(trial_id, "session", self.session)
            self.storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except (UpdateFinishedTrialError, RuntimeError):
            pass  # someone else finished or failed it first

    def _params(self, arch: Arch) -> tuple[dict[str, Any], dict[str, BaseDistribution]]:
        """The arch's active genes as optuna parameters: ranges as numeric distributions (optuna-dashboard plots
        them on numeric axes), choices as categories (genes whose options optuna cannot hold are left out)."""
        params, dists = {}, {}
        for gene in self.space.genes:
            value = arch[gene.name]
            if value is None:
                continue
            numbers = gene.number_range()
            if numbers is not None:
                dists[gene.name] = number_distribution(numbers)
            elif all(isinstance(o, _OPTUNA_TYPES) for o in gene.options):
                dists[gene.name] = CategoricalDistribution(gene.options)
            else:
                continue
            params[gene.name] = value
        return params, dists

    def _claim(self, arch: Arch, key: str, index: int, round_: int) -> int:
        params, dists = self._params(arch)
        attrs = {"arch_key": key, "index": index, "round": round_, "worker": self.worker,
                 "claim": {"host": self.host, "pid": self.pid, "token": self.token, "time": time.time()}}
        template = create_trial(state=TrialState.RUNNING, params=params, distributions=dists, user_attrs=attrs)
        return self.storage.create_new_trial(self.study_id, template_trial=template)

    def _won(self, key: str, trial_id: int) -> bool:
        """After claiming: is this claim the one that counts (no result yet, lowest live claim id)?"""
        claims = self.refresh()
        if key in self.completed:
            return False
        live = [t._trial_id for t in claims.get(key, []) if t._trial_id == trial_id or not self._stale(t)]
        return min(live) == trial_id

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, items: Sequence[Pending], evaluate: Evaluate,
                 on_new: Callable[[Row], None] | None = None) -> list[Row]:
        """Rows of `items` (canonical archs with their trajectory index and round): stored results, or
        evaluations claimed and done here, or waited for while another live worker does them."""
        keyed = [(item, self.space.key(item.arch)) for item in items]
        while True:
            claims = self.refresh()
            waiting = False
            for item, key in keyed:
                if key in self.completed or key in self.failed:
                    continue
                others = [t for t in claims.get(key, []) if not self._stale(t)]
                if others:
                    waiting = True
                    continue
                for stale in claims.get(key, []):
                    self._fail(stale._trial_id, "claim taken over: its worker is gone or timed out")
                trial_id = self._claim(item.arch, key, item.index, item.round)
                if not self._won(key, trial_id):
                    self._fail(trial_id, "lost a simultaneous claim")
                    waiting = True
                    continue
                row = self._run(trial_id, item, key, evaluate)
                if row.failed:
                    self.failed[key] = row
                else:
                    self.completed.setdefault(key, row)
                if on_new is not None:
                    on_new(self.completed.get(key, row))
            if all(key in self.completed or key in self.failed for _, key in keyed):
                return [self.completed[key] if key in self.completed else self.failed[key] for _, key in keyed]
            if waiting:
                time.sleep(self.poll_s)

    def _run(self, trial_id: int, item: Pending, key: str, evaluate: Evaluate) -> Row:
        """Evaluate a claimed arch, refreshing the claim's time meanwhile (a long evaluation on one machine
        is not mistaken for a dead one on another), and complete the trial."""
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(trial_id, stop), daemon=True)
        beat.start()
        try:
            metrics, details = evaluate(item.arch)
            details = {**details, **item.details}
            missing = [o.column for o in self.objectives if o.column not in metrics]
            if missing:
                raise ValueError(f"it returned no {', '.join(missing)}")
            values = [float(metrics[o.column]) for o in self.objectives]
            bad = [o.column for o, v in zip(self.objectives, values) if not math.isfinite(v)]
            if bad:
                raise ValueError(f"it gave a non-finite {', '.join(bad)}")
            metrics = {k: float(v) for k, v in metrics.items()}
        except Exception as exc:  # the evaluation failed: recorded as a failed trial, and the search goes on
            stop.set()
            beat.join()
            if isinstance(exc, UserError):  # the set-up is wrong (a device, a file): no other arch would do better
                self._fail(trial_id, one_line(str(exc))[:500])
                raise
            reason = f"{type(exc).__name__}: {first_line(exc, 300)}"
            self._fail(trial_id, reason, evaluation=True)
            return Row(item.arch, key, {}, dict(item.details), item.index, item.round, self.worker, error=reason)
        except BaseException as exc:  # Ctrl-C, exit: the claim ends as a failure, the run stops
            stop.set()
            self._fail(trial_id, f"{type(exc).__name__}: {exc}"[:500])
            raise
        stop.set()
        beat.join()
        attrs = {"metrics": metrics, "details": _jsonable(details)}
        try:
            for name, value in attrs.items():
                self.storage.set_trial_user_attr(trial_id, name, value)
            self.storage.set_trial_state_values(trial_id, TrialState.COMPLETE, values)
        except UpdateFinishedTrialError:
            # another worker took the claim over meanwhile (it looked dead): keep this result all the same
            LOG.warning("trial %d was taken over by another worker while it ran here; its result is kept as a new "
                        "trial", trial_id)
            self._add_complete(item, key, values, attrs)
        return Row(item.arch, key, metrics, dict(details), item.index, item.round, self.worker)

    def _heartbeat(self, trial_id: int, stop: threading.Event) -> None:
        """Refresh the claim's time every `heartbeat_s` while its evaluation runs. A claim someone else finished
        ends the beat (this result is still kept); a store that cannot be written is logged on every failed beat,
        since after claim_timeout_s without a beat another machine takes the evaluation over."""
        while not stop.wait(self.heartbeat_s):
            try:
                claim = {"host": self.host, "pid": self.pid, "token": self.token, "time": time.time()}
                self.storage.set_trial_user_attr(trial_id, "claim", claim)
            except (UpdateFinishedTrialError, RuntimeError):  # finished or failed by the worker that took it over
                return
            except Exception as exc:  # a database or file error: keep evaluating, and say what may happen
                self.heartbeat_failures += 1
                LOG.warning("cannot refresh the claim of trial %d (%s); if the store stays unwritable for %.0f s, "
                            "another worker may evaluate the same subnet", trial_id, first_line(exc, 200),
                            self.claim_timeout_s)

    def _add_complete(self, item: Pending, key: str, values: list[float], attrs: dict[str, Any]) -> None:
        params, dists = self._params(item.arch)
        trial = create_trial(params=params, distributions=dists, values=values,
                             user_attrs={"arch_key": key, "index": item.index, "round": item.round,
                                         "worker": self.worker, **attrs})
        self.storage.create_new_trial(self.study_id, template_trial=trial)


def _jsonable(details: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(details), default=str))
