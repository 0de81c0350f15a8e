"""What a user trips over, each fixed: stale "running" run records, devices listed as available with a wrong
token, exports that refuse to resume, private file permissions, missing help texts, opaque --set errors and
evaluations that do not say what they scored."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Iterator

import pytest

from nasengine.measurement.agent import start_agent
from tests.cli_helpers import one_line_error, run_cli

TOKEN = "right-token"
FAST = {"warmup_runs": 1, "warmup_seconds": 0.0, "min_repeats": 3, "min_seconds": 0.0, "max_repeats": 10}


@pytest.fixture
def agent() -> Iterator[Any]:
    running = start_agent(TOKEN, defaults={"timing": FAST}, max_bytes=2_000, queue_timeout_s=10, log=None)
    yield running
    running.stop()


def device_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, token: str) -> None:
    (tmp_path / "devices.toml").write_text(f'[devices.board]\nbackend = "remote"\nurl = "{url}"\n'
                                           f'token = "{token}"\ntiming = {{ min_repeats = 3, max_repeats = 10 }}\n')
    monkeypatch.setenv("NASENGINE_DEVICES", str(tmp_path / "devices.toml"))


# -- run.json tells how a search ended --------------------------------------------------------------------------------
def test_a_search_that_fails_at_once_records_failed_with_the_reason(agent: Any, tiny_supernet_dir: Path,
                                                                    tmp_path: Path, capsys, monkeypatch) -> None:
    device_file(tmp_path, monkeypatch, agent.url, TOKEN)  # the agent takes models up to 2 kB: none fits
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "search", tiny_supernet_dir, "--device", "board", "--out", out, "--evals", "4",
                           "--quiet")
    line = one_line_error(code, err)
    assert "accepts at most 2000" in line
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "failed" and "accepts at most 2000" in record["error"]
    assert "\n" not in record["error"]
    code, _, err = run_cli(capsys, "export", out, "--out", tmp_path / "exp")
    assert "failed (" in one_line_error(code, err) and not (tmp_path / "exp").exists()


def test_an_interrupted_search_records_interrupted_and_resumes(tiny_supernet_dir: Path, tmp_path: Path, capsys,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from nasengine.searching.supernet_metrics import SupernetMetrics as CandidateEvaluator

    monkeypatch.delenv("NASENGINE_DEVICES", raising=False)
    original = CandidateEvaluator.__call__
    calls = {"n": 0}

    def ctrl_c_on_the_third(self: CandidateEvaluator, arch: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, arch)

    monkeypatch.setattr(CandidateEvaluator, "__call__", ctrl_c_on_the_third)
    out = tmp_path / "run"
    args = ["search", tiny_supernet_dir, "--out", out, "--evals", "4", "--quiet"]
    code, _, err = run_cli(capsys, *args)
    assert code == 130 and "interrupted" in err
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    monkeypatch.setattr(CandidateEvaluator, "__call__", original)
    code, out_text, err = run_cli(capsys, *args)
    assert code == 0, err
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "complete" and record["error"] is None and record["summary"]["evaluated"] == 4


# -- devices check the token ----------------------------------------------------------------------------------------
def test_devices_reports_a_rejected_token(agent: Any, tmp_path: Path, capsys, monkeypatch) -> None:
    device_file(tmp_path, monkeypatch, agent.url, "wrong-token")
    code, out, err = run_cli(capsys, "devices")
    assert code == 0, err
    board = next(line for line in out.splitlines() if line.startswith("board "))
    assert board.endswith("unavailable (token rejected)")
    code, out, _ = run_cli(capsys, "devices", "--json")
    row = next(r for r in json.loads(out) if r["name"] == "board")
    assert row["available"] is False and row["reason"] == "token rejected" and row["settings"]["token"] == "***"

    device_file(tmp_path, monkeypatch, agent.url, TOKEN)
    code, out, err = run_cli(capsys, "devices")
    board = next(line for line in out.splitlines() if line.startswith("board "))
    assert code == 0 and board.endswith(" available"), out


def test_search_with_a_rejected_token_writes_nothing(agent: Any, tiny_supernet_dir: Path, tmp_path: Path, capsys,
                                                     monkeypatch) -> None:
    device_file(tmp_path, monkeypatch, agent.url, "wrong-token")
    code, _, err = run_cli(capsys, "search", tiny_supernet_dir, "--device", "board", "--out", tmp_path / "run")
    assert "device 'board' is not usable here: token rejected" in one_line_error(code, err)
    assert not (tmp_path / "run").exists()


def test_health_checks_a_token_only_when_one_is_sent(agent: Any) -> None:
    import urllib.error
    import urllib.request

    def health(token: str | None) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            with urllib.request.urlopen(urllib.request.Request(agent.url + "/health", headers=headers),
                                        timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    assert health(None)[0] == 200 and health(None)[1]["authenticated"] is False
    assert health(TOKEN)[1]["authenticated"] is True
    assert health("wrong") == (401, {"error": "invalid token"})


# -- export resumes like every other command ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(tiny_run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nasengine.exporting.exporter import ExportRequest, export

    out = tmp_path_factory.mktemp("tripups") / "exp"
    previous = os.umask(0o022)
    try:
        export(ExportRequest(tiny_run_dir, out))
    finally:
        os.umask(previous)
    return out


def test_export_again_with_the_same_options_is_a_no_op(exported: Path, tiny_run_dir: Path, capsys) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in exported.iterdir()}
    code, out, err = run_cli(capsys, "export", tiny_run_dir, "--out", exported)
    assert code == 0, err
    assert "already holds this export" in out and "nothing redone" in out
    assert {p.name: p.stat().st_mtime_ns for p in exported.iterdir()} == before
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["options"]["latency_budget_ms"] is None and manifest["options"]["device"] == "ort-cpu-1t"


def test_export_again_with_other_options_suggests_overwrite(exported: Path, tiny_run_dir: Path, capsys) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in exported.iterdir()}
    code, _, err = run_cli(capsys, "export", tiny_run_dir, "--out", exported, "--latency-budget", "1000")
    line = one_line_error(code, err)
    assert "latency_budget_ms=None (now 1000.0)" in line and "--overwrite" in line
    assert {p.name: p.stat().st_mtime_ns for p in exported.iterdir()} == before


def test_export_into_a_foreign_directory_suggests_overwrite(tiny_run_dir: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "export", tiny_run_dir, "--out", tmp_path / "exp")
    assert "not an export" in one_line_error(code, err) and "--overwrite" in err
    assert [p.name for p in (tmp_path / "exp").iterdir()] == ["notes.txt"]


# -- files get the usual permissions --------------------------------------------------------------------------------
def _modes(directory: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in [directory, *directory.iterdir()]}


def test_outputs_have_the_usual_permissions(exported: Path, tiny_run_dir: Path, tiny_supernet_dir: Path) -> None:
    modes = _modes(exported)
    assert modes.pop(exported.name) == 0o755
    assert modes == {"config.json": 0o644, "manifest.json": 0o644, "model.onnx": 0o644, "model.raw.onnx": 0o644,
                     "model.safetensors": 0o644}
    umask = os.umask(0)
    os.umask(umask)
    for directory in (tiny_run_dir, tiny_supernet_dir):
        for name, mode in _modes(directory).items():
            is_dir = name == directory.name or (directory / name).is_dir()
            expected = (0o777 if is_dir else 0o666) & ~umask
            assert mode == expected, (directory, name, oct(mode))


def test_atomic_directory_follows_the_umask(tmp_path: Path) -> None:
    from nasengine.search_spaces.storage import atomic_directory, atomic_file

    previous = os.umask(0o027)
    try:
        with atomic_directory(tmp_path / "d") as tmp:
            with atomic_file(tmp / "f") as f:
                f.write_bytes(b"x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "d" / "f").stat().st_mode) == 0o640


# -- help texts and messages that say enough ---------------------------------------------------------------------
def _help(capsys: pytest.CaptureFixture[str], command: str) -> str:
    code, out, _ = run_cli(capsys, command, "--help")
    assert code == 0
    return " ".join(out.split())  # argparse wraps lines


def test_search_help_shows_defaults_and_explains_the_latency_budget(capsys) -> None:
    text = _help(capsys, "search")
    assert "default ort-cpu-1t" in text and "(default 200)" in text
    assert "--latency-budget MS only subnets at most this many milliseconds" in text
    assert "--latency-budget MS only Pareto subnets at most this many milliseconds" in _help(capsys, "export")
    assert "default: the one recorded in manifest.json" in _help(capsys, "evaluate")


def test_unknown_set_key_lists_the_constructor_keys(tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(capsys, "train", "ofa_mbv3_digits", "--out", tmp_path / "sn", "--set", "head_widht=64")
    line = one_line_error(code, err)
    assert "--set head_widht: ofa_mbv3_digits takes no such argument" in line
    assert "head_width" in line and "stage_widths" in line and "`nasengine supernets`" in line
    assert not (tmp_path / "sn").exists()


def test_evaluate_names_the_split_it_scored(exported: Path, capsys) -> None:
    manifest = json.loads((exported / "manifest.json").read_text())
    code, out, err = run_cli(capsys, "evaluate", exported)
    assert code == 0, err
    assert f"on the test split ({manifest['accuracy_split']['n']:,} samples)" in out
    assert f"{manifest['accuracy']:.2%}" in out
    code, out, _ = run_cli(capsys, "evaluate", exported, "--split", "val")
    assert code == 0 and "on the val split (" in out


def test_token_is_checked_on_agents_that_predate_token_checks_on_health() -> None:
    """An older agent ignores the token on /health: an empty authenticated upload tells instead (401 or 400)."""
    import http.server
    import threading

    from nasengine.measurement.devices import DeviceConfig
    from nasengine.measurement.devices.remote import RemoteDevice

    class OldAgent(http.server.BaseHTTPRequestHandler):
        def _answer(self, code: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(200, {"ok": True, "max_bytes": 1000})

        def do_POST(self) -> None:
            good = self.headers.get("Authorization") == f"Bearer {TOKEN}"
            self._answer(400 if good else 401, {"error": "empty body" if good else "invalid token"})

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OldAgent)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        wrong = RemoteDevice(DeviceConfig("old", "remote", {"url": url, "token": "wrong"}))
        right = RemoteDevice(DeviceConfig("old", "remote", {"url": url, "token": TOKEN}))
        assert wrong.availability() == "token rejected"
        assert right.availability() is None
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_failed_or_interrupted_training_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nasengine.training.run as training
    from nasengine.training.run import TrainRequest, train
    from tests.conftest import TINY

    request = TrainRequest("ofa_mbv3_digits", tmp_path / "sn", epochs=1, batch_size=256, progress=False,
                           overrides=dict(TINY))
    for raised, status in ((KeyboardInterrupt(), "interrupted"), (RuntimeError("disk on fire\nmore"), "failed")):
        def boom(*args: object, **kwargs: object) -> None:
            raise raised

        monkeypatch.setattr(training, "train_supernet", boom)
        with pytest.raises(type(raised)):
            train(request)
        marker = json.loads((tmp_path / "sn" / "train.json").read_text())
        assert marker["status"] == status
        if status == "failed":
            assert marker["error"] == "RuntimeError: disk on fire more"  # as a failed search records it


def test_a_plugin_wrapping_a_family_is_handed_only_what_that_family_takes(tmp_path: Path) -> None:
    """`def build(**kw): return OFAMobileNetV3(OFAConfig(**{..., **kw}))` used to be handed `input_size`, which the
    family refuses: a builder that declares no config gets the native size only if what it wraps takes it."""
    from nasengine import supernets
    from nasengine.supernets.ofa_mbv3 import OFAConfig, OFAMobileNetV3
    from tests.conftest import TINY

    @supernets.register("wrapped_mbv3_for_a_test")
    def build(**kw):
        return OFAMobileNetV3(OFAConfig(**{**TINY, **kw}))

    net = supernets.create_for_task("wrapped_mbv3_for_a_test", 3, 7, (28, 28))
    assert net.config["in_channels"] == 3 and net.config["num_classes"] == 7
    with pytest.raises(TypeError, match="bogus"):  # other refusals still reach the user
        supernets.create_for_task("wrapped_mbv3_for_a_test", 3, 7, (28, 28), bogus=1)
