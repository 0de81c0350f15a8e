"""Load test of the remote measurement agent: concurrent clients, strictly serial measurements, agent vs local.

Starts `python -m nasengine.measurement.agent` on loopback (a separate process, as on a real target),
fires CLIENTS threads
with REQUESTS measurements each, then checks from the agent's own timestamps that no two measurements
overlapped, and compares one reference model measured via the agent with the same bytes measured locally.

Run: python benchmarks/agent_load.py [--clients 8] [--requests 20] [--out benchmarks/results/agent_load.md]
Exits 1 when a request failed or two measurement intervals overlapped.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from nasengine.measurement.agent.protocol import TOKEN_ENV  # noqa: E402
from nasengine.measurement.devices.base import DeviceConfig  # noqa: E402
from nasengine.measurement.devices.ort_cpu import OrtCpuDevice  # noqa: E402
from nasengine.measurement.devices.remote import RemoteDevice  # noqa: E402
from nasengine.graphs.onnx_writer import to_onnx  # noqa: E402

LOAD_TIMING = {"warmup_runs": 3, "warmup_seconds": 0.0, "min_repeats": 10, "min_seconds": 0.02, "max_repeats": 2000}


def conv_net(width: int) -> nn.Module:
    """A small CNN; `width` scales its cost (the load mix uses three widths, the reference is width 32)."""
    return nn.Sequential(nn.Conv2d(3, width, 3, 2, 1), nn.ReLU(), nn.Conv2d(width, 2 * width, 3, 2, 1), nn.ReLU(),
                         nn.Conv2d(2 * width, 2 * width, 3, 1, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(2 * width, 10)).eval()


def start_agent_process(token: str) -> tuple[subprocess.Popen, str]:
    """The agent as its own process on a free loopback port; returns it and its URL."""
    env = {**os.environ, TOKEN_ENV: token, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "nasengine.measurement.agent", "--port", "0", "--quiet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"agent did not start: {line}{proc.stderr.read() if proc.stderr else ''}")
    return proc, line.split()[4]


def stop_agent_process(proc: subprocess.Popen) -> None:
    proc.terminate()  # SIGTERM: the agent stops cleanly
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def overlap(spans: list[tuple[int, int]]) -> tuple[float, int]:
    """Largest overlap (ms) between any two [start, end] intervals, and how many intervals overlap an earlier one."""
    worst, count, reach = 0, 0, None
    for start, end in sorted(spans):
        if reach is not None and reach > start:
            worst, count = max(worst, min(reach, end) - start), count + 1
        reach = end if reach is None else max(reach, end)
    return worst / 1e6, count


def load(url: str, token: str, models: list[bytes], clients: int, requests: int) -> tuple[list[dict], list[str], float]:
    """Fire `clients` threads x `requests` measurements; returns agent answers (+ round trip), failures, wall s."""
    answers: list[dict[str, Any]] = []
    failures: list[str] = []
    lock = threading.Lock()
    gate = threading.Barrier(clients)

    def client(index: int) -> None:
        device = RemoteDevice(DeviceConfig(f"load-{index}", "remote", {"url": url, "token": token,
                                                                        "timing": LOAD_TIMING}))
        gate.wait()
        for i in range(requests):
            t0 = time.perf_counter()
            try:
                answer = device.request_measurement(models[(index + i) % len(models)])
            except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}")
                continue
            answer["round_trip_ms"] = (time.perf_counter() - t0) * 1e3
            answer["model"] = (index + i) % len(models)
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers, failures, time.perf_counter() - start


def reference(url: str, token: str, model: bytes, rounds: int) -> tuple[list[float], list[float], list[float]]:
    """Medians and IQRs of the reference model via the idle agent and locally (default timing, 1 thread),
    alternating so that drift on the machine affects both alike."""
    remote = RemoteDevice(DeviceConfig("ref-remote", "remote", {"url": url, "token": token}))
    local = OrtCpuDevice(DeviceConfig("ref-local", "onnxruntime", {"threads": 1}))
    via, here, via_iqr = [], [], []
    for _ in range(rounds):
        m = remote.measure_onnx(model)
        via.append(m.median_ms)
        via_iqr.append(m.iqr_ms)
        here.append(local.measure_onnx(model).median_ms)
    return via, here, via_iqr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads")
    parser.add_argument("--requests", type=int, default=20, help="measurements per client")
    parser.add_argument("--rounds", type=int, default=5, help="reference measurements (agent and local each)")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown report here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    example = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    models = [to_onnx(conv_net(w), example) for w in (16, 32, 48)]
    token = secrets.token_urlsafe(24)
    proc, url = start_agent_process(token)
    try:
        answers, failures, wall_s = load(url, token, models, args.clients, args.requests)
        via, here, via_iqr = reference(url, token, models[1], args.rounds)
    finally:
        stop_agent_process(proc)

    total = args.clients * args.requests
    spans = [(a["started_ns"], a["finished_ns"]) for a in answers]
    worst_ms, overlapping = overlap(spans)
    seqs = [a["seq"] for a in answers]
    waits = np.array([a["queue_wait_ms"] for a in answers] or [0.0])
    busy_s = sum(end - start for start, end in spans) / 1e9
    via_ms, here_ms = statistics.median(via), statistics.median(here)
    under_load = [a["median_ms"] for a in answers if a["model"] == 1]
    rows = [
        ("requests", f"{total} ({args.clients} clients x {args.requests})"),
        ("concurrent clients", f"{args.clients}"),
        ("failures", f"{len(failures)}" + (f" (first: {failures[0][:120]})" if failures else "")),
        ("sequence numbers unique", "yes" if len(set(seqs)) == len(seqs) else "NO"),
        ("max overlap between measurement intervals", f"{worst_ms:.3f} ms ({overlapping} overlapping intervals)"),
        ("mean queue wait", f"{waits.mean():.1f} ms (p95 {np.percentile(waits, 95):.1f} ms, max {waits.max():.1f} ms)"),
        ("mean client round trip", f"{statistics.fmean(a['round_trip_ms'] for a in answers):.1f} ms"
         if answers else "-"),
        ("throughput", f"{len(answers) / wall_s:.1f} measurements/s over {wall_s:.2f} s "
                       f"(agent measuring {100 * busy_s / wall_s:.0f}% of the time)"),
        ("reference model via agent", f"{via_ms:.3f} ms median (IQR {statistics.median(via_iqr):.3f} ms; "
                                      f"{args.rounds} rounds: {', '.join(f'{v:.3f}' for v in via)})"),
        ("reference model locally", f"{here_ms:.3f} ms median ({', '.join(f'{v:.3f}' for v in here)})"),
        ("ratio agent / local", f"{via_ms / here_ms:.3f}"),
        ("reference model during the load phase", f"{statistics.median(under_load):.3f} ms median of "
         f"{len(under_load)} load measurements (short timing, other clients uploading and queueing)"
         if under_load else "-"),
    ]
    report = "\n".join([
        "# Remote agent load test",
        "",
        f"`python benchmarks/agent_load.py --clients {args.clients} --requests {args.requests}` - "
        f"{platform.node() or socket.gethostname()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"onnxruntime {onnxruntime.__version__}, {time.strftime('%Y-%m-%d %H:%M')}, load average before the run "
        f"{load_before:.2f} (other work on the machine makes absolute numbers noisy).",
        "",
        "Agent: `python -m nasengine.measurement.agent` as its own process on loopback, 1 intra-op thread. "
        "Load requests: three "
        f"small CNNs (64x64 input, widths 16/32/48), timing {LOAD_TIMING}. Reference: the width-32 CNN with the "
        "default timing settings, alternately via the idle agent and locally in the client process.",
        "Intervals are the agent's `started_ns`/`finished_ns` (monotonic clock) around each measurement.",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {name} | {value} |" for name, value in rows],
        "",
    ])
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    return 0 if not failures and overlapping == 0 and len(set(seqs)) == len(seqs) else 1


if __name__ == "__main__":
    sys.exit(main())
