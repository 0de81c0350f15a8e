"""A decoder language model through the same commands as every family: train llama from a (tiny, random) checkpoint on
plain text with the sorted recipe, search on perplexity and measured decode latency, take a nested member without
search, export to the engine's format, a transformers directory and GGUF, generate text, re-score in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.cli_helpers import run_cli
from tests.llama_data import SENTENCES, write_tiny_llama

TRAIN = ["--max-length", "16", "--epochs", "1", "--batch-size", "4", "--threads", "1", "--quiet"]


def corpus(directory: Path) -> tuple[Path, Path]:
    """train.txt (documents separated by blank lines) and dev.txt of the tokenizer's sentences."""
    directory.mkdir(parents=True, exist_ok=True)
    docs = [" ".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(3)) for i in range(40)]
    (directory / "train.txt").write_text("\n\n".join(docs) + "\n")
    (directory / "dev.txt").write_text("\n\n".join(docs[:6]) + "\n")
    return directory / "train.txt", directory / "dev.txt"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(checkpoint directory, sorted supernet trained on its text)."""
    root = tmp_path_factory.mktemp("llm")
    checkpoint = write_tiny_llama(root / "ckpt")
    train, dev = corpus(root / "text")
    from nasengine.cli.main import main

    code = main(["train", "llama", "--checkpoint", str(checkpoint), "--data", str(train), "--dev", str(dev),
                 "--recipe", "sorted", "--out", str(root / "sn"), *TRAIN])
    assert code == 0
    return checkpoint, root / "sn"


def test_training_records_a_language_model_task(trained: tuple[Path, Path]) -> None:
    _, sn = trained
    config = json.loads((sn / "config.json").read_text())
    assert config["task"]["kind"] == "causal_lm" and config["task"]["inputs"] == ["input_ids"]
    assert config["training"]["label_smoothing"] == 0.0  # the family's own: no smoothing over a vocabulary
    assert config["training"]["recipe"] == "sorted"
    final = config["final_accuracy"]["max"]  # a language model's summary names its perplexity
    assert final["test_perplexity"] > 1.0 and final["val_perplexity"] > 1.0


def test_search_on_perplexity_decode_latency_and_memory(trained: tuple[Path, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    _, sn = trained
    code, out, err = run_cli(capsys, "search", sn, "--out", tmp_path / "run", "--evals", "6", "--device",
                             "torch-cpu-1t", "--objectives", "perplexity,decode_ms,memory_mb", "--decode-cache", "8",
                             "--quiet")
    assert code == 0, err
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    for column in ("perplexity", "accuracy", "decode_ms:torch-cpu-1t", "latency_ms:torch-cpu-1t", "memory_mb"):
        assert column in results and (results[column] > 0).all(), column
    # memory = weights + the key/value cache, which grows with the active layers and groups
    assert (results["memory_mb"] > results["size_mb"]).all()
    inputs = results["decode_inputs:torch-cpu-1t"].iloc[0]
    assert "input_ids:int64[1,1]" in inputs and ",8," in inputs  # one token against a cache of 8 positions
    assert json.loads((tmp_path / "run" / "run.json").read_text())["identity"]["decode_cache"] == 8
    assert "Pareto subnets, perplexity " in out and ", decode " in out  # the summary gives the timing searched on


def test_layer_tables_predict_prefill_and_refuse_decode(trained: tuple[Path, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A lookup table profiles every decoder layer (the tied LM head included) and predicts prefill; decode latency
    needs a device that runs the model, and a search asking the table for it says so in one line."""
    _, sn = trained
    code, out, err = run_cli(capsys, "device", "profile", "torch-cpu-1t", sn, "--check", "4", "--quiet")
    assert code == 0, err
    layers = json.loads((sn / "latency_tables" / "torch-cpu-1t.json").read_text())
    assert len(layers["entries"]) >= 4 and all(ms > 0 for ms in layers["entries"].values())  # embed, norm, head, layers
    device = "lut:torch-cpu-1t"
    code, _, err = run_cli(capsys, "search", sn, "--out", tmp_path / "run", "--evals", "4", "--device", device,
                           "--objectives", "perplexity,latency_ms", "--quiet")
    assert code == 0, err
    assert (pd.read_csv(tmp_path / "run" / "results.csv")[f"latency_ms:{device}"] > 0).all()
    code, _, err = run_cli(capsys, "search", sn, "--out", tmp_path / "run2", "--evals", "4", "--device", device,
                           "--objectives", "perplexity,decode_ms", "--quiet")
    assert code == 2 and "devices that run models" in err and err.count("\n") == 1, err
    assert not (tmp_path / "run2").exists()


