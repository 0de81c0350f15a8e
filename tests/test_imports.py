"""Every module of the engine imports on its own: an import cycle that a usual import order hides (a strategy
reaching into reporting, say) fails here instead of in a user's first command."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import importlib, pkgutil, sys
import nasengine
names = sorted(m.name for m in pkgutil.walk_packages(nasengine.__path__, "nasengine.")
               if not m.name.endswith("__main__"))
cycles = []
for name in names:
    for loaded in [k for k in sys.modules if k == "nasengine" or k.startswith("nasengine.")]:
        del sys.modules[loaded]  # each module first, as if it were the entry point
    try:
        importlib.import_module(name)
    except ImportError as exc:
        if "partially initialized" in str(exc):
            cycles.append(f"{name}: {exc}")
print(len(names))
print("\\n".join(cycles))
"""


def test_every_module_imports_first_without_a_cycle() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    count, *cycles = done.stdout.strip().splitlines()
    assert int(count) > 50  # the walk found the engine's modules (the top-level packages included)
    assert not [c for c in cycles if c], cycles
