"""Installs beside the libraries of its field: a fresh virtual environment with the project (test extra) and the newest
transformers and Hugging Face `kernels`, used from a directory outside the checkout as a user would. This is what
caught nothing before 0.2: transformers pulls a package named `kernels`, which then shadowed the engine's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY

CHECKOUT = Path(__file__).resolve().parents[1]
TINY_SETS = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={json.dumps(value)}")]

IMPORT_EVERYTHING = """
import importlib, pkgutil, sys
import kernels, transformers  # Hugging Face's kernels, and transformers importing it
assert not kernels.__file__.startswith(sys.argv[1]), kernels.__file__
import nasengine
count = 0
for package in ("nasengine", "nasengine.kernels", "nasengine.supernets", "nasengine.predictors",
                "nasengine.search_spaces"):
    module = importlib.import_module(package)
    assert module.__file__.startswith(sys.argv[2]), (package, module.__file__)  # the installed copy
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
            count += 1
import transformers.integrations.hub_kernels  # transformers' use of `kernels` still works beside ours
print(count)
"""


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result.stdout


@pytest.mark.slow
def test_a_fresh_venv_with_the_newest_transformers_and_kernels(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python, cli = venv / "bin" / "python", venv / "bin" / "nasengine"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    elsewhere = tmp_path / "elsewhere"  # never the checkout: nothing may come from it but the installed copy
    elsewhere.mkdir()
    _run([str(python), "-m", "pip", "install", "-q", f"{CHECKOUT}[test]"], elsewhere, env)
    _run([str(python), "-m", "pip", "install", "-q", "--upgrade", "transformers", "kernels"], elsewhere, env)
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], elsewhere, env)
    count = int(_run([str(python), "-c", IMPORT_EVERYTHING, str(CHECKOUT), site.strip()], elsewhere, env))
    assert count > 100  # every module of the five packages imported

    assert "train" in _run([str(cli), "--help"], elsewhere, env)
    _run([str(cli), "train", "ofa_mbv3_digits", "--out", "sn", "--epochs", "1", "--batch-size", "128", "--quiet",
          *TINY_SETS], elsewhere, env)
    _run([str(cli), "search", "sn", "--out", "run", "--evals", "4", "--quiet"], elsewhere, env)
    _run([str(cli), "export", "run", "--out", "exp", "--quiet"], elsewhere, env)
    manifest = json.loads((elsewhere / "exp" / "manifest.json").read_text())
    rescored = _run([str(python), "-c", "import sys, nasengine; print(nasengine.evaluate_subnet(sys.argv[1]))",
                     "exp"], elsewhere, env)  # a fresh process, with no supernet code
    assert float(rescored) == pytest.approx(manifest["accuracy"], abs=1e-9)
