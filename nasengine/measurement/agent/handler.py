"""One agent request: route, check token and size before reading the body, wait for the slot, measure, answer.

Every answer is JSON (errors as {"error": "..."}) with one log line; a bad request never affects the server.
"""

from __future__ import annotations

import hmac
import json
import socket
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, Mapping

from nasengine.measurement.agent.protocol import AGENT_VERSION, SETTINGS_HEADER
from nasengine.measurement.agent.slot import QueueTimeout
from nasengine.measurement.devices.base import DeviceConfig
from nasengine.measurement.devices.ort_cpu import OrtCpuDevice
from nasengine.measurement.devices.timing import Measurement
from nasengine.errors import first_line

if TYPE_CHECKING:
    from nasengine.measurement.agent.server import AgentServer

READ_TIMEOUT_S = 60.0  # a client that stops sending mid-request is dropped after this long
DRAIN_S = 5.0  # after an early rejection, read (and drop) the unread body this long so the client sees our answer
ENDPOINTS = {"/health": "GET", "/measure": "POST"}


class RejectedModel(Exception):
    """The model cannot be measured as sent (bad bytes, unsupported inputs): the client's fault, HTTP 400."""


STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "com.microsoft")  # operators onnxruntime itself implements


def _tensors_and_graphs(graph: Any) -> tuple[list[Any], list[Any]]:
    """Every tensor stored in a graph or function (initializers, sparse ones, attribute tensors) and the
    subgraphs of its nodes."""
    tensors = list(getattr(graph, "initializer", []))
    for sparse in getattr(graph, "sparse_initializer", []):
        tensors += [sparse.values, sparse.indices]
    subgraphs = []
    for node in graph.node:
        for attribute in node.attribute:
            tensors += ([attribute.t] if attribute.HasField("t") else []) + list(attribute.tensors)
            subgraphs += ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs)
    return tensors, subgraphs


def check_model(onnx_bytes: bytes) -> None:
    """Refuse what the agent must never hand to onnxruntime: a model that reads files of this machine (external
    data) or needs operators from outside onnxruntime's own domains (custom operator libraries). Bytes that
    are not ONNX at all are left to onnxruntime to reject (it never runs anything but inference on them)."""
    import onnx

    try:
        model = onnx.load_model_from_string(onnx_bytes)
    except Exception:
        return
    allowed = {*STANDARD_DOMAINS, *(f.domain for f in model.functions)}
    graphs = [model.graph, *model.functions]
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            if node.domain not in allowed:
                raise RejectedModel(f"operator {node.op_type!r} of domain {node.domain!r} is not one onnxruntime "
                                    f"implements; the agent runs standard ONNX operators only")
        tensors, subgraphs = _tensors_and_graphs(graph)
        graphs += subgraphs
        for tensor in tensors:
            if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
                raise RejectedModel(f"tensor {tensor.name!r} refers to external data; send a self-contained "
                                    f"ONNX model (all weights inside the file)")


def measure_model(onnx_bytes: bytes, settings: Mapping[str, Any]) -> Measurement:
    """Time `onnx_bytes` with the local onnxruntime backend under complete settings (threads, opt_level, ...).
    The bytes are only ever opened as an ONNX model and run for inference; nothing in them is executed."""
    try:
        device = OrtCpuDevice(DeviceConfig("agent", "onnxruntime", dict(settings)))
    except (TypeError, ValueError) as exc:
        raise RejectedModel(f"bad settings: {exc}") from None
    check_model(onnx_bytes)
    try:
        return device.measure_onnx(onnx_bytes)
    except ValueError as exc:
        raise RejectedModel(str(exc)) from None
    except Exception as exc:
        if type(exc).__module__.startswith("onnxruntime"):
            raise RejectedModel(f"onnxruntime rejected the model: {first_line(exc, 300)}") from None
        raise


