"""Data sets the engine trains and evaluates on, by name."""

from nasengine.tasks.base import SPLITS, EpochBatches, Split, Task, available_tasks, get_task, register_task

from nasengine.tasks import digits as _digits  # noqa: F401  (registers "digits")

__all__ = ["SPLITS", "EpochBatches", "Split", "Task", "available_tasks", "get_task", "register_task"]
