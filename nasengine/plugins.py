"""User code without engine edits: import a user's file or module so its registrations reach every command.

`--plugin FILE.py|module.name` (repeatable) and installed packages' `nasengine.plugins` entry points are
imported before a command runs. Supernet directories record the plugins that were loaded when they were
trained (file path or module, and a SHA-256 of the source), and later commands re-import them from there.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Iterable, Mapping

from nasengine.errors import UserError, first_line

ENTRY_POINT_GROUP = "nasengine.plugins"
# nasengine's component packages, installed under `nasengine.` since 0.2: other projects own the bare names
COMPONENTS = ("kernels", "supernets", "predictors", "search_spaces")


def old_name_hint(exc: BaseException) -> str | None:
    """When `exc` comes from code that imported a component by its bare pre-0.2 name (`from kernels import ...`
    finds Hugging Face's `kernels`, or nothing), a sentence saying what to write instead; else None."""
    name = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
    if isinstance(exc, AttributeError):
        name = getattr(getattr(exc, "obj", None), "__name__", None)
    root = str(name or "").split(".")[0]
    if root not in COMPONENTS:
        return None
    return (f"it imports {root!r}, which nasengine installs as 'nasengine.{root}' (write `from nasengine.{root} "
            f"import ...`; a bare {root!r} is another project's package or none)")


@dataclass(frozen=True)
class Plugin:
    """A loaded plugin: `kind` "file" (ref = absolute path) or "module" (ref = dotted name), source hash."""

    kind: str
    ref: str
    sha256: str
    module: str = ""  # its name in sys.modules (not recorded: it differs between processes for files)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "ref": self.ref, "sha256": self.sha256}


_LOADED: dict[tuple[str, str], Plugin] = {}
_GIVEN: set[tuple[str, str]] = set()  # plugins the user named on this command line


def _digest(path: Path | None) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None and path.is_file() else ""


def _is_file_ref(ref: str) -> bool:
    return ref.endswith(".py") or "/" in ref or "\\" in ref or Path(ref).is_file()


def _run_import(ref: str, load: Any) -> Any:
    try:
        return load()
    except UserError:
        raise
    except SystemExit as exc:
        raise UserError(f"plugin {ref} exited while being imported (code {exc.code})") from None
    except BaseException as exc:  # any failure inside user code becomes one line naming the plugin
        if isinstance(exc, KeyboardInterrupt):
            raise
        hint = old_name_hint(exc)
        if hint is not None:
            raise UserError(f"plugin {ref} failed on import: {hint}") from None
        raise UserError(f"plugin {ref} failed on import: {type(exc).__name__}: {first_line(exc)}") from None


def _file_module_name(path: Path) -> str:
    """The name a file plugin is imported under (stable for a path, so records and exports can name it)."""
    return f"nasengine_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"


def recorded_plugin_of(module: str, records: Iterable[Mapping[str, Any]]) -> str | None:
    """Which recorded plugin (its file path or module name) provides the Python module `module`, if any."""
    for record in records:
        kind, ref = str(record.get("kind", "")), str(record.get("ref", ""))
        if kind == "file" and module == _file_module_name(Path(ref)):
            return ref
        if kind == "module" and (module == ref or module.startswith(ref + ".")):
            return ref
    return None


def load_plugin(ref: str, given: bool = False) -> Plugin:
    """Import a plugin once per process (a second request for the same file or module is a no-op).

    `given`: the user named it (--plugin), so it is trusted as it is even where a record differs.
    """
    plugin = _load(ref)
    if given:
        _GIVEN.add((plugin.kind, plugin.ref))
    return plugin


def _load(ref: str) -> Plugin:
    if _is_file_ref(ref):
        path = Path(ref).expanduser().resolve()
        key = ("file", str(path))
        if key in _LOADED:
            return _LOADED[key]
        if not path.is_file():
            raise UserError(f"plugin file {ref} does not exist")
        digest = _digest(path)
        module_name = _file_module_name(path)

        def load() -> None:
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise UserError(f"plugin {ref} is not an importable Python file")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(module_name, None)
                raise

        _run_import(ref, load)
        plugin = Plugin("file", str(path), digest, module_name)
    else:
        key = ("module", ref)
        if key in _LOADED:
            return _LOADED[key]
        if ref in sys.modules:  # imported already (e.g. by an entry point): nothing to register again
            module = sys.modules[ref]
        else:
            if importlib.util.find_spec(ref.split(".")[0]) is None:
                raise UserError(f"plugin module {ref} cannot be found (not installed, not on PYTHONPATH)")
            module = _run_import(ref, lambda: importlib.import_module(ref))
        source = getattr(module, "__file__", None)
        plugin = Plugin("module", ref, _digest(Path(source)) if source else "", ref)
    _LOADED[key] = plugin
    return plugin


def load_entry_point_plugins() -> list[Plugin]:
    """Import every installed package's `nasengine.plugins` entry point."""
    loaded = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        module = point.value.split(":")[0]
        loaded.append(load_plugin(module))
    return loaded


def begin_command() -> None:
    """Forget which plugins the previous command named (several commands may run in one process)."""
    _GIVEN.clear()


def plugins_to_record(defining_module: str = "") -> list[Plugin]:
    """What a new supernet directory records: the plugins named on this command, entry points, and the plugin
    whose module defines the family (`defining_module`), each once."""
    points = {point.value.split(":")[0] for point in entry_points(group=ENTRY_POINT_GROUP)}
    chosen = [p for key, p in _LOADED.items() if key in _GIVEN or p.ref in points or
              (defining_module and (defining_module == p.module or defining_module.startswith(p.module + ".")))]
    return list({(p.kind, p.ref): p for p in chosen}.values())


def reload_recorded(records: Iterable[Mapping[str, Any]]) -> None:
    """Re-import the plugins a supernet recorded; a missing or changed plugin stops with a one-line error.

    A plugin the user names again with --plugin is trusted as it is now, even if it changed or moved.
    """
    explicit = set(_GIVEN)
    for record in records:
        try:
            kind, ref, digest = str(record["kind"]), str(record["ref"]), str(record.get("sha256", ""))
        except (KeyError, TypeError):
            raise UserError(f"malformed plugin record in config.json: {record!r}") from None
        if (kind, ref) in explicit:
            continue
        if kind == "file" and not Path(ref).is_file():
            if any(k == "file" and Path(r).name == Path(ref).name for k, r in explicit):
                continue  # the user points at the moved file with --plugin
            raise UserError(f"this supernet was built with plugin {ref}, which is missing; restore it or pass "
                            f"--plugin PATH to where it is now")
        plugin = load_plugin(ref)
        if digest and plugin.sha256 and plugin.sha256 != digest:
            raise UserError(f"plugin {ref} changed since this supernet was trained; pass --plugin {ref} to use it "
                            f"as it is now")
