"""Exported LLaMA subnets out to the formats other tools run: a Hugging Face directory that
`transformers.LlamaForCausalLM.from_pretrained` loads, a llama.cpp GGUF file (F16 or Q8_0), and text generation with
the KV cache (`generate`).

Token ids, special tokens and the tokenizer travel as `tokenizer.json` plus `tokenizer_config.json` (bos, eos and pad
tokens by name); `save_tokenizer` writes both, and the GGUF writer stores the same vocabulary, merges and special
tokens as llama.cpp's `tokenizer.ggml.*` keys, which `read_gguf` (`llama_import.read_checkpoint`) reads back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer

from nasengine.kernels.decoder import CausalLM
from nasengine.search_spaces.messages import first_line
from nasengine.supernets.llama_import import CONTROL, USER_DEFINED, gguf_names, hf_names, permute_rotary, \
    read_checkpoint

TOKENIZER_CONFIG = "tokenizer_config.json"
QTYPES = ("F16", "Q8_0")
_SPECIALS = ("bos", "eos", "pad")


def uniform_layers(module: CausalLM) -> dict[str, int]:
    """The one heads / kv_heads / head_dim / hidden every layer shares (what Hugging Face and GGUF configs can say);
    ValueError when the subnet's layers differ."""
    configs = module.layer_configs()
    if not configs:
        raise ValueError("the subnet has no decoder layers")
    if any(c != configs[0] for c in configs):
        kinds = sorted({json.dumps(c, sort_keys=True) for c in configs})
        raise ValueError(f"the subnet's layers differ ({kinds}): a Hugging Face or GGUF LLaMA config needs the same "
                         f"heads, kv_heads and MLP size in every layer")
    return configs[0]


def _open_tokenizer(tokenizer: Tokenizer | Path | str) -> Tokenizer:
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    try:
        return Tokenizer.from_file(str(tokenizer))
    except Exception as exc:  # tokenizers raises its own exception type
        raise ValueError(f"{tokenizer} is not a readable tokenizer ({first_line(exc)})") from None


def special_ids(tokenizer_json: Path, tokenizer: Tokenizer) -> dict[str, int | None]:
    """bos / eos / pad token ids named by the tokenizer_config.json beside `tokenizer_json` (None where unnamed)."""
    path = Path(tokenizer_json).with_name(TOKENIZER_CONFIG)
    try:
        raw = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path} is not readable JSON ({first_line(exc)})") from None
    out: dict[str, int | None] = {}
    for key in _SPECIALS:
        token = raw.get(f"{key}_token")
        token = token.get("content") if isinstance(token, dict) else token
        out[key] = None if token is None else tokenizer.token_to_id(str(token))
    return out


