"""The command line: one-line errors with exit code 2 and nothing half-written; listings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def nasengine(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nasengine", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def assert_clean_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and fragment in lines[0], lines[0]


def test_devices_lists_local_onnxruntime_devices() -> None:
    result = nasengine("devices", "--json")
    assert result.returncode == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["ort-cpu-1t"]["available"] and rows["ort-cpu-1t"]["settings"]["threads"] == 1
    assert rows["ort-cpu-2t"]["settings"]["threads"] == 2


@pytest.mark.parametrize("args, fragment", [
    (["train", "nope", "--out", "{tmp}/x"], "unknown supernet 'nope'"),
    (["train", "my_mlp", "--out", "{tmp}/x"], "needs its plugin: --plugin FILE.py|MODULE"),
    (["train", "ofa_mbv3_digits", "--out", "{tmp}/x", "--epochs", "0"], "--epochs"),
    (["train", "ofa_mbv3_digits", "--out", "{tmp}/x", "--set", "head_width=-3"], "cannot build"),
    (["train", "ofa_mbv3_digits", "--out", "{tmp}/x", "--recipe", "magic"], "unknown training recipe"),
    (["search", "{tmp}/missing", "--out", "{tmp}/x"], "missing: no such directory"),
    (["search", "{tmp}", "--out", "{tmp}/x"], "not a trained supernet directory"),
    (["search", "{supernet}", "--out", "{tmp}/x", "--device", "tpu-9"], "unknown device 'tpu-9'"),
    (["search", "{supernet}", "--out", "{tmp}/x", "--evals", "many"], "--evals"),
    (["search", "{supernet}", "--out", "{tmp}/x", "--latency-budget", "-1"], "--latency-budget"),
    (["search", "{supernet}", "--out", "{tmp}/x", "--strategy", "hillclimb"], "unknown search strategy"),
    (["search", "{supernet}", "--out", "{tmp}/x", "--objectives", "error,beauty"], "unknown metric 'beauty'"),
    (["export", "{tmp}/missing", "--out", "{tmp}/x"], "missing: no such directory"),
    (["export", "{tmp}", "--out", "{tmp}/x"], "not a search run directory"),
    (["export", "{run}", "--out", "{tmp}/x", "--arch", '{{"resolution": 99}}'], "--arch is not in the search space"),
    (["export", "{run}", "--out", "{tmp}/x", "--arch", "{{not json"], "--arch: architecture is not valid JSON"),
    (["export", "{run}", "--out", "{tmp}/x", "--device", "ort-cpu-2t"], "was not searched in this run"),
    (["evaluate", "{tmp}/missing"], "missing: no such directory"),
    (["evaluate", "{tmp}"], "not an exported subnet"),
    (["measure", "{tmp}/missing"], "missing: no such directory"),
    (["search", "{supernet}", "--out", "{tmp}/x", "--evals", "0"], "nasengine: error: search: argument --evals"),
])
def test_bad_input_gives_one_line_and_exit_2(args, fragment, tmp_path, tiny_supernet_dir, tiny_run_dir) -> None:
    filled = [a.format(tmp=tmp_path, supernet=tiny_supernet_dir, run=tiny_run_dir) for a in args]
    assert_clean_error(nasengine(*filled), fragment)
    assert not (tmp_path / "x").exists()


def test_search_into_a_foreign_directory_is_refused(tmp_path, tiny_supernet_dir) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    assert_clean_error(nasengine("search", tiny_supernet_dir, "--out", tmp_path / "x"), "not a search run")
    assert (tmp_path / "x" / "notes.txt").read_text() == "mine"


def test_retraining_a_finished_supernet_needs_overwrite(tiny_supernet_dir: Path) -> None:
    assert_clean_error(nasengine("train", "ofa_mbv3_digits", "--out", tiny_supernet_dir), "--overwrite")


def test_export_of_a_given_arch(tmp_path, tiny_run_dir: Path) -> None:
    from nasengine import supernets

    run = json.loads((tiny_run_dir / "run.json").read_text())
    net, _ = supernets.load_supernet(Path(run["identity"]["supernet_dir"]))
    arch = net.space.sample(seed=123)
    (tmp_path / "arch.json").write_text(json.dumps(arch))
    result = nasengine("export", tiny_run_dir, "--out", tmp_path / "exp", "--arch", f"@{tmp_path / 'arch.json'}")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "exp" / "manifest.json").read_text())["arch"] == arch


def test_version() -> None:
    from nasengine import __version__

    result = nasengine("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"nasengine {__version__}"


def _subparsers(parser):
    """Every (name, parser) of the command line, nested ones (`device profile`) included."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subparsers(sub))


def test_every_option_of_every_command_says_what_it_does() -> None:
    import argparse

    from nasengine.cli.main import build_parser

    silent = [f"{name}: {'/'.join(a.option_strings) or a.dest}" for name, sub in _subparsers(build_parser())
              for a in sub._actions if not a.help
              and not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]
    assert not silent, silent


def test_search_help_names_every_registered_strategy() -> None:
    from nasengine.cli.main import build_parser
    from nasengine.searching import available_strategies

    search = dict(_subparsers(build_parser()))["search"]
    (strategy,) = [a for a in search._actions if "--strategy" in a.option_strings]
    assert not [s for s in available_strategies() if s not in strategy.help], strategy.help


def test_errors_of_the_parser_and_of_the_commands_read_alike(tmp_path: Path) -> None:
    parser_error = nasengine("search", tmp_path, "--out", tmp_path / "x", "--evals", "zero").stderr.strip()
    command_error = nasengine("search", tmp_path / "nowhere", "--out", tmp_path / "x").stderr.strip()
    assert parser_error.startswith("nasengine: error: search: ") and command_error.startswith("nasengine: error: ")
