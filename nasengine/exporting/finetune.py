"""`nasengine finetune`: train an exported subnet on (labels plus distillation from its supernet's largest subnet)
and write a new export with the same contract: config, weights, ONNX (and the INT8 graph of its policy), a manifest
re-measured on the parent's device, and provenance naming the parent export.

Training runs in the one training loop (the subnet as a one-arch supernet), checkpointed beside the output, so a
killed fine-tuning resumes; the new export appears complete or not at all.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from nasengine import supernets
from nasengine.errors import UserError
from nasengine.evaluation.evaluator import scores
from nasengine.exporting.exporter import ExportRequest, export
from nasengine.exporting.subnet import load_subnet, read_subnet_config
from nasengine.kernels.inputs import apply_input_transform, specs_from_config
from nasengine.plugins import reload_recorded
from nasengine.progress import Progress
from nasengine.rundir import check_creatable, prepare_output, recorded_status
from nasengine.supernets.fixed import FixedSubnet
from nasengine.supernets.training import (Checkpointing, FrozenTeacher, SingleArch, TrainHooks, TrainSettings,
                                          train_supernet)
from nasengine.tasks import task_from_spec
from nasengine.training.teachers import teacher_from

MARKER = "finetune.json"
LOG = "finetune_log.csv"
AUTO_MARGIN = 0.02  # --distill-from auto: the teacher must be this much more accurate (validation) than the export


@dataclass(frozen=True)
class FinetuneRequest:
    """Fine-tune the export in `export_dir` for `epochs` into `out`. `distill_from`: "auto" (the parent's supernet's
    largest subnet when it is clearly more accurate than the export, else labels only; the default), "supernet"
    (that teacher always), "none" (labels only), or another trained supernet or export of the task. `batch_size`,
    `lr`, weight decay and label smoothing default to the parent supernet's training."""

    export_dir: Path
    out: Path
    epochs: int = 2
    lr: float | None = None
    batch_size: int | None = None
    distill_from: str = "auto"
    kd_temperature: float = 1.0
    seed: int = 0
    overwrite: bool = False
    progress: bool = True

    def validate(self) -> None:
        if self.epochs < 1:
            raise UserError(f"--epochs must be at least 1, got {self.epochs}")
        if self.lr is not None and not self.lr > 0:
            raise UserError(f"--lr must be positive, got {self.lr}")
        if self.batch_size is not None and self.batch_size < 2:
            raise UserError(f"--batch-size must be at least 2, got {self.batch_size}")
        if not self.kd_temperature > 0:
            raise UserError(f"--kd-temperature must be positive, got {self.kd_temperature}")
        if Path(self.out).resolve() == Path(self.export_dir).resolve():
            raise UserError("--out must differ from the export being fine-tuned")


def _parent(export_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The parent export's config and manifest, or a one-line UserError."""
    try:
        config = read_subnet_config(export_dir)
        manifest = json.loads((export_dir / "manifest.json").read_text())
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise UserError(f"{export_dir}: {exc}" if str(export_dir) not in str(exc) else str(exc)) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("supernet"), dict) or "run" not in manifest:
        raise UserError(f"{export_dir / 'manifest.json'} records no supernet and run; export the subnet again")
    return config, manifest


def _full_arch(manifest: dict[str, Any]) -> dict[str, Any]:
    """The arch as the search recorded it (with its precision genes): the row the parent export picked."""
    options = manifest.get("options") or {}
    if options.get("arch"):
        return dict(options["arch"])
    number = ((manifest.get("pick") or {}).get("picked") or {}).get("number")
    results = Path(manifest["run"]) / "results.csv"
    if number is None or not results.is_file():
        raise UserError(f"the search run {manifest['run']} of this export is gone (or does not name the exported "
                        f"row); finetune re-measures through it")
    frame = pd.read_csv(results)
    row = frame[frame["number"] == number]
    if not len(row):
        raise UserError(f"row {number} of {results} is missing; the run changed since the export")
    return json.loads(row.iloc[0]["arch"])


def _digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def finetune(request: FinetuneRequest) -> dict[str, Any]:
    """Fine-tune and write the new export; returns its manifest (with "resumed" True when `out` already held it)."""
    request.validate()
    export_dir, out = Path(request.export_dir), Path(request.out)
    config, manifest = _parent(export_dir)
    reload_recorded(config.get("plugins", []))
    supernet_dir = Path(manifest["supernet"]["dir"])
    training = supernets.io.read_config(supernet_dir).get("training", {}) if (supernet_dir / "config.json").is_file() \
        else {}
    identity = {"parent": str(export_dir.resolve()), "parent_weights_sha1": _digest(export_dir / "model.safetensors"),
                "epochs": request.epochs, "lr": request.lr or training.get("lr", 4e-3) / 4,
                "batch_size": request.batch_size or training.get("batch_size", 64),
                "distill_from": request.distill_from, "kd_temperature": request.kd_temperature, "seed": request.seed}
    check_creatable(out)
    if (out / "manifest.json").is_file() and not request.overwrite:
        existing = json.loads((out / "manifest.json").read_text())
        recorded = dict((existing.get("finetuned") or {}).get("identity") or {})
        recorded.pop("teacher", None)  # what "auto" decided, from the options compared here
        if recorded == identity:
            return {**existing, "resumed": True}
        raise UserError(f"{out} already holds an export; choose another --out or pass --overwrite")
    if out.exists() and not (out / "manifest.json").is_file() and not request.overwrite:
        raise UserError(f"{out} exists and is not an export; choose another --out or pass --overwrite")
    full_arch = _full_arch(manifest)
    task = task_from_spec(config["task"])
    teacher, choice = _teacher(request, manifest, supernet_dir, task, config)
    identity["teacher"] = choice
    work = out.parent / f".{out.name}.finetune"
    prepare_output(work, MARKER, identity, request.overwrite, "fine-tuning")
    with recorded_status(work / MARKER):
        result = _run(request, identity, config, manifest, full_arch, task, teacher, training, work)
    shutil.rmtree(work, ignore_errors=True)
    return result