def save_tokenizer(tokenizer: Tokenizer, directory: Path, config: dict[str, Any]) -> Path:
    """Write `tokenizer.json` and `tokenizer_config.json` (bos / eos / pad tokens from `config`'s `*_token_id`)
    into `directory`; returns the tokenizer.json path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(directory / "tokenizer.json"))
    names = {f"{key}_token": tokenizer.id_to_token(config[f"{key}_token_id"]) for key in _SPECIALS
             if config.get(f"{key}_token_id") is not None}
    (directory / TOKENIZER_CONFIG).write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": False, "add_eos_token": False,
        "model_max_length": int(config.get("max_positions", 2048)), **names}, indent=2))
    return directory / "tokenizer.json"


def write_hf_directory(module: CausalLM, tokenizer_json: Path, out: Path, max_positions: int = 8192) -> Path:
    """A Hugging Face LLaMA directory of `module`: config.json, model.safetensors (HF names), tokenizer.json and
    tokenizer_config.json; ValueError when the layers differ (no LlamaConfig describes that)."""
    layer = uniform_layers(module)
    tokenizer = _open_tokenizer(tokenizer_json)
    ids = special_ids(Path(tokenizer_json), tokenizer)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = hf_names(len(module.layers))
    state = {names[k]: v.detach().to(torch.float32).contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": module.vocab_size,
        "hidden_size": module.dim, "num_hidden_layers": len(module.layers), "num_attention_heads": layer["heads"],
        "num_key_value_heads": layer["kv_heads"], "head_dim": layer["head_dim"], "intermediate_size": layer["hidden"],
        "hidden_act": "silu", "rms_norm_eps": module.eps, "rope_theta": module.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": module.rope_theta},
        "max_position_embeddings": max_positions, "tie_word_embeddings": module.tie_embeddings,
        "attention_bias": False, "mlp_bias": False, "torch_dtype": "float32",
        **{f"{key}_token_id": value for key, value in ids.items()}}, indent=2))
    save_tokenizer(tokenizer, out, {**{f"{k}_token_id": v for k, v in ids.items()}, "max_positions": max_positions})
    return out


def _gguf_tensor(weights: np.ndarray, qtype: str) -> tuple[np.ndarray, Any]:
    """(data, raw GGML type or None) for one tensor: norms and vectors stay F32; matrices F16, or Q8_0 where rows
    divide into its blocks of 32 (F16 otherwise, as llama.cpp's converter falls back)."""
    from gguf import GGMLQuantizationType
    from gguf.quants import quantize

    if weights.ndim == 1:
        return weights.astype(np.float32), None
    if qtype == "Q8_0" and weights.shape[-1] % 32 == 0:
        return quantize(weights.astype(np.float32), GGMLQuantizationType.Q8_0), GGMLQuantizationType.Q8_0
    return weights.astype(np.float16), None


def _tokenizer_pre(tokenizer: Tokenizer) -> str:
    """llama.cpp's name of the pre-tokenizer: smollm (digits split one by one before GPT-2's byte-level split),
    llama-bpe (a Split regex, as Llama 3 uses) or gpt2."""
    spec = json.loads(tokenizer.to_str()).get("pre_tokenizer") or {}
    steps = spec.get("pretokenizers", [spec])
    kinds = [s.get("type") for s in steps]
    if "Digits" in kinds:
        return "smollm"
    return "llama-bpe" if "Split" in kinds else "gpt2"


def _add_tokenizer(writer: Any, tokenizer: Tokenizer, vocab_size: int, ids: dict[str, int | None]) -> None:
    spec = json.loads(tokenizer.to_str())
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        raise ValueError("only byte-level BPE tokenizers can be written to GGUF")
    vocab = {int(i): t for t, i in model["vocab"].items()}
    specials = {int(a["id"]): bool(a.get("special")) for a in spec.get("added_tokens", [])}
    vocab.update({int(a["id"]): a["content"] for a in spec.get("added_tokens", [])})
    if max(vocab) >= vocab_size:
        raise ValueError(f"the tokenizer has ids up to {max(vocab)}, the model only {vocab_size} embeddings")
    tokens = [vocab.get(i, f"[PAD{i}]") for i in range(vocab_size)]  # unused rows padded as llama.cpp does
    def kind(i: int) -> int:  # llama.cpp token types: 1 normal, 3 control, 4 user-defined, 5 unused
        if i not in vocab:
            return 5
        return 1 if i not in specials else CONTROL if specials[i] else USER_DEFINED

    types = [kind(i) for i in range(vocab_size)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_tokenizer_pre(tokenizer))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for key, add in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id),
                     ("pad", writer.add_pad_token_id)):
        if ids.get(key) is not None:
            add(int(ids[key]))  # type: ignore[arg-type]
    writer.add_add_bos_token(False)


