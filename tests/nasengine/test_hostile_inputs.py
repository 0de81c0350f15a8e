"""A corpus of hostile inputs: each goes through `nasengine.cli.main` and must give exit code 2, exactly one line
on stderr naming the problem, no traceback, and nothing written (no --out, inputs unchanged).

Also: nothing on a load path unpickles, and the measurement agent opens nothing but self-contained ONNX.
"""

from __future__ import annotations

import http.server
import json
import re
import shutil
import socket
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from nasengine.cli.main import main
from nasengine.exporting.exporter import ExportRequest, export

REPO = Path(__file__).resolve().parents[2]


# -- running the command line in-process ---------------------------------------------------------------------------
def run_cli(capsys: pytest.CaptureFixture[str], args: list[Any]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `nasengine ARGS` run in this process."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse errors exit from the parser
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file under `roots` with its size and modification time: equal snapshots mean nothing was written."""
    files = {}
    for root in roots:
        for path in sorted(Path(root).rglob("*")):
            stat = path.stat()
            files[str(path)] = (stat.st_size, stat.st_mtime_ns if path.is_file() else 0)
    return files


# -- inputs damaged on purpose --------------------------------------------------------------------------------------
def edit_config(**changes: Any) -> Callable[[Path], None]:
    def apply(directory: Path) -> None:
        config = json.loads((directory / "config.json").read_text())
        for key, value in changes.items():
            if key.startswith("kwargs."):
                config["kwargs"][key.split(".", 1)[1]] = value
            elif value is DROP:
                config.pop(key)
            else:
                config[key] = value
        (directory / "config.json").write_text(json.dumps(config))
    return apply


DROP = object()


def write(name: str, data: bytes | str) -> Callable[[Path], None]:
    def apply(directory: Path) -> None:
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data.encode() if isinstance(data, str) else data)
    return apply


def truncate_weights(directory: Path) -> None:
    data = (directory / "model.safetensors").read_bytes()
    (directory / "model.safetensors").write_bytes(data[: len(data) // 2])


def reshape_a_tensor(directory: Path) -> None:
    tensors = load_file(str(directory / "model.safetensors"))
    key = next(k for k, v in tensors.items() if v.ndim == 4)
    tensors[key] = torch.zeros(1, 1, 1, 1)
    save_file(tensors, str(directory / "model.safetensors"))


def drop_a_weight(directory: Path) -> None:
    tensors = load_file(str(directory / "model.safetensors"))
    tensors.pop(next(k for k in tensors if k.endswith(".weight")))
    save_file(tensors, str(directory / "model.safetensors"))


def weights_of_another_supernet(directory: Path) -> None:
    from nasengine import supernets

    other = supernets.create("ofa_mbv3_digits")  # the full-size family, not the tiny one trained here
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(directory / "model.safetensors"))


def remove(name: str) -> Callable[[Path], None]:
    return lambda directory: (directory / name).unlink()


# -- servers for the remote-device cases ----------------------------------------------------------------------------
class _Nonsense(http.server.BaseHTTPRequestHandler):
    """Answers every request with 200 and a body that is not JSON."""

    def do_GET(self) -> None:
        body = b"<html>hello from something else</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def nonsense_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Nonsense)
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        assert not thread.is_alive()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nobody listens once the socket is closed


# -- the corpus -----------------------------------------------------------------------------------------------------
@dataclass
class Case:
    id: str
    args: list[str]  # {sn} supernet dir (a damaged copy when `damage_sn`), {run}, {exp}, {out}, {tmp}
    fragment: str  # must appear in the one error line
    damage_sn: Callable[[Path], None] | None = None
    damage_exp: Callable[[Path], None] | None = None
    devices: str | None = None  # a device file ({tmp}, {csv}, {url} filled in); NAME ends with .toml or .json
    csv: list[tuple[str, str]] | None = None  # rows of a latency table for the `table` backend
    files: dict[str, str] = field(default_factory=dict)


SEARCH = ["search", "{sn}", "--out", "{out}", "--evals", "2", "--quiet"]
ON_X = [*SEARCH, "--device", "x"]
ARCH = "__first_arch__"  # replaced by an arch of the run, then damaged

CASES = [
    # malformed supernet directories (search reads them before writing anything)
    Case("config-kwargs-cannot-build", SEARCH, "cannot build supernet 'ofa_mbv3_digits' from its kwargs",
         damage_sn=edit_config(**{"kwargs.head_width": -3})),
    Case("config-unknown-kwarg", SEARCH, "unexpected keyword argument 'bogus'",
         damage_sn=edit_config(**{"kwargs.bogus": 1})),
    Case("config-kwargs-not-an-object", SEARCH, "'kwargs' object", damage_sn=edit_config(kwargs="x")),
    Case("config-unknown-family", SEARCH, "unknown supernet 'nope'", damage_sn=edit_config(supernet="nope")),
    Case("config-garbage", SEARCH, "config.json is not readable JSON", damage_sn=write("config.json", "{garbage")),
    Case("config-not-an-object", SEARCH, "is not a nasengine supernet config", damage_sn=write("config.json", "[1]")),
    Case("config-missing", SEARCH, "not a trained supernet directory", damage_sn=remove("config.json")),
    Case("config-without-task", SEARCH, "records no task", damage_sn=edit_config(task=DROP)),
    Case("weights-truncated", SEARCH, "model.safetensors is not a readable safetensors file",
         damage_sn=truncate_weights),
    Case("weights-empty", SEARCH, "model.safetensors is empty", damage_sn=write("model.safetensors", b"")),
    Case("weights-huge-header", SEARCH, "not a readable safetensors file",
         damage_sn=write("model.safetensors", struct.pack("<Q", 10 ** 12) + b"{}")),
    Case("weights-wrong-shape", SEARCH, "1 tensor(s) of another shape", damage_sn=reshape_a_tensor),
    Case("weights-missing-tensor", SEARCH, "1 missing tensor(s)", damage_sn=drop_a_weight),
    Case("weights-of-another-supernet", SEARCH, "does not fit supernet 'ofa_mbv3_digits'",
         damage_sn=weights_of_another_supernet),
    # constructor overrides that break the family
    Case("set-breaks-constructor", ["train", "ofa_mbv3_digits", "--out", "{out}", "--set", "head_width=-3"],
         "cannot build ofa_mbv3_digits"),
    Case("set-wrong-type", ["train", "ofa_mbv3_digits", "--out", "{out}", "--set", "stage_widths=3"],
         "cannot build ofa_mbv3_digits"),
    Case("set-unknown-key", ["train", "ofa_mbv3_digits", "--out", "{out}", "--set", "bogus=1"],
         "--set bogus: ofa_mbv3_digits takes no such argument"),
    Case("set-without-value", ["train", "ofa_mbv3_digits", "--out", "{out}", "--set", "bogus"],
         "--set expects KEY=VALUE"),
    # archs outside the space
    Case("arch-bad-gene-value", ["export", "{run}", "--out", "{out}", "--arch", ARCH + "bad-value"],
         "is not one of its choices"),
    Case("arch-unknown-gene", ["export", "{run}", "--out", "{out}", "--arch", ARCH + "unknown-gene"],
         "unknown gene 's9.nope'"),
    Case("arch-missing-gene", ["export", "{run}", "--out", "{out}", "--arch", ARCH + "missing-gene"],
         "gene 'resolution' is missing"),
    Case("arch-not-an-object", ["export", "{run}", "--out", "{out}", "--arch", "[1, 2]"], "must be an object"),
    Case("arch-not-json", ["export", "{run}", "--out", "{out}", "--arch", "{resolution: 8"], "not valid JSON"),
    Case("arch-file-missing", ["export", "{run}", "--out", "{out}", "--arch", "@{tmp}/nope.json"],
         "cannot read {tmp}/nope.json: No such file or directory"),
    # output paths that cannot be created
    Case("export-out-below-a-file", ["export", "{run}", "--out", "{tmp}/afile/exp"], "afile is a file"),
    Case("search-out-below-a-file", ["search", "{sn}", "--out", "{tmp}/afile/run", "--evals", "2"],
         "afile is a file"),
    Case("train-out-below-a-file", ["train", "ofa_mbv3_digits", "--out", "{tmp}/afile/sn"], "afile is a file"),
    Case("export-out-is-a-file", ["export", "{run}", "--out", "{tmp}/afile"], "is not a directory"),
    Case("search-out-is-a-file", ["search", "{sn}", "--out", "{tmp}/afile", "--overwrite"], "is not a directory"),
    # damaged exports
    Case("export-weights-truncated", ["evaluate", "{exp}"], "not a readable safetensors file",
         damage_exp=truncate_weights),
    Case("export-weights-empty", ["evaluate", "{exp}"], "model.safetensors is empty",
         damage_exp=write("model.safetensors", b"")),
    Case("export-weights-wrong-shape", ["evaluate", "{exp}"], "tensor(s) of another shape",
         damage_exp=reshape_a_tensor),
    Case("export-weights-missing-tensor", ["evaluate", "{exp}"], "1 missing tensor(s)", damage_exp=drop_a_weight),
    Case("export-config-garbage", ["evaluate", "{exp}"], "config.json is not readable JSON",
         damage_exp=write("config.json", "garbage")),
    Case("export-config-incomplete", ["measure", "{exp}"], "config.json lacks 'module'",
         damage_exp=write("config.json", '{"format": "nasengine-subnet"}')),
    Case("export-manifest-garbage", ["evaluate", "{exp}"], "manifest.json is not readable JSON",
         damage_exp=write("manifest.json", "{")),
    Case("export-onnx-garbage", ["measure", "{exp}"], "model.onnx is not a valid ONNX model",
         damage_exp=write("model.onnx", b"\x08garbage")),
    # device files ($NASENGINE_DEVICES)
    Case("device-unknown-backend", ON_X, "unknown backend 'fpga'",
         devices='d.toml:[devices.x]\nbackend = "fpga"\n'),
    Case("device-without-backend", ON_X, "device 'x' needs a backend",
         devices='d.toml:[devices.x]\nthreads = 1\n'),
    Case("device-remote-without-url", ON_X, "needs a 'url' setting",
         devices='d.toml:[devices.x]\nbackend = "remote"\ntoken = "t"\n'),
    Case("device-threads-not-a-number", ON_X, "setting `threads` must be a whole number >= 1, got 'four'",
         devices='d.toml:[devices.x]\nbackend = "onnxruntime"\nthreads = "four"\n'),
    Case("device-threads-negative", ON_X, "setting `threads` must be a whole number >= 1, got -2",
         devices='d.json:{"devices": {"x": {"backend": "onnxruntime", "threads": -2}}}'),
    Case("device-batch-size-zero", ON_X, "setting `batch_size` must be a whole number >= 1, got 0",
         devices='d.toml:[devices.x]\nbackend = "torch-cpu"\nbatch_size = 0\n'),
    Case("device-timing-not-a-table", ON_X, "setting `timing` must be a table",
         devices='d.toml:[devices.x]\nbackend = "onnxruntime"\ntiming = "fast"\n'),
    Case("device-timing-unknown-key", ON_X, "unknown timing setting `speed`",
         devices='d.toml:[devices.x]\nbackend = "onnxruntime"\ntiming = { speed = 2 }\n'),
    Case("device-timeout-not-a-number", ON_X, "'timeout_s' must be a positive number",
         devices='d.toml:[devices.x]\nbackend = "remote"\nurl = "http://127.0.0.1:1"\ntimeout_s = "soon"\n'),
    Case("device-precision-unknown", ON_X, "precision must be one of fp32, int8, w8, w4, got 'int4'",
         devices='d.toml:[devices.x]\nbackend = "onnxruntime"\nprecision = "int4"\n'),
    Case("device-file-bad-toml", ON_X, "is not valid TOML", devices='d.toml:[devices.x\nbackend = "remote"\n'),
    Case("device-file-bad-json", ON_X, "is not valid JSON", devices='d.json:{"devices": '),
    Case("device-file-devices-a-list", ON_X, "declares no [devices.NAME] tables",
         devices='d.json:{"devices": ["x"]}'),
    Case("device-table-without-csv", ON_X, "a table device needs a `csv` setting",
         devices='d.toml:[devices.x]\nbackend = "table"\n'),
    Case("device-table-csv-missing", ON_X, "does not exist",
         devices='d.toml:[devices.x]\nbackend = "table"\ncsv = "{tmp}/none.csv"\n'),
    # latency tables of the `table` backend
    Case("table-missing-value", ON_X, "line 2: latency_ms is missing", csv=[(ARCH, "")],
         devices='d.toml:[devices.x]\nbackend = "table"\ncsv = "{csv}"\n'),
    Case("table-negative-value", ON_X, "line 3: latency_ms must be a positive number of ms, got -1.5",
         csv=[(ARCH, "2.0"), (ARCH, "-1.5")], devices='d.toml:[devices.x]\nbackend = "table"\ncsv = "{csv}"\n'),
    Case("table-non-numeric-value", ON_X, "latency_ms 'fast' is not a number", csv=[(ARCH, "fast")],
         devices='d.toml:[devices.x]\nbackend = "table"\ncsv = "{csv}"\n'),
    Case("table-infinite-value", ON_X, "must be a positive number of ms, got inf", csv=[(ARCH, "inf")],
         devices='d.toml:[devices.x]\nbackend = "table"\ncsv = "{csv}"\n'),
    Case("table-arch-not-json", ON_X, "arch is not a JSON object", csv=[("{nope", "1.0")],
         devices='d.toml:[devices.x]\nbackend = "table"\ncsv = "{csv}"\n'),
    Case("table-without-rows", ON_X, "has no rows", csv=[],
         devices='d.toml:[devices.x]\nbackend = "table"\ncsv = "{csv}"\n'),
    Case("table-without-latency-column", ON_X, "lacks column(s) latency_ms", csv=None,
         files={"t.csv": "arch,ms\n"}, devices='d.toml:[devices.x]\nbackend = "table"\ncsv = "{tmp}/t.csv"\n'),
    # damaged latency models inside a supernet directory
    Case("lut-table-garbage", [*SEARCH, "--device", "lut:ort-cpu-1t"], "cannot read latency table",
         damage_sn=write("latency_tables/ort-cpu-1t.json", "{garbage")),
    Case("lut-table-negative-entry", [*SEARCH, "--device", "lut:ort-cpu-1t"], "is not a latency >= 0 ms",
         damage_sn=write("latency_tables/ort-cpu-1t.json", json.dumps(
             {"format": "nasengine-latency-table", "device": "ort-cpu-1t", "device_settings": {},
              "supernet": "ofa_mbv3_digits", "overhead_ms": 0.01, "entries": {"abc": -1.0}}))),
    Case("meta-predictor-garbage", [*SEARCH, "--device", "meta:board"], "is not an adapted latency predictor",
         damage_sn=write("latency_models/board/model.json", "[1, 2]")),
    # remote agents that are not there, or not agents
    Case("remote-unreachable", ON_X, "unreachable: Connection refused",
         devices='d.toml:[devices.x]\nbackend = "remote"\nurl = "http://127.0.0.1:{closed}"\ntoken = "t"\n'),
    Case("remote-answers-garbage", ON_X, "sent a non-JSON answer to GET /health",
         devices='d.toml:[devices.x]\nbackend = "remote"\nurl = "{nonsense}"\ntoken = "t"\n'),
    Case("remote-without-token", ON_X, "no token: set $NASE_UNSET_TOKEN",
         devices='d.toml:[devices.x]\nbackend = "remote"\nurl = "{nonsense}"\ntoken_env = "NASE_UNSET_TOKEN"\n'),
    # bad command-line values
    Case("evals-negative", [*SEARCH[:-3], "--evals", "-5"], "argument --evals: expected a positive number, got -5"),
    Case("evals-one", [*SEARCH[:-3], "--evals", "1"], "--evals must be at least 2"),
    Case("evals-not-a-number", [*SEARCH[:-3], "--evals", "many"], "expected a whole number, got 'many'"),
    Case("latency-budget-negative", [*SEARCH, "--latency-budget", "-1"], "expected a positive finite number"),
    Case("latency-budget-nan", [*SEARCH, "--latency-budget", "nan"], "expected a positive finite number, got nan"),
    Case("latency-budget-text", [*SEARCH, "--latency-budget", "fast"], "expected a number, got 'fast'"),
    Case("export-latency-budget-zero", ["export", "{run}", "--out", "{out}", "--latency-budget", "0"],
         "expected a positive finite number, got 0"),
    Case("export-latency-budget-unmeetable", ["export", "{run}", "--out", "{out}", "--latency-budget", "1e-9"],
         "no evaluated subnet runs within"),
    Case("export-device-not-searched", ["export", "{run}", "--out", "{out}", "--device", "ort-cpu-2t"],
         "was not searched in this run"),
    Case("device-given-twice", [*SEARCH, "--device", "ort-cpu-1t", "--device", "ort-cpu-1t"],
         "give each --device once"),
    Case("device-unknown", [*SEARCH, "--device", "tpu-9"], "unknown device 'tpu-9'"),
    Case("objective-unknown", [*SEARCH, "--objectives", "error,beauty"], "unknown metric 'beauty'"),
    Case("strategy-unknown", [*SEARCH, "--strategy", "hillclimb"], "unknown search strategy"),
    Case("threads-zero", [*SEARCH, "--threads", "0"], "argument --threads: expected a positive number, got 0"),
    Case("out-is-the-supernet", ["search", "{sn}", "--out", "{sn}"], "--out must differ from the supernet"),
    Case("epochs-zero", ["train", "ofa_mbv3_digits", "--out", "{out}", "--epochs", "0"], "--epochs"),
    # added with issue #24: what a new user tripped on
    Case("family-from-a-plugin-not-passed", ["train", "my_mlp", "--out", "{out}"],
         "unknown supernet 'my_mlp'; available: "),
    Case("search-a-missing-supernet", ["search", "{tmp}/nowhere", "--out", "{out}"], "nowhere: no such directory"),
    Case("export-a-missing-run", ["export", "{tmp}/nowhere", "--out", "{out}"], "nowhere: no such directory"),
    Case("evaluate-a-missing-export", ["evaluate", "{tmp}/nowhere"], "nowhere: no such directory"),
    Case("measure-a-missing-export", ["measure", "{tmp}/nowhere"], "nowhere: no such directory"),
    Case("export-pick-unknown", ["export", "{run}", "--out", "{out}", "--pick", "fastest"],
         "argument --pick: invalid choice: 'fastest'"),
    Case("hv-reference-missing-file", [*SEARCH, "--hv-reference", "{tmp}/none.json"], "none.json"),
    Case("hv-reference-not-json", [*SEARCH, "--hv-reference", "{tmp}/ref.json"], "ref.json",
         files={"ref.json": "{ideal: 1"}),
    Case("hv-reference-lacks-an-objective", [*SEARCH, "--hv-reference", "{tmp}/ref.json"],
         "no ideal and nadir for objective 'latency_ms:ort-cpu-1t'",
         files={"ref.json": json.dumps({"ideal": {"error": 0, "beauty": 0}, "nadir": {"error": 1, "beauty": 1}})}),
    Case("objectives-none", [*SEARCH, "--objectives", ","], "at least one objective"),
]


def test_the_corpus_is_large_and_named_uniquely() -> None:
    assert len(CASES) >= 25 and len({c.id for c in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def tiny_export_dir(tiny_run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hostile") / "exp"
    export(ExportRequest(tiny_run_dir, out))
    return out


def _arch(run_dir: Path, how: str) -> str:
    arch = json.loads(pd.read_csv(run_dir / "results.csv")["arch"][0])
    if how == "bad-value":
        arch["s0.depth"] = 99
    elif how == "unknown-gene":
        arch["s9.nope"] = 1
    elif how == "missing-gene":
        arch.pop("resolution")
    return json.dumps(arch)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_exit_2_and_writes_nothing(case: Case, tmp_path: Path, tiny_supernet_dir: Path,
                                                             tiny_run_dir: Path, tiny_export_dir: Path,
                                                             capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             request: pytest.FixtureRequest) -> None:
    (tmp_path / "afile").write_text("a regular file")
    sn, exp = tiny_supernet_dir, tiny_export_dir
    if case.damage_sn is not None:
        sn = tmp_path / "sn"
        shutil.copytree(tiny_supernet_dir, sn)
        case.damage_sn(sn)
    if case.damage_exp is not None:
        exp = tmp_path / "exp"
        shutil.copytree(tiny_export_dir, exp)
        case.damage_exp(exp)
    fill = {"sn": str(sn), "run": str(tiny_run_dir), "exp": str(exp), "out": str(tmp_path / "out"),
            "tmp": str(tmp_path), "csv": str(tmp_path / "latencies.csv"), "closed": str(closed_port())}
    if "{nonsense}" in (case.devices or ""):
        fill["nonsense"] = request.getfixturevalue("nonsense_server")
    for name, text in case.files.items():
        (tmp_path / name).write_text(text)
    if case.csv is not None:
        rows = [(_arch(tiny_run_dir, "as-is") if a == ARCH else a, v) for a, v in case.csv]
        pd.DataFrame(rows, columns=["arch", "latency_ms"]).to_csv(tmp_path / "latencies.csv", index=False)
    if case.devices is not None:
        name, _, text = case.devices.partition(":")
        for key, value in fill.items():
            text = text.replace("{" + key + "}", value)
        (tmp_path / name).write_text(text)
        monkeypatch.setenv("NASENGINE_DEVICES", str(tmp_path / name))
    else:
        monkeypatch.delenv("NASENGINE_DEVICES", raising=False)
    args = []
    for arg in case.args:
        if arg.startswith(ARCH):
            arg = _arch(tiny_run_dir, arg[len(ARCH):])
        for key, value in fill.items():
            arg = arg.replace("{" + key + "}", value)
        args.append(arg)
    before = snapshot(tmp_path, tiny_supernet_dir, tiny_run_dir, tiny_export_dir)

    code, out, err = run_cli(capsys, args)

    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert "Traceback" not in err and re.match(r"nasengine( \w+)?: error: ", lines[0]), lines[0]
    fragment = case.fragment.replace("{tmp}", str(tmp_path))
    assert fragment in lines[0], lines[0]
    assert not (tmp_path / "out").exists()
    assert snapshot(tmp_path, tiny_supernet_dir, tiny_run_dir, tiny_export_dir) == before
