"""Export formats beyond the engine's own (config.json + model.safetensors + ONNX, always written): writers over the
one static module an export holds, one registration each. Built in: `hf` (a Hugging Face LLaMA directory that
`transformers.LlamaForCausalLM.from_pretrained` loads), `gguf` (F16) and `gguf-q8_0` (llama.cpp-compatible files).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from torch import nn

from nasengine.errors import UserError
from nasengine.search_spaces.registry import Registry

Writer = Callable[[nn.Module, Path, Mapping[str, bytes]], list[str]]


@dataclass(frozen=True)
class ExportFormat:
    """`write(module, directory, assets) -> names written` puts the format's files into an export's directory
    (assets: what the task ships beside it, such as tokenizer.json); ValueError when the module does not fit."""

    name: str
    write: Writer
    summary: str


FORMATS: Registry[ExportFormat] = Registry("export format")


def register_format(fmt: ExportFormat) -> ExportFormat:
    """Make `--format NAME` write `fmt` (plugins may add their own)."""
    return FORMATS.add(fmt.name, fmt)


def write_formats(names: tuple[str, ...], module: nn.Module, directory: Path, assets: Mapping[str, bytes]) -> list[str]:
    """Every requested format into `directory`; a one-line UserError naming the format that cannot be written."""
    written: list[str] = []
    for name in names:
        fmt = FORMATS.get(name)
        try:
            written += fmt.write(module, directory, assets)
        except ValueError as exc:
            raise UserError(f"--format {name}: {exc}") from None
    return written


def _tokenizer_file(assets: Mapping[str, bytes], scratch: Path) -> Path:
    if "tokenizer.json" not in assets:
        raise ValueError("the export's task ships no tokenizer.json (only language models export to this format)")
    path = scratch / "tokenizer.json"
    path.write_bytes(assets["tokenizer.json"])
    return path


def _causal_lm(module: nn.Module) -> nn.Module:
    from nasengine.kernels.decoder import CausalLM

    if not isinstance(module, CausalLM):
        raise ValueError(f"a {type(module).__name__} is not a decoder language model (llama family)")
    return module


def _write_hf(module: nn.Module, directory: Path, assets: Mapping[str, bytes]) -> list[str]:
    from nasengine.supernets.llama_export import write_hf_directory

    with tempfile.TemporaryDirectory() as scratch:
        write_hf_directory(_causal_lm(module), _tokenizer_file(assets, Path(scratch)), directory / "hf")
    return ["hf/"]


def _gguf_writer(qtype: str, name: str) -> Writer:
    def write(module: nn.Module, directory: Path, assets: Mapping[str, bytes]) -> list[str]:
        from nasengine.supernets.llama_export import write_gguf

        with tempfile.TemporaryDirectory() as scratch:
            write_gguf(_causal_lm(module), _tokenizer_file(assets, Path(scratch)), directory / name, qtype)
        return [name]
    return write


register_format(ExportFormat("hf", _write_hf, "Hugging Face LLaMA directory (hf/): transformers loads it"))
register_format(ExportFormat("gguf", _gguf_writer("F16", "model.gguf"), "GGUF, F16 weights (model.gguf)"))
register_format(ExportFormat("gguf-q8_0", _gguf_writer("Q8_0", "model.q8_0.gguf"),
                             "GGUF, Q8_0 weights (model.q8_0.gguf)"))