def write_gguf(module: CausalLM, tokenizer_json: Path, out_file: Path, qtype: str = "F16",
               max_positions: int = 8192) -> Path:
    """A llama.cpp GGUF file of `module` (llama architecture keys, q/k rows in llama.cpp's rotary order, tensors F16
    or Q8_0, the tokenizer's vocabulary, merges and special tokens); ValueError when the layers differ."""
    from gguf import GGUFWriter, LlamaFileType

    if qtype not in QTYPES:
        raise ValueError(f"unknown GGUF tensor type {qtype!r}; choose from {', '.join(QTYPES)}")
    layer = uniform_layers(module)
    tokenizer = _open_tokenizer(tokenizer_json)
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(str(out_file), "llama")
    writer.add_name("nasengine subnet")
    writer.add_block_count(len(module.layers))
    writer.add_context_length(max_positions)
    writer.add_embedding_length(module.dim)
    writer.add_feed_forward_length(layer["hidden"])
    writer.add_head_count(layer["heads"])
    writer.add_head_count_kv(layer["kv_heads"])
    writer.add_rope_freq_base(float(module.rope_theta))
    writer.add_layer_norm_rms_eps(float(module.eps))
    writer.add_key_length(layer["head_dim"])
    writer.add_value_length(layer["head_dim"])
    writer.add_rope_dimension_count(layer["head_dim"])
    writer.add_vocab_size(module.vocab_size)
    writer.add_file_type(LlamaFileType.MOSTLY_Q8_0 if qtype == "Q8_0" else LlamaFileType.MOSTLY_F16)
    _add_tokenizer(writer, tokenizer, module.vocab_size, special_ids(Path(tokenizer_json), tokenizer))
    names = gguf_names(len(module.layers))
    for name, tensor in module.state_dict().items():
        weights = tensor.detach().to(torch.float32).cpu().numpy()
        if name.endswith(("attn.q.weight", "attn.k.weight")):
            weights = permute_rotary(weights, layer["heads"] if name.endswith("q.weight") else layer["kv_heads"])
        data, raw = _gguf_tensor(weights, qtype)
        writer.add_tensor(names[name], data, raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_file


def read_gguf(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], Tokenizer]:
    """A GGUF file's sizes, float32 tensors (CausalLM names) and tokenizer (see `llama_import.read_checkpoint`)."""
    return read_checkpoint(Path(path))


def from_checkpoint(path: Path) -> tuple[CausalLM, Tokenizer]:
    """A static CausalLM (eval mode) and tokenizer from a Hugging Face directory or GGUF file: every layer as the
    checkpoint's config says (no supernet involved)."""
    config, tensors, tokenizer = read_checkpoint(Path(path))
    layer = {"heads": config["heads"], "kv_heads": config["kv_heads"], "head_dim": config["head_dim"],
             "hidden": config["intermediate"]}
    with torch.random.fork_rng(devices=[]):
        module = CausalLM(config["vocab_size"], config["hidden"], [layer] * config["layers"], config["eps"],
                          config["rope_theta"], config["tie_embeddings"])
    module.load_state_dict(tensors, strict=True)
    return module.eval(), tokenizer


@torch.no_grad()
def generate_ids(module: CausalLM, prompt_ids: Sequence[int], max_tokens: int, temperature: float = 0.0,
                 top_k: int = 50, seed: int = 0, stop_ids: Sequence[int] = ()) -> list[int]:
    """Up to `max_tokens` new token ids after `prompt_ids`, decoded one at a time with the KV cache: greedy at
    temperature 0, else sampled from the `top_k` most likely at `temperature` with a generator seeded by `seed`
    (the global random state is left alone); stops after any of `stop_ids`."""
    if not prompt_ids:
        raise ValueError("generation needs at least one prompt token")
    gen = torch.Generator().manual_seed(int(seed))
    logits, cache = module.step(torch.tensor([list(prompt_ids)], dtype=torch.int64))
    out: list[int] = []
    for _ in range(max_tokens):
        last = logits[0, -1].float()
        if temperature <= 0:
            token = int(last.argmax())
        else:
            values, indices = last.topk(min(max(1, top_k), last.numel()))
            probs = torch.softmax(values / temperature, dim=-1)
            token = int(indices[torch.multinomial(probs, 1, generator=gen)])
        out.append(token)
        if token in stop_ids or len(out) == max_tokens:
            break
        logits, cache = module.step(torch.tensor([[token]], dtype=torch.int64), cache)
    return out


def generate(module: CausalLM, tokenizer: Tokenizer | Path | str, prompt: str, max_tokens: int,
             temperature: float = 0.0, top_k: int = 50, seed: int = 0, stop_ids: Sequence[int] = ()) -> str:
    """The text `module` continues `prompt` with (the new text only; see `generate_ids` for the sampling)."""
    tok = _open_tokenizer(tokenizer)
    ids = tok.encode(prompt).ids
    new = generate_ids(module.eval(), ids, max_tokens, temperature, top_k, seed, stop_ids)
    return tok.decode([t for t in new if t not in stop_ids], skip_special_tokens=False)
