"""The remote measurement agent on loopback: token, limits, clear errors, strictly serial measurements."""

from __future__ import annotations

import argparse
import io
import itertools
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

import nasengine.measurement.devices.remote  # noqa: F401  (registers the `remote` backend)
from nasengine.measurement.agent import add_serve_arguments, run_from_args, start_agent
from nasengine.measurement.agent.command import resolve_token
from nasengine.measurement.agent.server import RunningAgent
from nasengine.measurement.devices import DeviceConfig, Workload, get_device, registry
from nasengine.measurement.devices.ort_cpu import OrtCpuDevice
from nasengine.measurement.devices.remote import RemoteDevice
from nasengine.errors import UserError
from nasengine.graphs.onnx_writer import to_onnx

TOKEN = "test-token-123"
FAST = {"warmup_runs": 2, "warmup_seconds": 0.0, "min_repeats": 5, "min_seconds": 0.005, "max_repeats": 200}
MAX_BYTES = 200_000


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())


@pytest.fixture(scope="module")
def agent() -> Iterator[tuple[RunningAgent, io.StringIO]]:
    log = io.StringIO()
    running = start_agent(TOKEN, defaults={"timing": FAST}, max_bytes=MAX_BYTES, queue_timeout_s=30, log=log)
    yield running, log
    running.stop()


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    torch.set_num_threads(1)
    return to_onnx(_net().eval(), torch.randn(1, 3, 16, 16))


def remote(url: str, **settings: Any) -> RemoteDevice:
    return RemoteDevice(DeviceConfig("r", "remote", {"url": url, "token": TOKEN, "timing": FAST, **settings}))


def post(url: str, body: bytes, token: str | None = TOKEN, headers: dict[str, str] | None = None,
         method: str = "POST") -> tuple[int, dict[str, Any]]:
    """Raw request; (status, JSON body) for successes and HTTP errors alike."""
    all_headers = {"Content-Type": "application/octet-stream", **(headers or {})}
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body if method == "POST" else None, headers=all_headers,
                                     method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_remote_device_measures_like_local_onnxruntime(agent, monkeypatch: pytest.MonkeyPatch) -> None:
    running, _ = agent
    timing = {**FAST, "min_repeats": 20, "min_seconds": 0.05}
    config = DeviceConfig("test-remote", "remote", {"url": running.url, "token": TOKEN, "timing": timing})
    monkeypatch.setattr(registry, "_DEVICES", registry._DEVICES.copy())  # registered for this test only
    registry._DEVICES.add(config.name, config)
    device = get_device("test-remote")
    assert device.availability() is None
    workload = Workload({"a": 1}, "k", _net, (3, 16, 16))
    via_agent = device.measure(workload)
    assert via_agent.source == f"remote:{running.url}" and via_agent.repeats >= 20 and via_agent.iqr_ms >= 0
    local = OrtCpuDevice(DeviceConfig("local", "onnxruntime", {"timing": timing})).measure_onnx(workload.onnx(1))
    assert 0.1 < via_agent.median_ms / local.median_ms < 10, (via_agent, local)
    assert device.describe()["settings"]["token"] == "***"


def test_token_is_required(agent, model_bytes: bytes) -> None:
    url = agent[0].url
    assert post(url + "/measure", model_bytes, token=None) == (401, {"error": "missing token: send 'Authorization: "
                                                                              "Bearer <token>'"})
    assert post(url + "/measure", model_bytes, token="nope") == (401, {"error": "invalid token"})
    with pytest.raises(UserError, match=r"invalid token \(HTTP 401\)"):
        RemoteDevice(DeviceConfig("r", "remote", {"url": url, "token": "nope"})).measure_onnx(model_bytes)
    with pytest.raises(ValueError, match="non-empty token"):
        start_agent("  ")


def test_oversize_models_are_refused_before_reading(agent, model_bytes: bytes) -> None:
    url = agent[0].url
    status, body = post(url + "/measure", b"\0" * (4 * MAX_BYTES))
    assert status == 413 and f"at most {MAX_BYTES}" in body["error"]
    device = remote(url)
    device.availability()  # caches the agent's limit
    with pytest.raises(UserError, match=f"accepts at most {MAX_BYTES}"):
        device.measure_onnx(b"\0" * (MAX_BYTES + 1))


def test_bad_models_settings_and_paths_are_clear_errors(agent, model_bytes: bytes) -> None:
    url = agent[0].url
    status, body = post(url + "/measure", b"not an onnx model")
    assert status == 400 and "onnxruntime rejected the model" in body["error"]
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "doubles",
                              [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [1, 4])])
    ints = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    ints.ir_version = 8
    status, body = post(url + "/measure", ints.SerializeToString())
    assert status == 400 and "has type tensor(double); supported" in body["error"]
    assert post(url + "/measure?threads=0", model_bytes)[0] == 400
    status, body = post(url + "/measure", model_bytes, headers={"X-Nasengine-Settings": '{"speed": 11}'})
    assert status == 400 and "unknown setting 'speed'" in body["error"]
    status, body = post(url + "/measure?min_repeats=500", model_bytes)  # above the agent's max_repeats=200
    assert status == 400 and "max_repeats" in body["error"]
    assert post(url + "/measure", b"")[0] == 400
    assert post(url + "/nope", b"x")[0] == 404
    assert post(url + "/measure", b"", method="GET")[0] == 405
    assert post(url + "/health", b"x")[0] == 405
    with pytest.raises(UserError, match=r"agent at .*: onnxruntime rejected the model.*\(HTTP 400\)"):
        remote(url).measure_onnx(b"garbage")


