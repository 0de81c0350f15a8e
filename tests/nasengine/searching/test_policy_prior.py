"""Priors of a searched precision policy: per-layer INT8/FP32 prices from a device's two tables, per-layer
sensitivity, and the policies they propose."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nasengine.kernels.describe import LayerSpec, OpSpec
from nasengine.measurement.lut import LatencyTable, signature_key
from nasengine.measurement.policy_pricing import layer_precisions, mixed_precision_latency
from nasengine.searching.policy_prior import SENSITIVITY_FILE, PolicyPrior, PrecisionTables
from tests.cli_helpers import one_line_error, run_cli


def _layer(name: str, channels: int, params: bool = True) -> LayerSpec:
    kind = "conv2d" if params else "avgpool"
    return LayerSpec(name, "block", (OpSpec(kind, channels, channels, (8, 8), (8, 8), kernel=3 if params else 1),))


LAYERS = [_layer("a", 8), _layer("b", 16), _layer("pool", 16, params=False), _layer("c", 32)]


def _tables() -> PrecisionTables:
    """Layer a is faster in INT8, b slower, c much faster; the pooling costs the same in both."""
    fp32 = LatencyTable("dev", {}, "net", overhead_ms=0.05, scale=1.1, offset_ms=0.01,
                        entries={signature_key(LAYERS[0]): 0.20, signature_key(LAYERS[1]): 0.10,
                                 signature_key(LAYERS[2]): 0.02, signature_key(LAYERS[3]): 0.50})
    int8 = LatencyTable("dev", {}, "net", overhead_ms=0.08, scale=0.9, offset_ms=0.0,
                        entries={signature_key(LAYERS[0]): 0.10, signature_key(LAYERS[1]): 0.20,
                                 signature_key(LAYERS[2]): 0.02, signature_key(LAYERS[3]): 0.15})
    return PrecisionTables({"fp32": fp32, "int8": int8})


def test_uniform_policies_reproduce_each_table_and_a_pooling_follows_the_layer_before_it() -> None:
    tables = _tables()
    fp32 = {"p.a": "fp32", "p.b": "fp32", "p.c": "fp32"}
    int8 = {"p.a": "int8", "p.b": "int8", "p.c": "int8"}
    assert tables.latency(LAYERS, fp32) == pytest.approx(tables.tables["fp32"].predict(LAYERS))
    assert tables.latency(LAYERS, int8) == pytest.approx(tables.tables["int8"].predict(LAYERS))
    unpriced = {"p.a": "w4", "p.b": "w4", "p.c": "w4"}  # no w4 table: priced as FP32
    assert tables.latency(LAYERS, unpriced) == pytest.approx(tables.tables["fp32"].predict(LAYERS))
    mixed = {"p.a": "fp32", "p.b": "int8", "p.c": "fp32"}
    assert layer_precisions(LAYERS, mixed) == ["fp32", "int8", "int8", "fp32"]
    expected = (0.5 * (1.1 * 0.05 + 0.01) + 0.5 * (0.9 * 0.08) + 1.1 * 0.20 + 0.9 * 0.20 + 0.9 * 0.02 + 1.1 * 0.50)
    assert mixed_precision_latency(tables.tables, LAYERS, layer_precisions(LAYERS, mixed)) == pytest.approx(expected)
    with pytest.raises(ValueError, match="2 policy layers for 3"):
        layer_precisions(LAYERS, {"p.a": "fp32", "p.b": "int8"})


def _prior(sensitivity: dict[str, float]) -> PolicyPrior:
    def split(arch: dict) -> tuple[dict, dict]:
        return {"w": arch["w"]}, {k[2:]: v for k, v in arch.items() if k.startswith("q.")}

    return PolicyPrior(split, lambda network: LAYERS, _tables(), lambda: sensitivity)


def test_proposals_set_int8_where_the_tables_say_it_pays_and_keep_sensitive_layers_fp32_with_caution() -> None:
    arch = {"w": 1, "q.p.a": "fp32", "q.p.b": "int8", "q.p.c": "fp32"}
    fastest = {"w": 1, "q.p.a": "int8", "q.p.b": "fp32", "q.p.c": "int8"}
    assert _prior({}).propose(arch, np.random.default_rng(0)) == fastest  # no sensitivity known: no caution
    prior = _prior({"p.a": 5.0, "p.b": 0.0, "p.c": 0.1})
    proposals = [prior.propose(arch, np.random.default_rng(seed)) for seed in range(40)]
    seen = {json.dumps(p, sort_keys=True) for p in proposals}
    safer = {**fastest, "q.p.a": "fp32"}  # caution drops the most sensitive of the paying layers first
    assert seen == {json.dumps(fastest, sort_keys=True), json.dumps(safer, sort_keys=True)}
    assert all(p["q.p.b"] == "fp32" and p["w"] == 1 for p in proposals)  # never INT8 where it loses; network kept
    assert prior.int8_sensitivity({"p.a": "int8", "p.b": "fp32", "p.c": "int8"}) == \
        pytest.approx(np.log1p(5.1 / (5.1 / 3)))
    assert prior.int8_sensitivity({"p.a": "fp32", "p.b": "fp32", "p.c": "fp32"}) == 0.0


@pytest.fixture(scope="module")
def priced_supernet(tiny_supernet_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny supernet with ort-cpu-1t's FP32 and INT8 tables profiled through the CLI."""
    from nasengine.measurement.profiling import profile_device

    out = tmp_path_factory.mktemp("priced") / "supernet"
    shutil.copytree(tiny_supernet_dir, out, ignore=shutil.ignore_patterns("latency_tables", "latency_models"))
    for precision in ("fp32", "int8"):
        profile_device("ort-cpu-1t", out, check=4, progress=False, precision=precision)
    return out


