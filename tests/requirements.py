"""What a test needs from outside the checkout (shared data, Debian's Fashion-MNIST, the MiniLM package, a PostgreSQL
server): missing, the test skips with the reason on a developer's machine, and fails with it where
$NASENGINE_REQUIRE_ALL is set (CI sets it), so a broken set-up can never pass as skips."""

from __future__ import annotations

import importlib.util
import os
from typing import NoReturn

import pytest

REQUIRE_ENV = "NASENGINE_REQUIRE_ALL"


def required(extra_env: str | None = None) -> bool:
    """Whether missing requirements fail here ($NASENGINE_REQUIRE_ALL, or `extra_env`, set and not 0)."""
    return any(os.environ.get(name, "").strip() not in ("", "0") for name in (REQUIRE_ENV, extra_env) if name)


def unavailable(reason: str, extra_env: str | None = None) -> NoReturn:
    """Skip the test with `reason`, or fail with it where requirements are required."""
    if required(extra_env):
        pytest.fail(f"required here (${REQUIRE_ENV}) but unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


def need_module(name: str, hint: str) -> None:
    """The importable module `name`, or `unavailable` saying how to install it."""
    if importlib.util.find_spec(name) is None:
        unavailable(f"{name} is not installed ({hint})")
