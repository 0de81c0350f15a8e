"""Tasks as data: resolve `--data SPEC` to a task, and rebuild a task from the spec stored in config.json.

A spec names the reader (`kind`), the path, a SHA-256 per file, the split rule with the resulting index
hashes, the input shape, the classes and the normalisation. Rebuilding re-reads and re-hashes the files and
refuses, naming the file, when anything changed since the spec was written.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from nasengine.errors import UserError
from nasengine.tasks.arrays import ArrayTask, ArrayTaskOptions, SplitRule
from nasengine.tasks.files import sha256_file
from nasengine.tasks.base import Task, available_tasks, named_task_factory
from nasengine.search_spaces.registry import Registry
from nasengine.tasks.readers import DataError, ImageData, find_idx_files, read_idx_dir, read_image_folder, read_npz


@dataclass(frozen=True)
class DataKind:
    """A reader of one on-disk layout: `detect(path)` says whether it applies, `read` loads it."""

    name: str
    detect: Callable[[Path], bool]
    read: Callable[[Path, ArrayTaskOptions], ImageData]


def _is_image_folder(path: Path) -> bool:
    return path.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir())


DATA_KINDS: Registry[DataKind] = Registry("data kind")


def register_data_kind(kind: DataKind) -> DataKind:
    """Add a reader (plugins); detection tries kinds in registration order."""
    return DATA_KINDS.add(kind.name, kind)


register_data_kind(DataKind("npz", lambda p: p.is_file() and p.suffix == ".npz", lambda p, o: read_npz(p)))
register_data_kind(DataKind("idx", lambda p: p.is_dir() and bool(find_idx_files(p)), lambda p, o: read_idx_dir(p)))
register_data_kind(DataKind("image_folder", _is_image_folder, lambda p, o: read_image_folder(p, o.image_size)))


@dataclass(frozen=True)
class TaskKind:
    """A data layout that builds its own kind of task (not images): `open(path, options)` for `--data PATH`,
    `from_spec(spec)` to rebuild it from config.json (text TSV files, for instance)."""

    name: str
    detect: Callable[[Path], bool]
    open: Callable[[Path, Mapping[str, Any] | None], Task]
    from_spec: Callable[[Mapping[str, Any]], Task]


TASK_KINDS: Registry[TaskKind] = Registry("task kind")


def register_task_kind(kind: TaskKind) -> TaskKind:
    """Add a task kind (plugins); tried before the image readers."""
    return TASK_KINDS.add(kind.name, kind)


def _register_text() -> None:
    from nasengine.tasks.text import KIND, open_text, text_from_spec

    register_task_kind(TaskKind(KIND, lambda p: p.is_file() and p.suffix.lower() == ".tsv", open_text,
                                text_from_spec))


_register_text()


def _register_causal_lm() -> None:
    from nasengine.tasks.causal_lm import KIND, SUFFIXES, lm_from_spec, open_lm

    register_task_kind(TaskKind(KIND, lambda p: p.is_file() and p.suffix.lower() in SUFFIXES, open_lm,
                                lm_from_spec))


_register_causal_lm()


def file_hashes(root: Path, files: list[Path]) -> dict[str, str]:
    """SHA-256 of each file, keyed by its path relative to `root` (the file name when `root` is the file)."""
    out = {}
    for path in files:
        out[path.name if path == root else str(path.relative_to(root))] = sha256_file(path)
    return out


def read_path(kind: DataKind, path: Path, name: str, options: ArrayTaskOptions,
              normalize: dict[str, Any] | None = None, classes: list[str] | None = None) -> ArrayTask:
    """Read `path` with `kind` and build its task (DataError -> UserError naming the problem)."""
    try:
        data = kind.read(path, options)
        if classes and not data.classes:
            data.classes = list(classes)
        source = {"kind": kind.name, "path": str(path.resolve()), "files": file_hashes(path, data.files)}
        if data.skipped:  # said by `nasengine data`; the files themselves are no part of the data
            source["skipped_files"] = {"count": len(data.skipped), "first": data.skipped[:5]}
        return ArrayTask(name, data, options, source, normalize)
    except DataError as exc:
        raise UserError(str(exc)) from None


def _options(base: ArrayTaskOptions, overrides: Mapping[str, Any] | None) -> ArrayTaskOptions:
    try:
        return base.with_overrides(dict(overrides or {}))
    except ValueError as exc:
        raise UserError(str(exc)) from None


def open_data(text: str, overrides: Mapping[str, Any] | None = None) -> Task:
    """`--data`: a registered name (digits, fashion-mnist, plugins' names) or a path to an .npz, IDX folder or
    image folder. `overrides` change the data set's default split rule, augmentation or image size
    (keys as in `ArrayTaskOptions.with_overrides`)."""
    factory = named_task_factory(text)
    if factory is not None:
        if not overrides:
            return factory()
        parameter = inspect.signature(factory).parameters.get("options")
        if parameter is None:
            raise UserError(f"data set {text!r} has fixed splits and preprocessing; it takes no data options")
        default = parameter.default if isinstance(parameter.default, ArrayTaskOptions) else ArrayTaskOptions()
        return factory(options=_options(default, overrides))
    path = Path(text).expanduser()
    if not path.exists():
        raise UserError(f"--data {text}: no such file or directory, and not a known data set "
                        f"(known: {', '.join(available_tasks())})")
    if path.is_dir() and not any(p for p in path.iterdir() if not p.name.startswith(".")):
        raise UserError(f"--data {text}: the folder is empty")
    for task_kind in TASK_KINDS.values():
        if task_kind.detect(path):
            return task_kind.open(path, overrides)
    for kind in DATA_KINDS.values():
        if kind.detect(path):
            return read_path(kind, path, path.stem if path.is_file() else path.resolve().name,
                             _options(ArrayTaskOptions(), overrides))
    raise UserError(f"--data {text}: not an .npz file, a folder of IDX files, a folder with one sub-folder of "
                    f"images per class, a .tsv text file or a .txt / .jsonl text corpus")


def options_from_spec(spec: Mapping[str, Any]) -> ArrayTaskOptions:
    rule = spec.get("split", {})
    size = spec.get("image_size")
    return ArrayTaskOptions(SplitRule(float(rule["val_fraction"]), float(rule["test_fraction"]), int(rule["seed"]),
                                      None if rule.get("max_train") is None else int(rule["max_train"])),
                            tuple(spec.get("augment", ())), tuple(size) if size else None)


def task_from_spec(spec: str | Mapping[str, Any]) -> Task:
    """Rebuild the task a supernet or subnet was made with; UserError if its files or splits changed."""
    if isinstance(spec, str):  # configs written before tasks were specs
        spec = {"kind": "named", "name": spec}
    kind_name = spec.get("kind")
    if kind_name == "named":
        factory = named_task_factory(str(spec.get("name")))
        if factory is None:
            raise UserError(f"data set {spec.get('name')!r} is not registered here; load the plugin that defines it "
                            f"with --plugin")
        task = factory()
        if len(spec) > 2 and task.spec != dict(spec):  # beyond {"kind", "name"} (old configs): must agree
            raise UserError(f"data set {spec.get('name')!r} now builds other splits or preprocessing than it "
                            f"did at training time (options not reproducible from its name); retrain")
        return task
    task_kind = TASK_KINDS.find(str(kind_name))
    if task_kind is not None:
        return task_kind.from_spec(spec)
    kind = DATA_KINDS.find(str(kind_name))
    if kind is None:
        raise UserError(f"unknown data kind {kind_name!r} in the task spec; load the plugin that defines it")
    path = Path(str(spec["path"]))
    if not path.exists():
        raise UserError(f"the data {path} that this supernet was trained on is missing")
    try:
        task = read_path(kind, path, str(spec["name"]), options_from_spec(spec), spec.get("normalize"),
                         spec.get("classes"))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError(f"malformed task spec ({type(exc).__name__}: {exc})") from None
    _check_unchanged(spec, task.spec)
    return task


def _check_unchanged(recorded: Mapping[str, Any], now: Mapping[str, Any]) -> None:
    before, after = dict(recorded.get("files", {})), dict(now["files"])
    for name in sorted(set(before) | set(after)):
        if before.get(name) != after.get(name):
            state = "missing" if name not in after else "new" if name not in before else "changed"
            root = Path(str(recorded["path"]))
            where = root if root.name == name else root / name  # a one-file data set is named by its path alone
            raise UserError(f"data changed since training: {where} is {state} (retrain, or restore the original files)")
    if recorded.get("split", {}).get("indices_sha1") != now["split"]["indices_sha1"]:
        raise UserError("data splits differ from the ones recorded at training time (retrain on this data)")
