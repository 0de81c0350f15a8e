"""A device measured by a remote agent (`nasengine device serve` on the target machine), over HTTP (stdlib)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict
from typing import Any

from nasengine.measurement.agent.protocol import SETTINGS_HEADER, TOKEN_ENV, encode_settings, parse_settings
from nasengine.measurement.devices.base import Device, DeviceConfig, Workload
from nasengine.measurement.devices.quantize import check_precision, deployed_graph
from nasengine.measurement.devices.registry import register_backend
from nasengine.measurement.devices.timing import Measurement
from nasengine.errors import UserError

# Talk to the agent directly: an http(s)_proxy meant for the internet must not see models or the token.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class TokenRejected(UserError):
    """The agent answered 401: the token is missing or wrong."""


@register_backend("remote")
class RemoteDevice(Device):
    """Sends the subnet's ONNX bytes to an agent, which times them one at a time with its onnxruntime backend.

    Settings: `url` (required, e.g. http://pi.local:8765), `token` or `token_env` (name of the environment
    variable holding it, default NASENGINE_AGENT_TOKEN), `timeout_s` (per measurement including queueing,
    default 600), and for the agent `threads` (default 1), `opt_level` (default all), `batch_size`, `timing`.
    `precision: int8` (or w8/w4) quantises the graph here (as the onnxruntime backend does) before sending it.
    """

    backend = "remote"
    runs_quantized_graphs = True
    health_timeout_s = 3.0
    health_ttl_s = 10.0  # a healthy answer is trusted this long (availability() runs before every measure)
    retries = 2  # extra tries after a connection failure, with backoff
    backoff_s = 0.5

    def __init__(self, config: DeviceConfig, **kw: Any):
        super().__init__(config, **kw)
        settings = config.settings
        url = settings.get("url")
        parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
        if not isinstance(url, str) or parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"remote device needs a 'url' setting like http://HOST:PORT, got {url!r}")
        self.url: str = url.rstrip("/")
        self._token = settings.get("token")
        self.token_env = settings.get("token_env", TOKEN_ENV)
        if self._token is not None and not isinstance(self._token, str):
            raise ValueError("setting 'token' must be a string")
        timeout = settings.get("timeout_s", 600.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
            raise ValueError(f"setting 'timeout_s' must be a positive number of seconds, got {timeout!r}")
        self.timeout_s = float(timeout)
        self.agent_settings = parse_settings({"threads": settings.get("threads", 1),
                                              "opt_level": settings.get("opt_level", "all"),
                                              "batch_size": self.batch_size, "timing": asdict(self.timing)})
        self.precision = check_precision(settings.get("precision", "fp32"), config.name)
        self._health: tuple[float, dict[str, Any]] | None = None

    def token(self) -> str | None:
        return self._token or os.environ.get(self.token_env) or None

    def health(self) -> dict[str, Any]:
        """The agent's /health answer, asked with the token so the agent checks it (UserError when it cannot be
        had, TokenRejected when the agent refuses the token)."""
        token = self.token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = self._request("GET", "/health", timeout_s=self.health_timeout_s, retries=0, headers=headers)
        if token and "authenticated" not in data:
            self._check_token_the_old_way(token)  # an agent that predates token checks on /health
        self._health = (time.monotonic(), data)
        return data

    def _check_token_the_old_way(self, token: str) -> None:
        """A cheap authenticated request any agent answers: an empty upload is refused for its emptiness (400)
        when the token is good, before anything else (401) when it is not."""
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"}
        try:
            self._request("POST", "/measure", body=b"", headers=headers, timeout_s=self.health_timeout_s, retries=0)
        except TokenRejected:
            raise
        except UserError:
            pass

    def availability(self) -> str | None:
        if not self.token():
            return f"no token: set ${self.token_env} or the device's 'token' setting"
        if self._health is not None and time.monotonic() - self._health[0] < self.health_ttl_s:
            return None
        try:
            data = self.health()
        except TokenRejected:
            return "token rejected"
        except UserError as exc:
            return str(exc)
        return None if data.get("ok") is True else f"agent at {self.url} is not ready: {str(data)[:200]}"

    def _measure(self, workload: Workload) -> Measurement:
        return self.measure_onnx(deployed_graph(workload, self.precision, self.batch_size))

    def measure_onnx(self, onnx_bytes: bytes) -> Measurement:
        """Latency of any float-input ONNX model on the agent's machine (source 'remote:<url>')."""
        data = self.request_measurement(onnx_bytes)
        return Measurement.from_dict({**data, "source": f"remote:{self.url}"})

    def request_measurement(self, onnx_bytes: bytes) -> dict[str, Any]:
        """The agent's full answer: Measurement fields plus seq, started_ns/finished_ns, queue_wait_ms."""
        token = self.token()
        if not token:
            raise UserError(f"device {self.name!r}: no token: set ${self.token_env} or the device's 'token' setting")
        limit = self._health[1].get("max_bytes") if self._health is not None else None
        if isinstance(limit, int) and len(onnx_bytes) > limit:
            raise UserError(f"model is {len(onnx_bytes)} bytes; the agent at {self.url} accepts at most {limit} "
                            f"(its --max-bytes)")
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream",
                   SETTINGS_HEADER: encode_settings(self.agent_settings)}
        data = self._request("POST", "/measure", body=onnx_bytes, headers=headers, timeout_s=self.timeout_s,
                             retries=self.retries)
        if not isinstance(data.get("median_ms"), (int, float)):
            raise UserError(f"agent at {self.url} answered without a measurement: {str(data)[:200]}")
        return data

    def _request(self, method: str, path: str, *, timeout_s: float, retries: int, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> dict[str, Any]:
        """One JSON request; agent errors and connection failures (after `retries`) become UserError."""
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        for attempt in range(retries + 1):
            try:
                with _OPENER.open(request, timeout=timeout_s) as response:
                    raw = response.read()
                break
            except urllib.error.HTTPError as exc:
                raise (TokenRejected if exc.code == 401 else UserError)(self._agent_error(exc)) from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                if isinstance(reason, (TimeoutError, socket.timeout)):
                    raise UserError(f"agent at {self.url} did not answer {method} {path} within "
                                    f"{timeout_s:g}s") from None
                if attempt == retries:
                    raise UserError(f"agent at {self.url} unreachable: {_describe(reason)}") from None
                time.sleep(self.backoff_s * 2 ** attempt)
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise UserError(f"agent at {self.url} sent a non-JSON answer to {method} {path}: {raw[:120]!r}")
        return data

    def _agent_error(self, exc: urllib.error.HTTPError) -> str:
        try:
            message = str(json.loads(exc.read()).get("error") or exc.reason)
        except (ValueError, AttributeError, OSError):
            message = str(exc.reason)
        hint = f"; check the device's token (or ${self.token_env})" if exc.code == 401 else ""
        return f"agent at {self.url}: {message} (HTTP {exc.code}){hint}"

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        if "token" in out["settings"]:
            out["settings"] = {**out["settings"], "token": "***"}
        return out


def _describe(reason: object) -> str:
    """A connection failure in a few words (errno text rather than a tuple)."""
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__
