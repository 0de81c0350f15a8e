"""User plugins through the CLI: the examples/user_family family trained, searched, exported and reloaded, plugins
recorded in config.json and re-imported by later commands, and changed or moved plugins refused by name.

Registrations are process-global (`elastic_resnet` can be registered once per process, and other test files
import family.py under another module name), so everything that loads family.py runs in a fresh subprocess.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from nasengine.cli.main import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "user_family"
FAMILY = EXAMPLE / "family.py"
TINY_RESNET = [f"--set={k}={json.dumps(v)}" for k, v in
               {"stem_width": 8, "stage_widths": [8, 16], "stage_strides": [1, 2], "depths": [1, 2],
                "widths": [0.5, 1.0]}.items()]
FAST = ["--threads", "1", "--quiet"]


def run(*args: object, cwd: Path | None = None, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), os.environ.get("PYTHONPATH")]))
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, cwd=cwd or REPO,
                          env=env)


def nasengine(*args: object, **kwargs) -> subprocess.CompletedProcess:
    return run(sys.executable, "-m", "nasengine", *args, **kwargs)


def assert_ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def assert_clean_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nasengine: error: "), result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def user_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("family") / "shapes.npz"
    assert_ok(run(sys.executable, EXAMPLE / "make_data.py", "--out", out, "--n", "400"))
    return out


@pytest.fixture(scope="module")
def family_supernet(user_data: Path) -> Path:
    """elastic_resnet trained for one epoch, with the plugin given before the subcommand."""
    sn = user_data.parent / "sn"
    assert_ok(nasengine("--plugin", FAMILY, "train", "elastic_resnet", "--data", user_data, "--out", sn,
                        "--epochs", "1", *TINY_RESNET, *FAST))
    return sn


@pytest.fixture(scope="module")
def family_export(family_supernet: Path) -> Path:
    """Searched and exported without naming the plugin again: both re-import it from config.json."""
    root = family_supernet.parent
    assert_ok(nasengine("search", family_supernet, "--out", root / "run", "--evals", "6", "--device", "ort-cpu-1t",
                        *FAST))
    assert_ok(nasengine("export", root / "run", "--out", root / "exp", *FAST))
    return root / "exp"


def test_train_records_the_plugin_and_the_task(family_supernet: Path, user_data: Path) -> None:
    config = json.loads((family_supernet / "config.json").read_text())
    assert config["supernet"] == "elastic_resnet"
    assert {"kind": "file", "ref": str(FAMILY.resolve()), "sha256": sha256(FAMILY)} in config["plugins"]
    assert Path(config["plugins"][0]["ref"]).is_absolute()
    task = config["task"]
    assert task["kind"] == "npz" and task["path"] == str(user_data.resolve())
    assert task["files"] == {"shapes.npz": sha256(user_data)}
    assert task["input_shape"] == [1, 16, 16] and task["num_classes"] == 4
    assert task["split"]["sizes"] == {"train": 300, "val": 40, "test": 60}
    assert config["kwargs"]["in_channels"] == 1 and config["kwargs"]["num_classes"] == 4
    assert config["kwargs"]["stage_widths"] == [8, 16]


def test_search_and_export_reload_the_plugin_by_themselves(family_export: Path, family_supernet: Path) -> None:
    run_dir = family_supernet.parent / "run"
    assert (run_dir / "results.csv").is_file() and (run_dir / "pareto.csv").is_file()
    manifest = json.loads((family_export / "manifest.json").read_text())
    assert manifest["supernet"]["name"] == "elastic_resnet"
    assert manifest["input_shape"][0] == 1 and len(manifest["input_shape"]) == 3
    assert {"config.json", "model.safetensors", "model.onnx", "manifest.json"} <= \
        {p.name for p in family_export.iterdir()}


def test_exported_subnet_loads_without_the_plugin(family_export: Path, tmp_path: Path) -> None:
    script = (
        "import json, sys, torch\n"
        "import nasengine\n"
        f"exp = {str(family_export)!r}\n"
        "m = nasengine.load_subnet(exp)\n"
        "shape = json.load(open(exp + '/manifest.json'))['input_shape']\n"
        "with torch.no_grad():\n"
        "    y = m(torch.zeros(1, *shape))\n"
        "plugins = [k for k in sys.modules if k.startswith('nasengine_plugin')]\n"
        "print(json.dumps({'shape': list(y.shape), 'plugins': plugins, "
        "'supernets': 'nasengine.supernets' in sys.modules,\n"
        "                  'type': type(m).__module__, 'finite': bool(torch.isfinite(y).all())}))\n"
    )
    result = assert_ok(run(sys.executable, "-c", script, cwd=tmp_path))
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["shape"] == [1, 4] and report["finite"]
    assert report["plugins"] == [] and not report["supernets"]
    assert report["type"].startswith("torch.nn")


def test_evaluate_an_exported_subnet_in_a_fresh_process(family_export: Path, tmp_path: Path) -> None:
    result = assert_ok(nasengine("evaluate", family_export, "--threads", "1", cwd=tmp_path))
    found = re.search(r"top-1 accuracy ([0-9.]+)%", result.stdout)
    assert found, result.stdout
    accuracy = float(found.group(1)) / 100
    manifest = json.loads((family_export / "manifest.json").read_text())
    assert accuracy == pytest.approx(manifest["accuracy"], abs=5e-5)  # printed as a percentage, 2 decimals


def test_a_changed_or_moved_plugin_stops_search_unless_given_again(user_data: Path, tmp_path: Path) -> None:
    plugin = tmp_path / "my_family.py"
    shutil.copy(FAMILY, plugin)
    sn = tmp_path / "sn"
    # --plugin given after the subcommand (train here, search below) works as well as before it
    assert_ok(nasengine("train", "elastic_resnet", "--plugin", plugin, "--data", user_data, "--out", sn,
                        "--epochs", "1", *TINY_RESNET, *FAST))
    records = json.loads((sn / "config.json").read_text())["plugins"]
    assert {"kind": "file", "ref": str(plugin.resolve()), "sha256": sha256(plugin)} in records

    plugin.write_text(plugin.read_text() + "\n# edited after training\n")
    refused = nasengine("search", sn, "--out", tmp_path / "run1", "--evals", "4", *FAST)
    assert_clean_error(refused, str(plugin.resolve()), "changed", "--plugin")
    assert not (tmp_path / "run1").exists()
    assert_ok(nasengine("search", sn, "--out", tmp_path / "run2", "--evals", "4", "--plugin", plugin, *FAST))
    assert (tmp_path / "run2" / "results.csv").is_file()

    moved = tmp_path / "elsewhere" / "my_family.py"
    moved.parent.mkdir()
    plugin.rename(moved)
    refused = nasengine("search", sn, "--out", tmp_path / "run3", "--evals", "4", *FAST)
    assert_clean_error(refused, str(plugin.resolve()), "missing")
    assert not (tmp_path / "run3").exists()
    assert_ok(nasengine("--plugin", moved, "search", sn, "--out", tmp_path / "run4", "--evals", "4", *FAST))


# --- plugins given as module names ----------------------------------------------------------------------------
MODULE_SOURCE = '''"""A test plugin: a supernet family that is ofa_mbv3 under another name."""
from nasengine import supernets


@supernets.register({name!r})
def build(**kwargs):
    """ofa_mbv3 renamed, registered by a plugin module."""
    return supernets.create("ofa_mbv3", **kwargs)
'''


@pytest.fixture
def plugin_module(tmp_path: Path) -> tuple[str, str, Path]:
    """A plugin module in tmp_path, with unique names (registrations outlive a test in this process)."""
    tag = uuid.uuid4().hex[:8]
    module, supernet = f"nasengine_test_plugin_{tag}", f"renamed_mbv3_{tag}"
    path = tmp_path / f"{module}.py"
    path.write_text(MODULE_SOURCE.format(name=supernet))
    return module, supernet, path


def test_a_module_plugin_registers_a_supernet_listed_by_supernets(plugin_module, tmp_path: Path, monkeypatch,
                                                                  capsys) -> None:
    from nasengine import plugins

    module, supernet, _ = plugin_module
    monkeypatch.syspath_prepend(str(tmp_path))
    # the loader's process-wide records: keep this module out of what later in-process `train` calls record
    monkeypatch.setattr(plugins, "_LOADED", dict(plugins._LOADED))
    monkeypatch.setattr(plugins, "_GIVEN", set(plugins._GIVEN))
    assert main(["--plugin", module, "supernets"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(supernet + " ")]
    assert len(rows) == 1 and module in rows[0] and "ofa_mbv3 renamed" in rows[0]
    assert main(["supernets", "--plugin", module]) == 0  # a second load of the same module is a no-op
    assert sum(line.startswith(supernet + " ") for line in capsys.readouterr().out.splitlines()) == 1


def test_a_module_plugin_is_recorded_and_reimported_from_pythonpath(plugin_module, tmp_path: Path) -> None:
    import numpy as np

    from tests.conftest import TINY

    module, supernet, path = plugin_module
    rng = np.random.default_rng(0)
    y = np.arange(120) % 2
    x = (rng.integers(0, 100, (120, 8, 8)) + 100 * y[:, None, None]).astype(np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    sn = tmp_path / "sn"
    sets = [f"--set={k}={json.dumps(v)}" for k, v in {**TINY, "resolutions": [8]}.items()]
    assert_ok(nasengine("--plugin", module, "train", supernet, "--data", tmp_path / "d.npz", "--out", sn,
                        "--epochs", "1", *sets, *FAST, pythonpath=tmp_path))
    config = json.loads((sn / "config.json").read_text())
    assert config["supernet"] == supernet
    assert {"kind": "module", "ref": module, "sha256": sha256(path)} in config["plugins"]
    # a fresh process re-imports the module from config.json, as long as it is importable there
    assert_ok(nasengine("search", sn, "--out", tmp_path / "run", "--evals", "4", *FAST, pythonpath=tmp_path))
    refused = nasengine("search", sn, "--out", tmp_path / "run2", "--evals", "4", *FAST)
    assert_clean_error(refused, module, "cannot be found")
    assert not (tmp_path / "run2").exists()


FLATTEN_PLUGIN = """
from torch import nn

