"""A trained supernet directory loaded back: its config, the plugins it was built with re-imported, its weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nasengine import supernets
from nasengine.errors import UserError
from nasengine.plugins import reload_recorded


def load_trained(supernet_dir: Path) -> tuple[supernets.Supernet, dict[str, Any]]:
    """The trained supernet of a `nasengine train` directory (re-importing the plugins it was built with),
    or a one-line UserError."""
    try:
        config = supernets.io.read_config(Path(supernet_dir))
        if not isinstance(config.get("task"), dict):
            raise ValueError(f"{Path(supernet_dir) / supernets.io.CONFIG} records no task (its 'task' entry is "
                             f"missing or not an object); train the supernet again")
        reload_recorded(config.get("plugins", []))
        return supernets.load_supernet(Path(supernet_dir))
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