def test_the_int8_table_is_profiled_with_every_layer_quantized(priced_supernet: Path) -> None:
    from nasengine.training.loading import load_trained

    tables = [LatencyTable.load(priced_supernet / "latency_tables" / name)
              for name in ("ort-cpu-1t.json", "ort-cpu-1t.int8.json")]
    assert tables[0].entries.keys() == tables[1].entries.keys()  # the same layers, priced at both precisions
    assert tables[0].entries != tables[1].entries
    net, _ = load_trained(priced_supernet)
    layers = net.describe(net.space.max())
    assert len([layer for layer in layers if layer.params > 0]) == len(net.quantizable_layers())


def test_a_searched_policy_is_priced_proposed_and_its_sensitivity_kept_for_resume(priced_supernet: Path,
                                                                                   tmp_path: Path) -> None:
    from nasengine.searching.arch_features import latency_priors
    from nasengine.searching.policy_prior import load_precision_tables
    from nasengine.searching.problem import ArchPriors, SearchProblem
    from nasengine.searching.runner import SearchRequest, search
    from nasengine.searching.supernet_metrics import Quantization
    from nasengine.training.loading import load_trained

    out = tmp_path / "run"
    request = SearchRequest(priced_supernet, out, ("ort-cpu-1t",), evals=10, strategy="linas", progress=False,
                            quantization="search")
    search(request)
    saved = json.loads((out / SENSITIVITY_FILE).read_text())
    net, _ = load_trained(priced_supernet)
    quantization = Quantization("search", tuple(net.quantizable_layers()))
    assert list(saved["sensitivity"]) == [layer.path for layer in quantization.layers]  # the largest has them all
    assert all(v >= 0 for v in saved["sensitivity"].values()) and max(saved["sensitivity"].values()) > 0
    results = pd.read_csv(out / "results.csv")
    # the first batch is the FP32 smallest and largest subnets, their proposals, then mostly proposals
    tables = load_precision_tables(priced_supernet, "ort-cpu-1t")
    prior = PolicyPrior(quantization.policy, net.describe, tables, saved["sensitivity"])
    space = quantization.space(net.space)
    problem = SearchProblem(space, [], [], 10, lambda pending: [], priors=ArchPriors(propose=prior.propose))
    first = problem.initial_archs(8, np.random.default_rng(0))  # LINAS's first batch at this budget and seed
    assert [space.key(a) for a in first] == [space.key(json.loads(a)) for a in results["arch"][:8]]
    for anchor in (space.min(), space.max()):
        network, policy = quantization.policy(prior.propose(anchor, np.random.default_rng(1)))
        layers = [layer for layer in net.describe(network) if layer.params > 0]
        paying = {path for path, layer in zip(policy, layers) if tables.saving(layer, "int8") > 0}
        assert {path for path, p in policy.items() if p == "int8"} <= paying  # INT8 only where it pays
    # the device's prior prices each candidate at its own policy
    prior = latency_priors(priced_supernet, ("ort-cpu-1t",))["ort-cpu-1t"]
    arch = json.loads(results["arch"][3])
    network, policy = quantization.policy(arch)
    assert prior(network, net.describe(network), policy) == pytest.approx(tables.latency(net.describe(network), policy))
    # a resumed search reads the kept sensitivity instead of measuring it again
    (out / SENSITIVITY_FILE).write_text(json.dumps({**saved, "sensitivity": {k: 1.0 for k in saved["sensitivity"]}}))
    search(SearchRequest(priced_supernet, out, ("ort-cpu-1t",), evals=12, strategy="linas", progress=False,
                         quantization="search"))
    assert set(json.loads((out / SENSITIVITY_FILE).read_text())["sensitivity"].values()) == {1.0}
    assert len(pd.read_csv(out / "results.csv")) == 12


