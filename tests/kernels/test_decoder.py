"""Static LLaMA-style decoder modules: the same logits as transformers' LlamaForCausalLM, incremental decoding with
the KV cache equal to the full forward, a decode step that exports to ONNX, and specs and costs the engine can use."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from nasengine.kernels.decoder import CausalLM, DecodeStep
from nasengine.kernels.inputs import as_args, example_inputs, to_numpy
from nasengine.kernels.static import check_static, from_spec, to_spec
from nasengine.kernels.trace import trace_layers
from nasengine.supernets.llama_import import hf_names

LAYERS = [{"heads": 4, "kv_heads": 2, "head_dim": 8, "hidden": 48}] * 3


def _hf_pair(tie: bool, seed: int = 0) -> tuple[torch.nn.Module, CausalLM]:
    """A random transformers LlamaForCausalLM and our CausalLM holding the same weights."""
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                      num_key_value_heads=2, intermediate_size=48, tie_word_embeddings=tie,
                                      rope_theta=100000.0, rms_norm_eps=1e-5, initializer_range=0.1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        hf = transformers.LlamaForCausalLM(config).eval()
        ours = CausalLM(64, 32, LAYERS, 1e-5, 100000.0, tie).eval()
        for p in hf.parameters():
            if p.dim() == 1:  # norms away from one, so a wrong norm shows
                p.data.add_(0.1 * torch.randn_like(p))
    state = hf.state_dict()
    ours.load_state_dict({k: state[v] for k, v in hf_names(3).items() if k in ours.state_dict()}, strict=True)
    return hf, ours


def _ids(batch: int = 2, length: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 64, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("tie", [True, False])
def test_causal_lm_matches_transformers(tie: bool) -> None:
    hf, ours = _hf_pair(tie)
    ids = _ids()
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # right padding
    with torch.no_grad():
        assert (hf(ids).logits - ours(ids)).abs().max() <= 1e-5
        diff = hf(ids, attention_mask=mask).logits - ours(ids, mask)
    assert diff[0].abs().max() <= 1e-5 and diff[1, :7].abs().max() <= 1e-5


def test_step_with_cache_equals_full_forward() -> None:
    _, model = _hf_pair(True)
    ids = _ids(length=12)
    with torch.no_grad():
        full = model(ids)
        logits, cache = model.step(ids[:, :5])
        parts = [logits]
        for t in range(5, 12):
            logits, cache = model.step(ids[:, t:t + 1], cache)
            parts.append(logits)
        chunked, _ = model.step(ids[:, 8:], model.step(ids[:, :8])[1])  # several new tokens after a cache
    assert (torch.cat(parts, 1) - full).abs().max() <= 1e-5
    assert (chunked - full[:, 8:]).abs().max() <= 1e-5
    assert cache[0][0].shape == (2, 2, 12, 8)


def test_decode_step_matches_the_last_position_and_exports_to_onnx(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    _, model = _hf_pair(True)
    ids = _ids(length=9)
    with torch.no_grad():
        _, cache = model.step(ids[:, :8])
        step = DecodeStep(model, 8).eval()
        past = [t for kv in cache for t in kv]
        assert (step(ids[:, 8:], *past) - model(ids)[:, 8:]).abs().max() <= 1e-5
    specs = step.input_specs(1)
    assert [s.name for s in specs[:3]] == ["input_ids", "past_0_key", "past_0_value"]
    assert specs[0].dtype == "int64" and specs[0].shape == (1,) and specs[1].shape == (2, 8, 8)
    inputs = example_inputs(specs, 2)
    names = list(inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(step, tuple(as_args(inputs)), str(tmp_path / "step.onnx"), input_names=names,
                          output_names=["logits"], dynamo=False, opset_version=17,
                          dynamic_axes={n: {0: "batch"} for n in [*names, "logits"]})
    session = ort.InferenceSession(str(tmp_path / "step.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = step(*as_args(inputs)).numpy()
    assert np.abs(session.run(None, to_numpy(inputs))[0] - expected).max() <= 1e-4


@pytest.mark.parametrize("tie", [True, False])
def test_spec_and_safetensors_round_trip(tmp_path: Path, tie: bool) -> None:
    _, model = _hf_pair(tie)
    check_static(model)
    state = model.state_dict()
    assert ("lm_head.weight" in state) != tie  # a tied head keeps one tensor: safetensors needs no shared storage
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "m.safetensors"))
    rebuilt = from_spec(json.loads(json.dumps(to_spec(model)))).eval()
    rebuilt.load_state_dict(load_file(str(tmp_path / "m.safetensors")), strict=True)
    step = from_spec(json.loads(json.dumps(to_spec(DecodeStep(model, 4)))))
    assert isinstance(step, DecodeStep) and step.cache_len == 4
    ids = _ids()
    with torch.no_grad():
        assert torch.equal(rebuilt(ids), model(ids))


def test_layers_and_costs_are_traced() -> None:
    _, model = _hf_pair(True)
    layers = trace_layers(model, torch.ones(1, 16, dtype=torch.int64))
    assert [t.name for t in layers] == ["embed", "layers.0", "layers.1", "layers.2", "norm", "lm_head"]
    attention = next(op for op in layers[1].spec.ops if op.kind == "attention")
    assert dict(attention.extra)["tokens"] == 16 and dict(attention.extra)["heads"] == 4
    head = layers[-1].spec.ops[0]
    assert head.kind == "linear" and head.macs == 16 * 32 * 64
    params = sum(layer.spec.params for layer in layers)
    norms = sum(p.numel() for n, p in model.named_parameters() if "norm" in n)
    total = sum(p.numel() for p in model.parameters())
    assert params in (total, total - norms)  # the tied table once; RMSNorm scales once describe.py counts them
    step = DecodeStep(model, 8)
    traced = trace_layers(step, example_inputs(step.input_specs(1), 1))
    attention = next(op for op in traced[1].spec.ops if op.kind == "attention")
    assert dict(attention.extra)["tokens"] == 1 and dict(attention.extra)["cache"] == 8
    assert traced[-1].spec.ops[0].macs == 32 * 64  # one token through the LM head


def test_bad_cache_is_refused() -> None:
    _, model = _hf_pair(True)
    with pytest.raises(ValueError, match="takes 6 cache tensors"):
        DecodeStep(model, 4)(torch.ones(1, 1, dtype=torch.int64), torch.zeros(1, 2, 4, 8))
    with pytest.raises(ValueError, match="at least 1 position"):
        DecodeStep(model, 0)
