"""The measurement agent: an HTTP server that times ONNX models on this machine, strictly one at a time.

Many clients may connect at once (one thread each); measurements wait in a FIFO for the single slot, because
two concurrent measurements slow each other down and both come out wrong. Timing is `OrtCpuDevice.measure_onnx`,
i.e. the project's one timing loop. Plain HTTP: bind to loopback and tunnel (ssh -L), or trust the network.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass
from http.server import ThreadingHTTPServer
from typing import Any, Callable, Mapping, TextIO

from nasengine.measurement.agent.handler import AgentHandler
from nasengine.measurement.agent.protocol import (AGENT_VERSION, DEFAULT_MAX_BYTES, DEFAULT_QUEUE_TIMEOUT_S,
                                                  parse_settings, settings_from_request)
from nasengine.measurement.agent.slot import MeasurementQueue
from nasengine.measurement.devices.timing import TimingSettings

SHUTDOWN_WAIT_S = 10.0  # on stop, let a running measurement finish this long


def default_settings(timing: TimingSettings | None = None) -> dict[str, Any]:
    """What a request measures with unless it says otherwise: 1 thread, full optimisation, batch 1."""
    return {"threads": 1, "opt_level": "all", "batch_size": 1, "timing": asdict(timing or TimingSettings())}


class AgentServer(ThreadingHTTPServer):
    """The listening agent: token, limits, default settings, the measurement queue and counters."""

    daemon_threads = True

    def __init__(self, host: str, port: int, token: str, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 queue_timeout_s: float = DEFAULT_QUEUE_TIMEOUT_S, defaults: Mapping[str, Any] | None = None,
                 log: TextIO | None = sys.stderr):
        if not token or not token.strip():
            raise ValueError("the agent needs a non-empty token (clients must send it as 'Authorization: Bearer')")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if not queue_timeout_s > 0:
            raise ValueError(f"queue_timeout_s must be positive, got {queue_timeout_s}")
        base = default_settings()
        given = parse_settings(defaults or {})
        self.defaults = {**base, **given, "timing": {**base["timing"], **given.get("timing", {})}}
        TimingSettings(**self.defaults["timing"])  # fail now, not on every request
        self.token = token.strip().encode()
        self.max_bytes, self.queue_timeout_s, self.log_stream = int(max_bytes), float(queue_timeout_s), log
        self.queue = MeasurementQueue()
        self.measured = self.rejected = 0
        self._lock = threading.Lock()
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), AgentHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        host = str(self.server_address[0])
        if host in ("0.0.0.0", "::"):
            host = socket.gethostname()
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def settings_for(self, header: str | None, query: str) -> dict[str, Any]:
        """The request's settings over the agent's defaults; ValueError (-> 400) when invalid."""
        asked = settings_from_request(header, query)
        merged = {**self.defaults, **asked, "timing": {**self.defaults["timing"], **asked.get("timing", {})}}
        TimingSettings(**merged["timing"])
        return merged

    def count(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.measured += 1
            else:
                self.rejected += 1

    def health(self) -> dict[str, Any]:
        import onnxruntime

        return {"ok": True, "agent": AGENT_VERSION, "host": socket.gethostname(), "busy": self.queue.busy,
                "queued": self.queue.queued, "measured": self.measured, "rejected": self.rejected,
                "max_bytes": self.max_bytes, "queue_timeout_s": self.queue_timeout_s,
                "backend": {"name": "onnxruntime", "version": onnxruntime.__version__,
                            "providers": ["CPUExecutionProvider"], "cpu_count": os.cpu_count(),
                            "defaults": self.defaults}}

    def log(self, line: str) -> None:
        if self.log_stream is not None:
            with self._lock:
                print(f"{time.strftime('%H:%M:%S')} agent: {line}", file=self.log_stream, flush=True)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        self.log(f"{client_address[0]} connection error: {type(exc).__name__}: {exc}")




@dataclass
class RunningAgent:
    """An agent serving from a background thread (tests, benchmarks); `stop()` or use it as a context manager."""

    server: AgentServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def stop(self, wait_s: float = SHUTDOWN_WAIT_S) -> None:
        """Stop accepting requests, close the socket, and give a running measurement `wait_s` to finish."""
        self.server.shutdown()
        self.server.server_close()
        self.server.queue.wait_idle(wait_s)
        self.thread.join(wait_s)

    def __enter__(self) -> RunningAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_agent(token: str, host: str = "127.0.0.1", port: int = 0, **options: Any) -> RunningAgent:
    """Start an agent in a daemon thread and return once it listens (port 0: a free port, see `.port`)."""
    server = AgentServer(host, port, token, **options)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name=f"nasengine-agent:{server.port}", daemon=True)
    thread.start()
    return RunningAgent(server, thread)


def serve(host: str, port: int, token: str, max_bytes: int = DEFAULT_MAX_BYTES,
          queue_timeout_s: float = DEFAULT_QUEUE_TIMEOUT_S, defaults: Mapping[str, Any] | None = None,
          log: TextIO | None = sys.stderr, on_ready: Callable[[AgentServer], None] | None = None) -> None:
    """Serve until Ctrl-C (KeyboardInterrupt), then stop cleanly; `on_ready` is called once listening."""
    server = AgentServer(host, port, token, max_bytes=max_bytes, queue_timeout_s=queue_timeout_s,
                         defaults=defaults, log=log)
    try:
        if on_ready is not None:
            on_ready(server)
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if not server.queue.wait_idle(SHUTDOWN_WAIT_S):
            server.log(f"stopping with a measurement still running after {SHUTDOWN_WAIT_S:g}s")