from nasengine import supernets
from nasengine.kernels import register_static
from nasengine.kernels.quant_nodes import keep_float
from nasengine.supernets.ofa_mbv3 import OFAConfig, OFAMobileNetV3

register_static("Flatten", nn.Flatten, lambda m: {"start_dim": m.start_dim, "end_dim": m.end_dim}, quantize=keep_float)


class Flattened(OFAMobileNetV3):
    def _export_active(self):
        return nn.Sequential(super()._export_active(), nn.Flatten())


@supernets.register("flattened_mbv3", task="digits", config=OFAConfig)
def flattened(**kwargs):
    return Flattened(OFAConfig(**kwargs))
"""


def test_a_torch_class_a_plugin_registers_is_recorded_and_its_plugin_named_on_reload(tmp_path: Path) -> None:
    """A plugin adding torch's nn.Flatten to the vocabulary: the export records that it needs the plugin, a fresh
    process loading it without the plugin is told which plugin, and with the plugin imported it loads."""
    plugin = tmp_path / "flatten_plugin.py"
    plugin.write_text(FLATTEN_PLUGIN)
    from tests.conftest import TINY

    tiny = [f"--set={k}={json.dumps(v)}" for k, v in TINY.items()]
    assert_ok(nasengine("--plugin", plugin, "train", "flattened_mbv3", "--out", tmp_path / "sn", "--epochs", "1",
                        *tiny, *FAST))
    assert_ok(nasengine("search", tmp_path / "sn", "--out", tmp_path / "run", "--evals", "3", *FAST))
    assert_ok(nasengine("export", tmp_path / "run", "--out", tmp_path / "exp", *FAST))
    config = json.loads((tmp_path / "exp" / "config.json").read_text())
    assert any(m.startswith("nasengine_plugin_flatten_plugin") for m in config["requires_modules"])
    load = "import sys, nasengine; print(type(nasengine.load_subnet(sys.argv[1])[-1]).__name__)"
    bare = run(sys.executable, "-c", load, tmp_path / "exp")
    assert bare.returncode == 1 and "Traceback" in bare.stderr
    message = bare.stderr.strip().splitlines()[-1]
    assert "unknown static module type 'Flatten'" in message and str(plugin.resolve()) in message, message
    with_plugin = ("import sys, nasengine; from nasengine.plugins import load_plugin; load_plugin(sys.argv[2]); "
                   "print(type(nasengine.load_subnet(sys.argv[1])[-1]).__name__)")
    assert assert_ok(run(sys.executable, "-c", with_plugin, tmp_path / "exp", plugin)).stdout.strip() == "Flatten"
    assert "top-1 accuracy" in assert_ok(nasengine("evaluate", tmp_path / "exp")).stdout  # the CLI re-imports it