def test_nested_members_export_to_transformers_and_gguf_and_talk(trained: tuple[Path, Path], tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _, sn = trained
    code, _, err = run_cli(capsys, "search", sn, "--out", tmp_path / "run", "--strategy", "members", "--device",
                           "torch-cpu-1t", "--objectives", "perplexity,decode_ms", "--decode-cache", "8", "--quiet")
    assert code == 0, err
    assert len(pd.read_csv(tmp_path / "run" / "results.csv")) >= 2  # the sorted members only
    exp = tmp_path / "exp"
    code, out, err = run_cli(capsys, "export", tmp_path / "run", "--out", exp, "--format", "hf", "--format", "gguf")
    assert code == 0, err
    manifest = json.loads((exp / "manifest.json").read_text())
    assert manifest["formats"] == ["hf", "gguf"] and (exp / "model.gguf").is_file()
    assert manifest["perplexity"] > 1.0 and manifest["search_perplexity"] > 1.0
    # the shipped subnet's per-token decode latency, timed against the run's cache length
    assert manifest["decode_cache"] == 8 and manifest["phases"]["decode"]["ms"] > 0
    assert "decode:" in out and "perplexity" in out
    probe = ("import sys, torch, transformers, nasengine\n"
             "ours = nasengine.load_subnet(sys.argv[1])\n"
             "theirs = transformers.LlamaForCausalLM.from_pretrained(sys.argv[1] + '/hf').eval()\n"
             "ids = torch.tensor([[3, 7, 11, 5, 9]])\n"
             "with torch.no_grad():\n"
             "    print(float((ours(ids) - theirs(ids).logits).abs().max()))\n")
    result = subprocess.run([sys.executable, "-c", probe, str(exp)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout) <= 1e-4
    code, out, err = run_cli(capsys, "generate", exp, "--prompt", "the cat", "--max-tokens", "6")
    assert code == 0 and out.strip(), err
    code, again, _ = run_cli(capsys, "generate", exp, "--prompt", "the cat", "--max-tokens", "6")
    assert again == out  # greedy decoding is deterministic
    code, out, err = run_cli(capsys, "evaluate", exp)
    assert code == 0 and "perplexity" in out, err


def test_bad_language_model_text_is_one_line(trained: tuple[Path, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint, _ = trained
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\nnot json\n')
    code, _, err = run_cli(capsys, "train", "llama", "--checkpoint", checkpoint, "--data", tmp_path / "bad.jsonl",
                           "--out", tmp_path / "sn", *TRAIN)
    assert code == 2 and "bad.jsonl:2: not a JSON object" in err and not (tmp_path / "sn").exists()
    (tmp_path / "tiny.txt").write_text("too short")
    code, _, err = run_cli(capsys, "train", "llama", "--checkpoint", checkpoint, "--data", tmp_path / "tiny.txt",
                           "--out", tmp_path / "sn", *TRAIN)
    assert code == 2 and "too few" in err and not (tmp_path / "sn").exists()


def test_generate_refuses_what_is_not_an_exported_language_model(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "generate", tmp_path, "--prompt", "hello")
    assert code == 2 and err.startswith("nasengine: error: ") and err.count("\n") == 1


def test_bad_checkpoints_are_one_line_and_write_nothing(trained: tuple[Path, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A truncated GGUF, another architecture's config, a directory without its tokenizer: exit 2, one line."""
    import shutil

    checkpoint, _ = trained
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(b"GGUF\x03\x00\x00\x00" + (5).to_bytes(8, "little") + (3).to_bytes(8, "little") + b"\x07")
    other = tmp_path / "bert"
    shutil.copytree(checkpoint, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "bert",
                                                   "architectures": ["BertModel"]}))
    no_tokenizer = tmp_path / "no_tokenizer"
    shutil.copytree(checkpoint, no_tokenizer)
    (no_tokenizer / "tokenizer.json").unlink()
    train, _ = corpus(tmp_path / "text")
    for bad, message in ((truncated, "GGUF"), (other, "bert"), (no_tokenizer, "tokenizer")):
        code, _, err = run_cli(capsys, "train", "llama", "--checkpoint", bad, "--data", train, "--out",
                               tmp_path / "sn", *TRAIN)
        assert code == 2 and message in err and err.count("\n") == 1, err
        assert not (tmp_path / "sn").exists()
