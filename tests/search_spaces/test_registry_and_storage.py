"""The one registry helper and the one atomic-write helper: same rules everywhere, nothing half-written."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from nasengine.search_spaces.registry import Registry, RegistryError
from nasengine.search_spaces.storage import atomic_directory, atomic_file, atomic_write


def test_registry_refuses_duplicates_and_names_what_is_available() -> None:
    reg: Registry[int] = Registry("widget")
    reg.add("a", 1)
    assert reg.register("b")(2) == 2
    with pytest.raises(RegistryError, match="widget 'a' is registered twice"):
        reg.add("a", 3)
    reg.add("a", 3, replace=True)
    assert reg.get("a") == 3 and reg.names() == ["a", "b"] and "b" in reg and reg.find("zz") is None
    with pytest.raises(RegistryError, match=r"unknown widget 'zz'; available: a, b"):
        reg.get("zz")
    with pytest.raises(RegistryError):
        reg.add("", 1)


def test_every_engine_registry_uses_the_one_helper() -> None:
    import nasengine.kernels.static as static
    import nasengine.measurement.devices.registry as devices
    import nasengine.searching.objectives as objectives
    import nasengine.searching.strategies.base as strategies
    import nasengine.tasks.base as tasks
    import nasengine.tasks.spec as spec
    import nasengine.search_spaces.encoding as encoding
    import nasengine.supernets.registry as supernets_registry
    import nasengine.supernets.training.recipes as recipes

    tables = [supernets_registry._REGISTRY, recipes.RECIPES, tasks._TASKS, spec.DATA_KINDS, strategies._STRATEGIES,
              objectives.METRICS, devices._BACKENDS, devices._DEVICES, devices._RESOLVERS, encoding.ENCODINGS,
              static._BUILDERS]
    assert all(isinstance(t, Registry) for t in tables)
    for table in tables:  # one error type for an unknown name, whatever the table
        with pytest.raises(RegistryError, match="unknown"):
            table.get("no-such-name")


def test_atomic_write_leaves_old_content_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "f.json"
    atomic_write(path, "old")
    with pytest.raises(RuntimeError):
        with atomic_file(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert path.read_text() == "old" and os.listdir(path.parent) == ["f.json"]
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode & 0o044 == 0o044  # readable by group and others like any file written with the usual umask


def test_atomic_directory_appears_complete_or_not_at_all(tmp_path: Path) -> None:
    out = tmp_path / "exp"
    with pytest.raises(RuntimeError):
        with atomic_directory(out) as tmp:
            (tmp / "a").write_text("1")
            raise RuntimeError("crash")
    assert not out.exists() and os.listdir(tmp_path) == []
    with atomic_directory(out) as tmp:
        (tmp / "a").write_text("1")
    assert (out / "a").read_text() == "1" and stat.S_IMODE(out.stat().st_mode) & 0o055 == 0o055
    with pytest.raises(FileExistsError):
        with atomic_directory(out) as tmp:
            (tmp / "b").write_text("2")
    with atomic_directory(out, overwrite=True) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(os.listdir(out)) == ["b"]
