"""No load path unpickles, and the measurement agent runs nothing but authenticated, size-limited,
self-contained ONNX inference."""

from __future__ import annotations

import json
import pickle
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch
from onnx import TensorProto, helper


REPO = Path(__file__).resolve().parents[2]



# -- no pickle on any load path -------------------------------------------------------------------------------------
UNSAFE = [
    (re.compile(r"\bimport\s+(c?pickle|dill|joblib|cloudpickle|shelve|marshal)\b|\bfrom\s+(c?pickle|dill|joblib|"
                r"cloudpickle|shelve|marshal)\s+import\b"), "a pickle-based module"),
    (re.compile(r"\b(pd|pandas)\.read_pickle\("), "pandas.read_pickle"),
    (re.compile(r"\btorch\.load\((?![^)]*weights_only\s*=\s*True)"), "torch.load without weights_only=True"),
    (re.compile(r"\bnp\.load\((?![^)]*allow_pickle\s*=\s*False)"), "np.load without allow_pickle=False"),
    (re.compile(r"allow_pickle\s*=\s*True"), "allow_pickle=True"),
]


def test_no_load_path_unpickles() -> None:
    found = []
    for package in ("nasengine", "supernets", "search_spaces", "kernels", "predictors", "benchmarks", "examples"):
        for path in sorted((REPO / package).rglob("*.py")):
            text = path.read_text()
            for pattern, what in UNSAFE:
                for match in pattern.finditer(text):
                    line = text[: match.start()].count("\n") + 1
                    found.append(f"{path.relative_to(REPO)}:{line}: {what}")
    assert not found, "\n".join(found)


# -- the measurement agent accepts authenticated, size-limited, self-contained ONNX only ---------------------------
TOKEN = "hostile-token"


@pytest.fixture(scope="module")
def agent() -> Iterator[Any]:
    from nasengine.measurement.agent import start_agent

    fast = {"warmup_runs": 1, "warmup_seconds": 0.0, "min_repeats": 3, "min_seconds": 0.0, "max_repeats": 10}
    running = start_agent(TOKEN, defaults={"timing": fast}, max_bytes=100_000, queue_timeout_s=10, log=None)
    yield running
    running.stop()


def post(url: str, body: bytes, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/octet-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _model(initializer: TensorProto | None = None, domain: str = "") -> bytes:
    nodes = [helper.make_node("Relu" if not domain else "Magic", ["x"], ["y"], domain=domain)]
    inits = []
    if initializer is not None:
        nodes = [helper.make_node("Add", ["x", initializer.name], ["y"])]
        inits = [initializer]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model.SerializeToString()


def test_agent_measures_a_plain_onnx_model(agent: Any) -> None:
    status, body = post(agent.url + "/measure", _model())
    assert status == 200 and body["median_ms"] > 0


def test_agent_refuses_a_pickle_and_never_unpickles_it(agent: Any, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (Path.touch, (marker,))

    status, body = post(agent.url + "/measure", pickle.dumps(Payload()))
    assert status == 400 and "onnxruntime rejected the model" in body["error"]
    assert not marker.exists()
    assert post(agent.url + "/measure", torch.zeros(3).numpy().tobytes())[0] == 400


def test_agent_refuses_models_that_read_files_of_its_machine(agent: Any, tmp_path: Path) -> None:
    (tmp_path / "secret.bin").write_bytes(b"\0" * 16)
    weights = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1, 4])
    weights.data_location = TensorProto.EXTERNAL
    for key, value in (("location", str(tmp_path / "secret.bin")), ("offset", "0"), ("length", "16")):
        entry = weights.external_data.add()
        entry.key, entry.value = key, value
    status, body = post(agent.url + "/measure", _model(weights))
    assert status == 400 and "refers to external data" in body["error"]


def test_agent_refuses_custom_operator_domains(agent: Any) -> None:
    status, body = post(agent.url + "/measure", _model(domain="evil.ops"))
    assert status == 400 and "domain 'evil.ops'" in body["error"]


def test_agent_refuses_unauthenticated_and_oversized_uploads_before_reading_them(agent: Any) -> None:
    assert post(agent.url + "/measure", _model(), token=None)[0] == 401
    assert post(agent.url + "/measure", _model(), token="wrong")[0] == 401
    status, body = post(agent.url + "/measure", b"\0" * 200_000)
    assert status == 413 and "at most 100000" in body["error"]
    assert agent.server.measured >= 0  # still serving
    with urllib.request.urlopen(agent.url + "/health", timeout=10) as answer:
        assert json.loads(answer.read())["ok"] is True
