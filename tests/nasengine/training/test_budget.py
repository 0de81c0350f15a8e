"""Epochs sized by a wall-time budget: timed on a copy, so the trained supernet is the one an explicit --epochs
gives; a resumed run keeps the epochs it was planned with; bad combinations are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nasengine.supernets.training import get_recipe
from nasengine.tasks import open_data
from nasengine.training.budget import EpochCost, min_epochs
from nasengine.training.run import TrainRequest, train
from tests.cli_helpers import one_line_error, run_cli
from tests.conftest import TINY

QUICK = dict(batch_size=256, progress=False, overrides=dict(TINY))


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model.safetensors"))


def test_epochs_within_a_budget_count_the_teacher_phase() -> None:
    cost = EpochCost(recipe_seconds=60.0, teacher_seconds=20.0, steps_per_epoch=100)
    assert cost.epochs_within(30 * 60, None, auto_teacher=False) == 30
    assert cost.epochs_within(30 * 60, None, auto_teacher=True) == 22  # as many teacher epochs as recipe epochs
    assert cost.epochs_within(30 * 60, 15, auto_teacher=True) == 25  # 15 teacher epochs take 5 minutes first
    assert cost.epochs_within(59.0, None, auto_teacher=False) == 0


def test_a_budget_trains_the_same_supernet_as_the_epochs_it_plans(tmp_path: Path, capsys) -> None:
    """Timing steps on a copy leaves the supernet and the random state alone: the planned run is bit-identical to
    asking for its epochs; an overrun budget still trains the recipe's fewest epochs, and says so."""
    planned, explicit = tmp_path / "planned", tmp_path / "explicit"
    train(TrainRequest("ofa_mbv3_digits", planned, budget_minutes=1e-4, **{**QUICK, "progress": True}))
    err = capsys.readouterr().err
    assert "1 epoch(s)" in err and "overruns the budget" in err
    identity = json.loads((planned / "train.json").read_text())["identity"]
    assert identity["epochs"] == 1
    train(TrainRequest("ofa_mbv3_digits", explicit, epochs=1, **QUICK))
    mine, theirs = _weights(planned), _weights(explicit)
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_progressive_shrinking_gets_at_least_one_epoch_per_phase(tmp_path: Path) -> None:
    out = tmp_path / "sn"
    train(TrainRequest("ofa_mbv3_digits", out, recipe="progressive", budget_minutes=1e-4, **QUICK))
    request = TrainRequest("ofa_mbv3_digits", out, recipe="progressive", **QUICK)
    net = request.build(open_data("digits"))
    fewest = min_epochs(get_recipe("progressive"), net)
    assert fewest > 1 and json.loads((out / "train.json").read_text())["identity"]["epochs"] == fewest


def test_a_resumed_run_keeps_the_epochs_it_was_planned_with(tmp_path: Path, capsys) -> None:
    out = tmp_path / "sn"
    train(TrainRequest("ofa_mbv3_digits", out, epochs=2, **QUICK))
    (out / "config.json").unlink()  # as if it had crashed before writing the supernet
    train(TrainRequest("ofa_mbv3_digits", out, budget_minutes=1e-4, **{**QUICK, "progress": True}))
    assert "timing" not in capsys.readouterr().err  # nothing re-planned: the recorded 2 epochs resume
    assert json.loads((out / "train.json").read_text())["identity"]["epochs"] == 2
    assert (out / "config.json").exists()


@pytest.mark.parametrize("args, needle", [(["--epochs", "3", "--budget-minutes", "5"], "not both"),
                                          (["--budget-minutes", "0"], "--budget-minutes")])
def test_cli_refuses_a_budget_beside_epochs_or_not_positive(tmp_path: Path, capsys, args: list[str],
                                                            needle: str) -> None:
    code, _, err = run_cli(capsys, "train", "ofa_mbv3_digits", "--out", tmp_path / "sn", *args)
    assert needle in one_line_error(code, err)
    assert not (tmp_path / "sn").exists()
