"""Run an audit: pick archs across the cost range, score them inherited, train them alone (resumable, in
parallel, within a time budget), and write audit.csv, audit.png and summary.json."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from nasengine import supernets
from nasengine.auditing.picks import spread_archs, spread_order
from nasengine.auditing.standalone import (read_reference, reference_identity, reference_path, reuse_reference,
                                          train_alone)
from nasengine.auditing.summary import plot_audit, summarize
from nasengine.errors import UserError
from nasengine.evaluation.evaluator import Evaluator
from nasengine.progress import Progress
from nasengine.rundir import prepare_output, recorded_status, update_marker
from nasengine.search_spaces.storage import atomic_file, atomic_write
from nasengine.tasks import task_from_spec
from nasengine.training.loading import load_trained

MARKER = "audit.json"
MIN_ARCHS = 3


@dataclass(frozen=True)
class AuditRequest:
    """Audit the supernet in `supernet_dir` into `out` with `archs` archs, each trained alone `epochs` epochs
    (None: as many as the supernet's teacher phase, else as many as the supernet was trained), `workers` at a time
    with `threads` torch threads each; no training starts after `budget_minutes` (a rerun continues). `reuse` names
    other audit directories whose finished references (same task, settings, epochs and arch) are taken instead of
    training again. With `reference_seeds` N > 1 each arch is trained alone with N seeds: its standalone accuracy is
    their mean, and how well the seeds rank the archs alike is the ceiling of any rank agreement measured here."""

    supernet_dir: Path
    out: Path
    archs: int = 15
    epochs: int | None = None
    workers: int = 1
    threads: int | None = None
    seed: int = 0
    budget_minutes: float | None = None
    reuse: tuple[Path, ...] = ()
    reference_seeds: int = 1
    overwrite: bool = False
    progress: bool = True

    def validate(self) -> None:
        if self.archs < MIN_ARCHS:
            raise UserError(f"--archs must be at least {MIN_ARCHS} (a ranking of fewer says nothing), got {self.archs}")
        if self.epochs is not None and self.epochs < 1:
            raise UserError(f"--epochs must be at least 1, got {self.epochs}")
        if self.workers < 1 or (self.threads is not None and self.threads < 1):
            raise UserError("--workers and --threads must be at least 1")
        if self.reference_seeds < 1:
            raise UserError(f"--reference-seeds must be at least 1, got {self.reference_seeds}")
        if self.budget_minutes is not None and not self.budget_minutes > 0:
            raise UserError(f"--budget-minutes must be positive, got {self.budget_minutes}")
        for directory in self.reuse:
            if not (Path(directory) / MARKER).is_file():
                raise UserError(f"--reuse {directory}: not an audit directory (no {MARKER})")

    def threads_per_worker(self) -> int:
        return self.threads or max(1, (os.cpu_count() or 1) // self.workers)


def run_audit(request: AuditRequest, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Audit (or resume auditing) and return the summary with the rows; see AuditRequest."""
    started = time.monotonic()
    request.validate()
    if Path(request.out).resolve() == Path(request.supernet_dir).resolve():
        raise UserError("--out must differ from the supernet directory")
    net, config = load_trained(Path(request.supernet_dir))
    training = config.get("training")
    if not isinstance(training, dict) or "batch_size" not in training:
        raise UserError(f"{request.supernet_dir} records no training settings (config.json 'training'); an audit "
                        f"trains each arch alone with them")
    # by default as long as the supernet trains a network alone: its teacher phase, else its epochs
    epochs = request.epochs or int(training.get("teacher_epochs") or training["epochs"])
    identity = {"supernet_dir": str(Path(request.supernet_dir).resolve()),
                "weights_sha1": supernets.weights_digest(Path(request.supernet_dir)),
                "archs": request.archs, "epochs": epochs, "seed": request.seed}
    if request.reference_seeds > 1:  # audits of one seed keep the identity they always had
        identity["reference_seeds"] = request.reference_seeds
    out = Path(request.out)
    prepare_output(out, MARKER, identity, request.overwrite, "audit")
    with recorded_status(out / MARKER):
        update_marker(out / MARKER, status="running", error=None)
        deadline = None if request.budget_minutes is None else started + 60 * request.budget_minutes
        result = _audit(request, net, config, epochs, deadline, say)
        update_marker(out / MARKER, status="complete" if result["complete"] else "partial")
        return result


def _audit(request: AuditRequest, net: supernets.Supernet, config: dict[str, Any], epochs: int,
           deadline: float | None, say: Callable[[str], None]) -> dict[str, Any]:
    out = Path(request.out)
    archs = spread_archs(net.space, lambda a: float(net.cost(a).macs), request.archs, request.seed)

    def job(i: int, seed: int) -> Job:
        identity = reference_identity(config, archs[i], epochs, seed)
        return Job(i, seed, identity, reference_path(out, identity))

    # one job per (arch, seed): every arch's first seed before any second one, archs in spread order
    jobs = [job(i, s) for s in range(request.reference_seeds) for i in spread_order(len(archs))]
    for job in jobs:
        if job.result() is None:
            reuse_reference(job.path, job.identity, [Path(other) for other in request.reuse])
    inherited = _inherited(out, net, config, archs, request.progress)
    pending = [job for job in jobs if job.result() is None]
    if pending:
        say(f"training {len(pending)} of {len(jobs)} archs{_seeds(request)} alone for {epochs} epochs, "
            f"{request.workers} at a time with {request.threads_per_worker()} thread(s) each "
            f"({len(jobs) - len(pending)} done or reused)")
    _train_pending(request, archs, epochs, pending, deadline)
    rows = []
    for i, arch in enumerate(archs):
        found = [job.result() for job in jobs if job.arch == i]
        done = None if any(reference is None for reference in found) else found
        cost = net.cost(arch)
        row = {"macs": int(cost.macs), "params": int(cost.params), "inherited": inherited[net.space.key(arch)],
               "standalone": None if done is None else float(np.mean([r["standalone"] for r in done])),
               "train_seconds": None if done is None else float(np.mean([r["train_seconds"] for r in done])),
               "train_threads": None if done is None else done[0]["threads"],
               "arch": json.dumps(arch, sort_keys=True)}
        if request.reference_seeds > 1:
            row["standalone_seeds"] = None if done is None else json.dumps([r["standalone"] for r in done])
        gap = None if row["standalone"] is None else round(100 * (row["inherited"] - row["standalone"]), 3)
        row["gap_points"] = gap
        rows.append(row)
    _write_csv(out / "audit.csv", rows)
    done = [r for r in rows if r["standalone"] is not None]
    result: dict[str, Any] = {"out": str(out), "archs": len(rows), "done": len(done),
                              "complete": len(done) == len(rows), "epochs": epochs}
    if len(done) >= MIN_ARCHS:
        summary = summarize(done, seed=request.seed)
        result["summary"] = summary.to_dict()
        result["training_cost"] = _training_cost(Path(request.supernet_dir), config, rows)
        atomic_write(out / "summary.json", json.dumps(result, indent=2))
        title = f"{config['training'].get('supernet', 'supernet')} on {config['task'].get('name', 'its task')}"
        with atomic_file(out / "audit.png", suffix=".png") as tmp:
            plot_audit(done, summary, title, tmp)
        say(summary.line())
        cost = result["training_cost"]
        if cost.get("ratio") is not None:
            say(f"supernet training {cost['supernet_seconds']:.0f} s ({cost['supernet_threads']} threads) = "
                f"{cost['ratio']:.2f}x the largest arch trained alone for {epochs} epochs "
                f"({cost['largest_alone_seconds']:.0f} s, {cost['largest_alone_threads']} thread(s))")
    else:
        say(f"{len(done)} of {len(rows)} archs trained alone so far: too few for a ranking; run the same command "
            f"again to continue")
    if not result["complete"] and len(done) >= MIN_ARCHS:
        say(f"partial: {len(done)} of {len(rows)} archs (time budget reached); run the same command again to continue")
    return result


def _inherited(out: Path, net: supernets.Supernet, config: dict[str, Any], archs: list[dict[str, Any]],
               progress: bool) -> dict[str, float]:
    """Test accuracy of every arch with the supernet's weights (BN recalibrated), kept in inherited.json."""
    path = out / "inherited.json"
    known: dict[str, float] = json.loads(path.read_text()) if path.is_file() else {}
    todo = [a for a in archs if net.space.key(a) not in known]
    if todo:
        task = task_from_spec(config["task"])
        evaluator, test = Evaluator(net, task, "val"), task.split("test")
        with Progress(len(todo), "audit: inherited accuracy", "arch", progress) as bar:
            for arch in todo:
                known[net.space.key(arch)] = evaluator.evaluate(arch, test)
                atomic_write(path, json.dumps(known, indent=1))
                bar.update(1)
    return known


@dataclass(frozen=True)
class Job:
    """One training alone: arch `arch` (its index) with seed offset `seed`, the identity of its reference and where
    the audit keeps it."""

    arch: int
    seed: int
    identity: dict[str, Any]
    path: Path

    def result(self) -> dict[str, Any] | None:
        """The finished reference, else None."""
        return read_reference(self.path, self.identity)


def _seeds(request: AuditRequest) -> str:
    return f" x {request.reference_seeds} seeds" if request.reference_seeds > 1 else ""


def _train_pending(request: AuditRequest, archs: list[dict[str, Any]], epochs: int, pending: list[Job],
                   deadline: float | None) -> None:
    """Train the pending jobs, `workers` at a time; none starts after the `deadline` (monotonic clock)."""
    if not pending:
        return
    threads = request.threads_per_worker()
    queue = list(pending)

    def arguments(job: Job) -> tuple[Any, ...]:
        return str(request.supernet_dir), archs[job.arch], epochs, threads, str(job.path), job.seed

    with Progress(len(pending), "audit: training alone", "arch", request.progress) as bar:
        if request.workers == 1:  # in this process (its torch thread count restored afterwards)
            before = torch.get_num_threads()
            try:
                while queue and (deadline is None or time.monotonic() < deadline):
                    _report(bar, train_alone(*arguments(queue.pop(0))))
            finally:
                torch.set_num_threads(before)
            return
        context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked OpenMP state
        with ProcessPoolExecutor(request.workers, mp_context=context) as pool:
            running: set[Future] = set()
            while queue or running:
                while queue and len(running) < request.workers and (deadline is None or time.monotonic() < deadline):
                    running.add(pool.submit(train_alone, *arguments(queue.pop(0))))
                if not running:
                    break
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    _report(bar, future.result())


def _report(bar: Progress, result: dict[str, Any]) -> None:
    bar.update(1, last=f"{result['standalone']:.2%} in {result['train_seconds']:.0f}s")


def _training_cost(supernet_dir: Path, config: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The supernet's training time (its epochs' own seconds from train_log.csv, like the standalone trainings',
    else the whole command's) against the largest arch's training alone, with the threads of each."""
    training = config["training"]
    largest = max(rows, key=lambda r: r["macs"])
    seconds = training.get("seconds")
    log = supernet_dir / "train_log.csv"
    if log.is_file():
        with open(log, newline="") as f:
            seconds = round(sum(float(row["seconds"]) for row in csv.DictReader(f)), 1)
    cost = {"supernet_seconds": seconds,
            "supernet_threads": training.get("environment", {}).get("torch_threads"),
            "largest_alone_seconds": largest["train_seconds"], "largest_alone_threads": largest["train_threads"]}
    ok = cost["supernet_seconds"] and cost["largest_alone_seconds"]
    cost["ratio"] = round(cost["supernet_seconds"] / cost["largest_alone_seconds"], 3) if ok else None
    return cost


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    keys = ["macs", "params", "inherited", "standalone", "gap_points", "train_seconds", "train_threads", "arch"]
    if any("standalone_seeds" in row for row in rows):
        keys.insert(4, "standalone_seeds")
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: r["macs"]))
