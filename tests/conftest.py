"""Shared fixtures: a tiny supernet configuration keeps every test that trains or searches fast."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

TINY = {"stem_width": 8, "stage_widths": [8, 16], "stage_strides": [2, 1], "stage_acts": ["relu", "hswish"],
        "stage_se": [False, True], "head_width": 32, "depths": [1, 2], "kernels": [3, 5], "expands": [2, 4],
        "resolutions": [8, 12, 16]}


# One intra-op thread: on a small, shared machine several OpenMP threads stall each other badly,
# and session fixtures (training, searching) run before any function-scoped fixture could set this.
torch.set_num_threads(1)


@pytest.fixture
def tiny_kwargs() -> dict:
    return dict(TINY)


@pytest.fixture(scope="session")
def postgres_url():
    """SQLAlchemy URL of a throwaway PostgreSQL database, `postgresql+psycopg2://postgres@127.0.0.1:PORT/
    nasengine_test` (or $NASENGINE_TEST_POSTGRES_URL); skips with the reason when no server can run.
    See tests/postgres.py."""
    from tests.postgres import postgres_session

    yield from postgres_session()
