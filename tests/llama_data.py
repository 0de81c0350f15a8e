"""A tiny random LLaMA checkpoint written by transformers, and a byte-level BPE tokenizer for it (shared by the
decoder tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from nasengine.supernets.llama_export import save_tokenizer

SENTENCES = ["the cat sat on the mat.", "a dog ran in the park, then it sat down.", "we like to read books at night.",
             "she sells sea shells by the sea shore.", "the quick brown fox jumps over the lazy dog."]


def tiny_tokenizer() -> Tokenizer:
    """A byte-level BPE of 64 tokens (3 special) learned from SENTENCES."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(SENTENCES * 4, trainers.BpeTrainer(
        vocab_size=64, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], show_progress=False))
    return tok


def write_tiny_llama(directory: Path, tie: bool = True, seed: int = 0) -> Path:
    """A random LLaMA (vocab 64, hidden 32, 3 layers, 4 heads, 2 KV heads, MLP 48) saved by transformers."""
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                      num_key_value_heads=2, intermediate_size=48, tie_word_embeddings=tie,
                                      rope_theta=100000.0, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
                                      pad_token_id=2, max_position_embeddings=128, initializer_range=0.1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.LlamaForCausalLM(config)
        for p in model.parameters():
            if p.dim() == 1:
                p.data.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(directory, safe_serialization=True)
    save_tokenizer(tiny_tokenizer(), directory, {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2,
                                                 "max_positions": 128})
    return directory
