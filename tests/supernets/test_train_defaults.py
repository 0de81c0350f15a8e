"""Training defaults: a family grown from a checkpoint fine-tunes gently unless told otherwise; warm-up share."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nasengine.training.run import GENERIC_DEFAULTS, TrainRequest, train
from nasengine.search_spaces.registry import RegistryError
from nasengine.supernets import register
from nasengine.supernets.training import TrainSettings
from nasengine.supernets.training.loop import _lr_factor
from tests.cli_helpers import one_line_error, run_cli
from tests.conftest import TINY


def test_bert_fine_tunes_with_its_own_defaults_and_the_user_overrides_them(tmp_path: Path) -> None:
    settings = TrainRequest("bert", tmp_path).settings()
    assert (settings.epochs, settings.lr, settings.warmup_fraction) == (2, 1e-4, 0.06)
    mine = TrainRequest("bert", tmp_path, epochs=3, lr=3e-5, warmup=0.0).settings()
    assert (mine.epochs, mine.lr, mine.warmup_fraction) == (3, 3e-5, 0.0)


def test_families_trained_from_scratch_keep_the_generic_defaults(tmp_path: Path) -> None:
    settings = TrainRequest("ofa_mbv3_digits", tmp_path).settings()
    assert (settings.epochs, settings.lr) == (GENERIC_DEFAULTS["epochs"], GENERIC_DEFAULTS["lr"])
    assert "warmup_fraction" not in settings.to_dict()  # identities of older runs stay resumable


def test_warmup_share_sets_the_warmup_length_and_the_old_rule_stays() -> None:
    assert TrainSettings(epochs=2, warmup_fraction=0.06).warmup_steps(1000, 500) == 60
    assert TrainSettings(epochs=4).warmup_steps(400, 100) == 100  # one epoch
    assert TrainSettings(epochs=1).warmup_steps(100, 100) == 50  # at most half the run
    factors = [_lr_factor(s, 1000, 60) for s in range(1000)]
    assert factors[59] == 1.0 and factors[0] < 0.02 and factors[-1] < 1e-4
    with pytest.raises(ValueError, match="warm-up"):
        TrainSettings(warmup_fraction=0.8)


def test_unknown_train_default_is_refused_at_registration() -> None:
    with pytest.raises(RegistryError, match="train_defaults"):
        register("never_registered", train_defaults={"learning_rate": 1e-4})


def test_cli_refuses_a_warmup_share_out_of_range(tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(capsys, "train", "ofa_mbv3_digits", "--out", tmp_path / "sn", "--warmup", "0.7")
    assert "--warmup" in one_line_error(code, err)
    assert not (tmp_path / "sn").exists()


@pytest.mark.parametrize("resolutions, expected", [([8, 12, 16], "per-subnet"), ([8], None)])
def test_elastic_resolution_trains_each_subnet_at_its_own_by_default(tmp_path: Path, resolutions: list[int],
                                                                     expected: str | None) -> None:
    """per-subnet halves the gap to archs trained alone at equal cost (BENCHMARKS.md, issue #22); a space with one
    resolution keeps per-step, the same thing there, so its recorded identity is what it always was."""
    out = tmp_path / "sn"
    train(TrainRequest("ofa_mbv3_digits", out, epochs=1, batch_size=256, progress=False,
                       overrides={**TINY, "resolutions": resolutions}))
    identity = json.loads((out / "train.json").read_text())["identity"]
    assert identity.get("resolution") == expected
    chosen = TrainRequest("ofa_mbv3_digits", tmp_path / "other", resolution="per-step").settings()
    assert chosen.resolution == "per-step"


def test_a_run_started_under_the_old_default_resumes_with_its_own_rule(tmp_path: Path) -> None:
    out = tmp_path / "sn"
    request = dict(epochs=1, batch_size=256, progress=False, overrides=dict(TINY))
    train(TrainRequest("ofa_mbv3_digits", out, resolution="per-step", **request))  # records no rule, as runs did
    (out / "config.json").unlink()  # as if it had crashed before writing the supernet
    train(TrainRequest("ofa_mbv3_digits", out, **request))  # the same command, no --resolution: resumes
    assert "resolution" not in json.loads((out / "train.json").read_text())["identity"]
    assert (out / "config.json").exists()
