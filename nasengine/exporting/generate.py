"""Text from an exported decoder language model: the export's own module and tokenizer.json, one token at a time
with the key/value cache, stopping at the end-of-text token its training data was packed with."""

from __future__ import annotations

from pathlib import Path

from nasengine.exporting.subnet import load_subnet, read_subnet_config


def generate_text(path: str | Path, prompt: str, max_tokens: int = 64, temperature: float = 0.0, top_k: int = 50,
                  seed: int = 0) -> str:
    """The continuation of `prompt` by the language model exported to `path`: greedy at temperature 0 (the
    default, reproducible), else sampled from the `top_k` most likely tokens with a generator seeded by `seed`.
    ValueError (one line) when the export is not a language model or its tokenizer is missing."""
    from nasengine.supernets.llama_export import generate

    path = Path(path)
    config = read_subnet_config(path)
    task = config.get("task") if isinstance(config.get("task"), dict) else {}
    tokenizer = path / "tokenizer.json"
    if "end_of_text" not in task:
        raise ValueError(f"{path} is not an exported language model (its task is {task.get('kind', 'unknown')!r})")
    if not tokenizer.is_file():
        raise ValueError(f"{path} has no tokenizer.json; export the subnet again")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    module = load_subnet(path)
    if not hasattr(module, "step"):
        raise ValueError(f"{path} holds a {type(module).__name__}, which does not decode token by token")
    return generate(module, tokenizer, prompt, max_tokens, temperature, top_k, seed,
                    stop_ids=(int(task["end_of_text"]),))