def test_settings_are_forwarded(agent, model_bytes: bytes) -> None:
    status, body = post(agent[0].url + "/measure?opt_level=basic&min_repeats=7&max_repeats=7", model_bytes)
    assert status == 200 and body["repeats"] == 7 and body["settings"]["opt_level"] == "basic"
    data = remote(agent[0].url, threads=2, opt_level="disable").request_measurement(model_bytes)
    assert data["settings"]["threads"] == 2 and data["settings"]["opt_level"] == "disable"
    with pytest.raises(ValueError, match="opt_level"):
        remote(agent[0].url, opt_level="max")


def test_concurrent_clients_are_measured_one_at_a_time(agent, model_bytes: bytes) -> None:
    url = agent[0].url
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def client() -> None:
        device = remote(url)
        for _ in range(3):
            try:
                results.append(device.request_measurement(model_bytes))
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 24
    assert len({r["seq"] for r in results}) == 24
    spans = sorted((r["started_ns"], r["finished_ns"]) for r in results)
    assert all(start < end for start, end in spans)
    assert all(prev_end <= start for (_, prev_end), (start, _) in itertools.pairwise(spans))
    assert max(r["queue_wait_ms"] for r in results) > 0


def test_queue_timeout_is_a_503(model_bytes: bytes) -> None:
    slow = {**FAST, "min_seconds": 0.6, "max_repeats": 100_000}
    with start_agent(TOKEN, defaults={"timing": slow}, queue_timeout_s=0.2, log=None) as running:
        answers: list[tuple[int, dict[str, Any]]] = []
        threads = [threading.Thread(target=lambda: answers.append(post(running.url + "/measure", model_bytes)))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    codes = sorted(code for code, _ in answers)
    assert codes == [200, 503], answers
    assert "agent busy" in next(body["error"] for code, body in answers if code == 503)


def test_unreachable_agent_is_a_clear_reason() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    device = remote(f"http://127.0.0.1:{port}")
    device.backoff_s = 0.01
    reason = device.availability()
    assert reason is not None and reason.startswith(f"agent at http://127.0.0.1:{port} unreachable")
    with pytest.raises(UserError, match="unreachable"):
        device.measure_onnx(b"x")
    no_token = RemoteDevice(DeviceConfig("r", "remote", {"url": "http://127.0.0.1:1", "token_env": "NO_SUCH_ENV"}))
    assert "$NO_SUCH_ENV" in str(no_token.availability())
    with pytest.raises(ValueError, match="url"):
        RemoteDevice(DeviceConfig("r", "remote", {"token": TOKEN}))


def _log_lines(log: io.StringIO, at_least: int) -> list[str]:
    """The agent's log once it has `at_least` lines (each line is written just after its response)."""
    deadline = time.monotonic() + 5
    while log.getvalue().count("\n") < at_least and time.monotonic() < deadline:
        time.sleep(0.01)
    return log.getvalue().splitlines()


def test_agent_survives_bad_requests_and_logs_one_line_each(agent, model_bytes: bytes) -> None:
    running, log = agent
    short_body = f"POST /measure HTTP/1.1\r\nContent-Length: 100\r\nAuthorization: Bearer {TOKEN}\r\n\r\nshort"
    for junk in (b"NONSENSE\r\n\r\n", short_body.encode(), b""):
        with socket.create_connection(("127.0.0.1", running.port), timeout=5) as sock:
            sock.sendall(junk)
            sock.shutdown(socket.SHUT_WR)
            answer = b"".join(iter(lambda: sock.recv(4096), b""))  # until the agent hangs up
            assert not answer or b'"error"' in answer
    before = len(_log_lines(log, 0))
    status, health = post(running.url + "/health", b"", method="GET", token=None)
    assert status == 200 and health["ok"] and not health["busy"]
    lines = _log_lines(log, before + 1)
    assert len(lines) == before + 1 and "GET /health 200" in lines[-1]
    assert remote(running.url).measure_onnx(model_bytes).median_ms > 0
    assert post(running.url + "/health", b"", method="GET")[1]["measured"] == health["measured"] + 1


def test_serve_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    args = parser.parse_args(["--port", "0", "--max-bytes", "1M", "--queue-timeout", "5"])
    assert args.max_bytes == 1 << 20 and args.host == "127.0.0.1" and args.queue_timeout == 5
    monkeypatch.delenv("NASENGINE_AGENT_TOKEN", raising=False)
    with pytest.raises(UserError, match="needs a token"):
        run_from_args(args)
    (tmp_path / "token").write_text(TOKEN + "\n")
    assert resolve_token(None, str(tmp_path / "token")) == TOKEN
    monkeypatch.setenv("NASENGINE_AGENT_TOKEN", "from-env")
    assert resolve_token(None, None) == "from-env"
    sigterm = signal.getsignal(signal.SIGTERM)
    with start_agent(TOKEN, log=None) as running, pytest.raises(UserError, match="cannot listen on"):
        run_from_args(parser.parse_args(["--port", str(running.port)]))
    assert signal.getsignal(signal.SIGTERM) == sigterm

    proc = subprocess.Popen([sys.executable, "-m", "nasengine.measurement.agent", "--port", "0", "--token-file",
                             str(tmp_path / "token"), "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        assert line.startswith("nasengine agent listening on http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[4]
        assert post(url + "/health", b"", method="GET", token=None)[1]["ok"]
        proc.send_signal(signal.SIGTERM)  # stops like Ctrl-C (SIGINT may be ignored in background jobs)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and "stopped" in out and "Traceback" not in err
