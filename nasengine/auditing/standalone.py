"""Training one arch alone from scratch with its supernet's own settings: the reference an audit judges by.

Each reference is keyed by everything that decides it (family, constructor overrides, task, batch, the
single-arch training settings, E and the arch), so audits of other supernets trained the same way reuse it,
and a killed training resumes from its own checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from nasengine import supernets
from nasengine.evaluation.evaluator import Evaluator
from nasengine.search_spaces.storage import atomic_write
from nasengine.supernets.training import Checkpointing, SingleArch, TrainSettings, train_supernet
from nasengine.tasks import task_from_spec
from nasengine.training.loading import load_trained

# training settings that change a single arch's training (n_random and kd_weight only act between subnets)
SINGLE_ARCH_SETTINGS = ("lr", "weight_decay", "label_smoothing", "warmup_epochs", "warmup_fraction", "grad_clip",
                        "seed")


def single_arch_settings(config: Mapping[str, Any], epochs: int, seed_offset: int = 0) -> TrainSettings:
    """The supernet's recorded training settings, for one arch trained `epochs` epochs from scratch: no teacher
    phase, no sampler, and the learning rate it trains a network alone with (its teacher phase's, if set).
    `seed_offset` > 0 gives another seed of the same training (initialisation, data order, augmentation)."""
    training = config["training"]
    fields = {k: training[k] for k in TrainSettings.__dataclass_fields__ if k in training}
    alone_lr = fields.pop("teacher_lr", None) or fields.get("lr", TrainSettings.lr)
    seed = fields.get("seed", TrainSettings.seed) + seed_offset
    return replace(TrainSettings(**fields), epochs=epochs, lr=alone_lr, teacher_epochs=0, sampler="uniform",
                   kd_temperature=1.0, resolution="per-step", seed=seed)


def reference_identity(config: Mapping[str, Any], arch: Mapping[str, Any], epochs: int,
                       seed_offset: int = 0) -> dict[str, Any]:
    """What decides the standalone accuracy of `arch`: two supernets trained on the same task with the same
    batch and optimiser settings share their references, whatever their recipes."""
    training = config["training"]
    settings = single_arch_settings(config, epochs, seed_offset).to_dict()
    return {"supernet": training.get("supernet"), "overrides": training.get("overrides", {}),
            "checkpoint": training.get("checkpoint"), "task": config["task"],
            "batch_size": training["batch_size"], "epochs": epochs,
            "settings": {k: settings[k] for k in SINGLE_ARCH_SETTINGS if k in settings},
            "arch": dict(sorted(arch.items()))}


def reference_key(identity: Mapping[str, Any]) -> str:
    return hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_reference(path: Path, identity: Mapping[str, Any]) -> dict[str, Any] | None:
    """A finished reference at `path` made with exactly `identity`, else None."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("identity") != json.loads(json.dumps(identity, default=str)):
        return None
    return data


def reference_path(audit_dir: Path, identity: Mapping[str, Any]) -> Path:
    """Where an audit directory keeps the training alone that `identity` decides."""
    return Path(audit_dir) / "standalone" / f"{reference_key(identity)}.json"


def reuse_reference(path: Path, identity: Mapping[str, Any], audits: Sequence[Path]) -> bool:
    """Copy to `path` the finished reference for `identity` from the first of `audits` that holds it."""
    for audit in audits:
        found = reference_path(audit, identity)
        if read_reference(found, identity) is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(found, path)
            return True
    return False


def _untrained(config: Mapping[str, Any]) -> supernets.Supernet:
    """The supernet as training started: random weights, or for a family grown from a pretrained checkpoint the
    checkpoint's weights (an arch "trained alone" is then fine-tuned alone from the same start, as InstaTune does)."""
    checkpoint = (config["training"].get("checkpoint") or {}).get("dir")
    if checkpoint is None:
        return supernets.from_config(config)
    if not Path(checkpoint).exists():
        raise ValueError(f"the pretrained checkpoint {checkpoint} this supernet grew from is gone; an arch trained "
                         f"alone starts from it")
    return supernets.create(str(config["supernet"]), **dict(config.get("kwargs", {})), checkpoint=checkpoint)


def train_alone(supernet_dir: str, arch: dict[str, Any], epochs: int, threads: int, out: str,
                seed_offset: int = 0) -> dict[str, Any]:
    """Train `arch` alone from scratch (checkpoints under OUT.checkpoints, so a killed run resumes) and write the
    reference to OUT: test accuracy and wall seconds of training. Runs in a worker process."""
    torch.set_num_threads(threads)
    net, config = load_trained(Path(supernet_dir))  # re-imports the family's plugin in this process
    del net
    training = config["training"]
    task = task_from_spec(config["task"])
    settings = single_arch_settings(config, epochs, seed_offset)
    identity = reference_identity(config, arch, epochs, seed_offset)
    target = Path(out)
    checkpoints = target.with_suffix(".checkpoints")
    torch.manual_seed(settings.seed)
    alone = _untrained(config)
    started = time.perf_counter()
    log = train_supernet(alone, SingleArch(arch), task.train_data(training["batch_size"], settings.seed), settings,
                         Checkpointing(checkpoints))
    seconds = sum(float(row["seconds"]) for row in log)  # the run's own training time, across resumes
    standalone = Evaluator(alone, task, "val").evaluate(arch, task.split("test"))
    result = {"identity": identity, "standalone": standalone, "train_seconds": round(seconds, 2),
              "threads": threads, "wall_seconds_this_process": round(time.perf_counter() - started, 2)}
    atomic_write(target, json.dumps(result, indent=1, default=str))
    shutil.rmtree(checkpoints, ignore_errors=True)
    return result