class AgentHandler(BaseHTTPRequestHandler):
    """One request: route, check token and size before reading the body, queue, measure, answer JSON."""

    server: AgentServer
    protocol_version = "HTTP/1.1"  # for Expect: 100-continue; every response still closes the connection
    server_version = f"nasengine-agent/{AGENT_VERSION}"
    timeout = READ_TIMEOUT_S

    def setup(self) -> None:
        super().setup()
        self._t0, self._note, self._body_read = time.monotonic(), "", False
        self._settings: dict[str, Any] = {}
        self._length = 0
        self._authenticated = False

    # -- routing -------------------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._route()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

    def _path(self) -> str:
        return urllib.parse.urlsplit(self.path).path.rstrip("/") or "/"

    def _precheck(self) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        """Everything decidable from the request line and headers: route, method, token, size, settings."""
        path = self._path()
        if path not in ENDPOINTS:
            return 404, {"error": f"unknown path {path!r}; endpoints: GET /health, POST /measure"}, {}
        if self.command != ENDPOINTS[path]:
            return 405, {"error": f"{path} accepts {ENDPOINTS[path]} only"}, {"Allow": ENDPOINTS[path]}
        if path != "/measure":
            # /health answers anyone, but checks a token when one is sent (clients test theirs this way)
            if "Authorization" in self.headers:
                return self._check_token()
            return None
        return self._check_token() or self._check_upload()

    def _check_token(self) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        scheme, _, given = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return 401, {"error": "missing token: send 'Authorization: Bearer <token>'"}, \
                {"WWW-Authenticate": 'Bearer realm="nasengine-agent"'}
        if not hmac.compare_digest(given.strip().encode(), self.server.token):
            return 401, {"error": "invalid token"}, {"WWW-Authenticate": 'Bearer realm="nasengine-agent"'}
        self._authenticated = True
        return None

    def _check_upload(self) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        """Size and settings of an authenticated /measure request, before its body is read."""
        text = self.headers.get("Content-Length")
        if text is None:
            return 411, {"error": "send the model with a Content-Length header (chunked uploads are not "
                                  "supported)"}, {}
        try:
            self._length = int(text)
            if self._length < 0:
                raise ValueError
        except ValueError:
            return 400, {"error": f"bad Content-Length {text!r}"}, {}
        if self._length > self.server.max_bytes:
            return 413, {"error": f"model is {self._length} bytes; this agent accepts at most "
                                  f"{self.server.max_bytes} (--max-bytes)"}, {}
        if self._length == 0:
            return 400, {"error": "empty body: send the ONNX model bytes"}, {}
        try:
            self._settings = self.server.settings_for(self.headers.get(SETTINGS_HEADER),
                                                      urllib.parse.urlsplit(self.path).query)
        except (TypeError, ValueError) as exc:
            return 400, {"error": f"bad settings: {exc}"}, {}
        return None

    def handle_expect_100(self) -> bool:
        """Reject before the client uploads anything when the headers already tell (curl sends Expect)."""
        problem = self._precheck()
        if problem is not None:
            self._body_read = True  # the client waits for our go-ahead: there is no body to drain
            self._send(*problem)
            return False
        return super().handle_expect_100()

    def _route(self) -> None:
        problem = self._precheck()
        if problem is not None:
            self._send(*problem)
        elif self._path() == "/health":
            self._send(200, {**self.server.health(), "authenticated": self._authenticated})
        else:
            self._measure()

    # -- measuring -----------------------------------------------------------------------------------------------
    def _measure(self) -> None:
        try:
            body = self.rfile.read(self._length)
        except OSError as exc:
            return self._send(400, {"error": f"could not read the model: {exc}"})
        self._body_read = True
        if len(body) < self._length:
            return self._send(400, {"error": f"body ended after {len(body)} of {self._length} bytes"})
        try:
            with self.server.queue.turn(self.server.queue_timeout_s) as turn:
                started = time.monotonic_ns()
                try:
                    result = measure_model(body, self._settings)
                finally:
                    finished = time.monotonic_ns()
        except QueueTimeout as exc:
            return self._send(503, {"error": f"agent busy: {exc}"}, {"Retry-After": "5"})
        except RejectedModel as exc:
            self.server.count(False)
            return self._send(400, {"error": str(exc)})
        except Exception as exc:  # never let one model take the agent down
            self.server.count(False)
            return self._send(500, {"error": f"measurement failed: {type(exc).__name__}: {first_line(exc, 300)}"})
        self.server.count(True)
        self._note = f"seq={turn.seq} median={result.median_ms:.3f}ms wait={turn.wait_s * 1e3:.0f}ms"
        self._send(200, {**result.to_dict(), "seq": turn.seq, "started_ns": started, "finished_ns": finished,
                         "queue_wait_ms": turn.wait_s * 1e3, "agent": AGENT_VERSION,
                         "host": socket.gethostname(), "settings": self._settings})

    # -- answering -----------------------------------------------------------------------------------------------
    def _send(self, code: int, payload: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
        """Write one JSON response (one log line per request), then let the client finish its upload."""
        body = json.dumps(payload).encode()
        if code >= 400 and not self._note:
            self._note = str(payload.get("error", ""))[:160]
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
        except OSError as exc:
            self._note += f" (client gone: {exc})"
        self.close_connection = True
        if code >= 400 and not self._body_read:
            self._drain()
        ms = (time.monotonic() - self._t0) * 1e3
        path = urllib.parse.urlsplit(getattr(self, "path", "") or "").path or "-"
        line = f"{self.client_address[0]} {self.command or '-'} {path} {code} {ms:.0f}ms {self._note}"
        self.server.log(line.rstrip())

    def _drain(self) -> None:
        """Read and drop an unread request body for a few seconds, so closing does not reset the connection
        before the client (which sends everything before reading) has seen our error."""
        self._body_read = True
        headers = getattr(self, "headers", None)
        try:
            left = int(headers.get("Content-Length", 0)) if headers is not None else 0
        except ValueError:
            return
        deadline = time.monotonic() + DRAIN_S
        try:
            self.connection.settimeout(0.5)
            while left > 0 and time.monotonic() < deadline:
                chunk = self.rfile.read1(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (malformed request line, oversized headers) as JSON too."""
        self._send(code, {"error": message or HTTPStatus(code).phrase})

    def version_string(self) -> str:
        return self.server_version

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # `_send` logs one line per request

    def log_message(self, format: str, *args: Any) -> None:
        self.server.log(f"{self.client_address[0]} {format % args}")
