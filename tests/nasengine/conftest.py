from __future__ import annotations

from pathlib import Path

import pytest

from nasengine.searching.runner import SearchRequest, search
from nasengine.training.run import TrainRequest, train
from tests.conftest import TINY


@pytest.fixture(scope="session")
def tiny_supernet_dir(tmp_path_factory) -> Path:
    """A tiny supernet trained for 2 epochs on digits (seconds), shared by the engine tests."""
    out = tmp_path_factory.mktemp("engine") / "supernet"
    train(TrainRequest("ofa_mbv3_digits", out, epochs=2, batch_size=64, progress=False, overrides=dict(TINY)))
    return out


@pytest.fixture(scope="session")
def tiny_run_dir(tiny_supernet_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("engine") / "run"
    search(SearchRequest(tiny_supernet_dir, out, evals=12, progress=False))
    return out
