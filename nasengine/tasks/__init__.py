"""Data sets the engine trains and evaluates on: built-in names, files on disk, and specs that rebuild them."""

from nasengine.tasks.arrays import ArrayTask, ArrayTaskOptions, SplitRule
from nasengine.tasks.base import SPLITS, EpochBatches, Split, Task, available_tasks, get_task, register_task
from nasengine.tasks.readers import DataError, ImageData
from nasengine.tasks.spec import DataKind, open_data, register_data_kind, task_from_spec

from nasengine.tasks import digits as _digits  # noqa: F401  (registers "digits")
from nasengine.tasks import fashion_mnist as _fashion_mnist  # noqa: F401  (registers "fashion-mnist")

__all__ = ["SPLITS", "ArrayTask", "ArrayTaskOptions", "DataError", "DataKind", "EpochBatches", "ImageData", "Split",
           "SplitRule", "Task", "available_tasks", "get_task", "open_data", "register_data_kind", "register_task",
           "task_from_spec"]