def _teacher(request: FinetuneRequest, manifest: dict[str, Any], supernet_dir: Path, task: Any,
             config: dict[str, Any]) -> tuple[FrozenTeacher | None, dict[str, Any]]:
    """The teacher `--distill-from` names, and what was decided (for the provenance). "auto" takes the export's
    supernet's largest subnet only when it is at least AUTO_MARGIN more accurate on validation than the export:
    a teacher that is not clearly better only pulls the subnet towards its own errors (measured in BENCHMARKS.md)."""
    if request.distill_from == "none":
        return None, {"source": None}
    own = request.distill_from in ("supernet", "auto")
    source = supernet_dir if own else Path(request.distill_from)
    if own and (not (source / supernets.io.WEIGHTS).is_file()
                or supernets.weights_digest(source) != manifest["supernet"].get("weights_sha1")):
        if request.distill_from == "auto":
            return None, {"source": None, "reason": f"the supernet {source} is gone or changed"}
        raise UserError(f"the supernet {source} of this export is gone or changed; pass --distill-from none or "
                        f"another trained supernet of the task")
    teacher = teacher_from(source, task, "--distill-from")
    if request.distill_from != "auto":
        return teacher, {"source": str(source)}
    prepare = (lambda x: apply_input_transform(x, config["input_transform"]))
    teacher_acc = scores(teacher.module, task.split("val"), teacher.prepare)["accuracy"]
    student_acc = scores(load_subnet(Path(request.export_dir)), task.split("val"), prepare)["accuracy"]
    chosen = teacher_acc >= student_acc + AUTO_MARGIN
    return (teacher if chosen else None), {"source": str(source) if chosen else None, "teacher_val": teacher_acc,
                                           "export_val": student_acc, "margin": AUTO_MARGIN}


def _run(request: FinetuneRequest, identity: dict[str, Any], config: dict[str, Any], manifest: dict[str, Any],
         full_arch: dict[str, Any], task: Any, teacher: Any, training: dict[str, Any], work: Path) -> dict[str, Any]:
    export_dir, out = Path(request.export_dir), Path(request.out)
    net = FixedSubnet(load_subnet(export_dir), specs_from_config(config), config["input_transform"])
    data = task.train_data(identity["batch_size"], request.seed)
    settings = TrainSettings(epochs=request.epochs, lr=identity["lr"], seed=request.seed, warmup_fraction=0.05,
                             weight_decay=training.get("weight_decay", TrainSettings.weight_decay),
                             label_smoothing=training.get("label_smoothing", TrainSettings.label_smoothing),
                             kd_temperature=request.kd_temperature)
    val, test = task.split("val"), task.split("test")
    prepare = (lambda x: apply_input_transform(x, config["input_transform"]))
    started = time.perf_counter()
    with Progress(request.epochs * data.steps_per_epoch, "finetune", "step", request.progress) as bar:
        def on_epoch_end(epoch: int, phase: Any, row: dict[str, float]) -> dict[str, float]:
            accuracy = {"val_acc": scores(net.module, val, prepare)["accuracy"],
                        "test_acc": scores(net.module, test, prepare)["accuracy"]}
            bar.write(f"epoch {epoch + 1}/{request.epochs} loss {row['loss']:.3f} val acc {accuracy['val_acc']:.2%}")
            return accuracy

        log = train_supernet(net, SingleArch(), data, settings, Checkpointing(work / "checkpoints"),
                             TrainHooks(on_step=lambda e, s, loss: bar.update(1, loss=f"{loss:.3f}"),
                                        on_epoch_end=on_epoch_end, on_resume=bar.update), teacher)
    before = {"epoch": 0, "loss": None, "lr": None, "seconds": 0.0,
              "val_acc": manifest.get("search_accuracy"), "test_acc": manifest.get("accuracy")}
    rows = [before, *({**r, "epoch": int(r["epoch"]) + 1} for r in log)]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=["epoch", "loss", "lr", "seconds", "val_acc", "test_acc"],
                            extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    provenance = {"finetuned": {"identity": identity, "parent": {"dir": identity["parent"],
                                                                  "weights_sha1": identity["parent_weights_sha1"],
                                                                  "accuracy": manifest.get("accuracy"),
                                                                  "created": manifest.get("created")},
                                "seconds": round(time.perf_counter() - started, 1),
                                "log": LOG},
                  "pick": manifest.get("pick")}
    result = export(ExportRequest(Path(manifest["run"]), out, device=manifest.get("device"), overwrite=True,
                                  arch=full_arch, formats=tuple(manifest.get("formats") or ()),
                                  module=net.module, provenance=provenance,
                                  extra_files={LOG: text.getvalue().encode()}))
    return {**result, "log": rows}
