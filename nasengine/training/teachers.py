"""Fixed teachers a user names: the largest subnet of a trained supernet, or an exported subnet, of the same task."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from nasengine import supernets
from nasengine.errors import UserError
from nasengine.evaluation.evaluator import Evaluator
from nasengine.exporting.subnet import load_subnet, read_subnet_config
from nasengine.kernels.inputs import apply_input_transform
from nasengine.supernets.training.teacher import FrozenTeacher
from nasengine.tasks import Task
from nasengine.training.loading import load_trained


def _check_task(spec: Mapping[str, Any], task: Task, option: str, path: Path) -> None:
    same_shape = list(spec.get("input_shape", [])) == list(task.spec["input_shape"])
    if spec.get("num_classes") != task.num_classes or not same_shape:
        raise UserError(f"{option} {path} was trained on {spec.get('name')} ({spec.get('num_classes')} classes, inputs "
                        f"{spec.get('input_shape')}); this task is {task.name} ({task.num_classes} classes, inputs "
                        f"{task.spec['input_shape']})")


def is_teacher(path: Path) -> bool:
    """Whether `path` holds something a teacher can come from (a trained supernet or an export)."""
    return (Path(path) / supernets.io.WEIGHTS).is_file() or (Path(path) / "model.safetensors").is_file()


def teacher_from(path: Path, task: Task, option: str) -> FrozenTeacher:
    """The teacher in `path`, frozen: an exported subnet as it is, or a trained supernet's largest subnet with BN
    recalibrated on `task`; UserError (naming `option`) when it was trained on another kind of task."""
    path = Path(path)
    if (path / "manifest.json").is_file():  # an export (e.g. a previous run's best subnet)
        try:
            config = read_subnet_config(path)
            module = load_subnet(path)
        except (FileNotFoundError, ValueError) as exc:
            raise UserError(f"{option} {path}: {exc}") from None
        _check_task(config["task"], task, option, path)
        transform = config["input_transform"]
        return FrozenTeacher(module, lambda x: apply_input_transform(x, transform))
    teacher_net, config = load_trained(path)
    _check_task(config["task"], task, option, path)
    arch = teacher_net.space.max()
    module = Evaluator(teacher_net, task, "val").extract(arch)
    return FrozenTeacher(module, lambda x: teacher_net.adapt_input(x, arch))