def test_profiling_an_int8_table_needs_a_device_that_runs_quantized_graphs(tiny_supernet_dir: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    for device, message in (("torch-cpu-1t", "cannot run int8 graphs"), ("ort-cpu-1t-int8", "profile its FP32 twin")):
        code, out, err = run_cli(capsys, "device", "profile", device, tiny_supernet_dir, "--precision", "int8",
                                 "--check", "4", "--out", tmp_path / "t.json", "--quiet")
        assert message in one_line_error(code, err)
        assert not (tmp_path / "t.json").exists()


def test_a_layer_goes_to_its_fastest_priced_precision_and_unpriced_ones_stay_as_sampled() -> None:
    tables = _tables()
    w4 = LatencyTable("dev", {}, "net", overhead_ms=0.05, scale=1.0,
                      entries={signature_key(LAYERS[0]): 0.05, signature_key(LAYERS[1]): 0.30,
                               signature_key(LAYERS[2]): 0.02, signature_key(LAYERS[3]): 0.40})
    priced = PrecisionTables({**tables.tables, "w4": w4})
    options = {"p.a": ("fp32", "int8", "w8", "w4"), "p.b": ("fp32", "int8", "w8", "w4"),
               "p.c": ("fp32", "int8")}
    prior = PolicyPrior(lambda arch: ({}, {k[2:]: v for k, v in arch.items()}), lambda network: LAYERS, priced, {},
                        options)
    proposal = prior.propose({"q.p.a": "fp32", "q.p.b": "w8", "q.p.c": "fp32"}, np.random.default_rng(0))
    # a: w4 saves 0.17 ms, int8 0.13 -> w4; b: every priced precision loses, w8 is unpriced -> kept;
    # c: only int8 is allowed there, and it pays
    assert proposal == {"q.p.a": "w4", "q.p.b": "w8", "q.p.c": "int8"}
    assert prior.propose({"q.p.a": "fp32", "q.p.b": "w4", "q.p.c": "fp32"},
                         np.random.default_rng(0))["q.p.b"] == "fp32"  # priced and slower than FP32


def test_a_run_of_int8_layers_converts_its_input_and_output_once() -> None:
    tables = _tables()
    int8 = tables.tables["int8"]
    int8.boundaries = {signature_key(layer): [0.01 * (i + 1), 0.001 * (i + 1)] for i, layer in enumerate(LAYERS)}
    base = PrecisionTables({"fp32": tables.tables["fp32"], "int8": LatencyTable(**{**int8.__dict__, "boundaries": {}})})
    one_run = {"p.a": "int8", "p.b": "int8", "p.c": "fp32"}  # a, b and the pooling after b: one run of INT8
    two_runs = {"p.a": "int8", "p.b": "fp32", "p.c": "int8"}
    assert tables.latency(LAYERS, one_run) - base.latency(LAYERS, one_run) == pytest.approx(0.9 * (0.01 + 0.003))
    assert tables.latency(LAYERS, two_runs) - base.latency(LAYERS, two_runs) == \
        pytest.approx(0.9 * (0.01 + 0.001 + 0.04 + 0.004))
    everything = {"p.a": "int8", "p.b": "int8", "p.c": "int8"}  # the INT8 table alone converts its two ends too
    assert tables.latency(LAYERS, everything) == pytest.approx(int8.predict(LAYERS))
