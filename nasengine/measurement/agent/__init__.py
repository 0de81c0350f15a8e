"""Remote measurement agent: `nasengine device serve` times ONNX models sent over HTTP, one at a time.

Light to import (the CLI builds its parser from `add_serve_arguments`); the server loads onnxruntime on first use.
"""

from __future__ import annotations

from typing import Any

from nasengine.measurement.agent.command import add_serve_arguments, run_from_args

__all__ = ["AgentServer", "RunningAgent", "add_serve_arguments", "run_from_args", "serve", "start_agent"]


def __getattr__(name: str) -> Any:
    """`serve`, `start_agent`, `AgentServer`, `RunningAgent` import the server (and onnxruntime) on first use."""
    if name in ("AgentServer", "RunningAgent", "serve", "start_agent"):
        from nasengine.measurement.agent import server

        return getattr(server, name)
    raise AttributeError(f"module 'nasengine.measurement.agent' has no attribute {name!r}")
