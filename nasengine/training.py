"""`nasengine train`: train a registered supernet on its task, resumably, and save it with a training log."""

from __future__ import annotations

import csv
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import supernets
from nasengine.errors import UserError
from nasengine.evaluation import Evaluator
from nasengine.progress import Progress
from nasengine.rundir import prepare_output, update_marker
from nasengine.tasks import get_task
from supernets.training import Phase, TrainSettings, get_recipe, train_supernet

MARKER = "train.json"
LOG = "train_log.csv"


@dataclass(frozen=True)
class TrainRequest:
    supernet: str
    out: Path
    epochs: int = 20
    seed: int = 0
    recipe: str = "sandwich"
    batch_size: int = 32
    lr: float = 4e-3
    n_random: int = 1
    overwrite: bool = False
    progress: bool = True
    overrides: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        try:
            supernets.entry(self.supernet)
            get_recipe(self.recipe)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        try:
            supernets.create(self.supernet, **self.overrides)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise UserError(f"cannot build {self.supernet} with {self.overrides}: {exc}") from None
        if self.epochs < 1:
            raise UserError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 2:
            raise UserError(f"--batch-size must be at least 2, got {self.batch_size}")
        if not self.lr > 0:
            raise UserError(f"--lr must be positive, got {self.lr}")
        if self.n_random < 0:
            raise UserError(f"--n-random cannot be negative, got {self.n_random}")
        if self.recipe == "progressive" and self.epochs < 4:
            raise UserError("the progressive recipe needs at least 4 epochs (one per phase)")


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def train(request: TrainRequest) -> dict[str, Any]:
    """Train (or resume training) and write DIR/config.json, DIR/model.safetensors and DIR/train_log.csv."""
    request.validate()
    out = Path(request.out)
    if (out / supernets.io.CONFIG).exists() and not request.overwrite:
        raise UserError(f"{out} already holds a trained supernet; use --overwrite to retrain")
    entry = supernets.entry(request.supernet)
    settings = TrainSettings(epochs=request.epochs, lr=request.lr, n_random=request.n_random, seed=request.seed)
    identity = {"supernet": request.supernet, "overrides": request.overrides, "recipe": request.recipe,
                "batch_size": request.batch_size, **settings.to_dict()}
    resumed = prepare_output(out, MARKER, identity, request.overwrite, "training") is not None

    torch.manual_seed(request.seed)
    net = supernets.create(request.supernet, **request.overrides)
    task = get_task(entry.task)
    data = task.train_data(request.batch_size, request.seed)
    evaluator = Evaluator(net, task, "val")
    started = time.perf_counter()
    with Progress(request.epochs * data.steps_per_epoch, f"train {request.supernet}", "step",
                  request.progress) as bar:
        if resumed:
            bar.write(f"resuming training in {out}")

        def on_step(epoch: int, step: int, loss: float) -> None:
            bar.update(1, epoch=epoch, loss=f"{loss:.3f}")

        def on_epoch_end(epoch: int, phase: Phase, row: dict[str, float]) -> dict[str, float]:
            scores = {"val_acc_max": evaluator.evaluate(net.space.max()),
                      "val_acc_min": evaluator.evaluate(net.space.min())}
            bar.write(f"epoch {epoch + 1}/{request.epochs} [{phase.name}] loss {row['loss']:.3f} "
                      f"val acc max {scores['val_acc_max']:.2%} min {scores['val_acc_min']:.2%}")
            return scores

        log = train_supernet(net, get_recipe(request.recipe), data, settings, out / "checkpoints",
                             on_step=on_step, on_epoch_end=on_epoch_end)
    _write_log(out / LOG, log)
    test = task.split("test")
    final = {name: {"val": evaluator.evaluate(arch), "test": evaluator.evaluate(arch, test)}
             for name, arch in (("max", net.space.max()), ("min", net.space.min()))}
    seconds = time.perf_counter() - started
    supernets.save_supernet(net, out, {"task": entry.task, "training": {**identity, "seconds": round(seconds, 1)},
                                       "final_accuracy": final})
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    update_marker(out / MARKER, status="complete")
    return {"out": str(out), "seconds": seconds, "final_accuracy": final, "resumed": resumed}
