"""Causal language modelling from plain-text or JSONL files: documents tokenised by the checkpoint's tokenizer, an
end-of-text token after each, packed into blocks of `max_length` + 1 tokens (the inputs are a block's first
`max_length` tokens, the targets the same shifted by one: next-token prediction on every position).

A `.txt` file holds documents separated by blank lines; a `.jsonl` file one JSON object per line with a `text`
field. Documents, not tokens, are split into train, validation and test (seeded), so no held-out text shares a
document with training; a `dev` file, when given, is the test split. Metrics: next-token accuracy and perplexity
(exp of the mean token cross-entropy). The spec records every file's SHA-256, so later commands rebuild the same
blocks or refuse.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from nasengine.errors import UserError
from nasengine.tasks.files import check_recorded_files, sha256_file
from nasengine.tasks.base import EpochBatches, Split, Task

KIND = "causal_lm"
SUFFIXES = (".txt", ".jsonl")
LM_OPTIONS = ("dev", "tokenizer", "max_length", "val_fraction", "test_fraction", "split_seed", "max_train")


def read_documents(path: Path) -> list[str]:
    """The documents of a .txt (separated by blank lines) or .jsonl file (a `text` field per line); UserError
    naming the file and line when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read it as UTF-8 text ({exc})") from None
    if path.suffix.lower() == ".jsonl":
        documents = []
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise UserError(f"{path}:{line_no}: not a JSON object") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise UserError(f"{path}:{line_no}: each line needs a string field `text`")
            documents.append(row["text"])
    else:
        documents = [part.strip() for part in text.split("\n\n")]
    documents = [d for d in documents if d.strip()]
    if not documents:
        raise UserError(f"{path}: no text")
    return documents


def load_tokenizer(source: Path) -> Any:
    """A `tokenizers.Tokenizer` from a checkpoint: a GGUF file (built from its own vocabulary and merges), a
    directory holding tokenizer.json, or a tokenizer.json file."""
    source = Path(source)
    if source.name == "tokenizer.json":
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(source))
    from nasengine.supernets.llama_import import read_tokenizer

    try:
        return read_tokenizer(source)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def end_of_text(tokenizer: Any) -> int:
    """The id appended after each document: the tokenizer's end-of-text token."""
    for token in ("<|endoftext|>", "</s>", "<|im_end|>", "<eos>"):
        index = tokenizer.token_to_id(token)
        if index is not None:
            return int(index)
    raise UserError("the tokenizer has no end-of-text token (<|endoftext|>, </s>, <|im_end|> or <eos>)")


@dataclass(frozen=True)
class LMSplit:
    """How a language-modelling task is read and split: `dev` (a text file scored as the test split, else a
    `test_fraction` of the documents is held out), tokens per block, the validation share of the documents, the
    seed, and `max_train` (training blocks kept, a seeded subset)."""

    dev: Path | None = None
    max_length: int = 128
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    split_seed: int = 0
    max_train: int | None = None


def pack(tokenizer: Any, documents: list[str], block: int, eos: int) -> np.ndarray:
    """The documents' tokens, an end-of-text after each, cut into rows of `block` + 1 tokens (the remainder
    dropped): (rows, block + 1) int64."""
    stream: list[int] = []
    for encoding in tokenizer.encode_batch(documents, add_special_tokens=False):
        stream += [*encoding.ids, eos]
    rows = len(stream) // (block + 1)
    return np.asarray(stream[: rows * (block + 1)], dtype=np.int64).reshape(rows, block + 1)


class CausalLMTask(Task):
    """Next-token prediction over packed blocks of text (see the module docstring)."""

    in_channels = 0
    language_model = True  # scored by next-token accuracy and perplexity

    def __init__(self, train: Path, tokenizer: Path, split: LMSplit = LMSplit(), name: str | None = None):
        if not 1 <= split.max_length <= 8192:
            raise UserError(f"--max-length must lie in 1..8192, got {split.max_length}")
        if not 0 < split.val_fraction < 0.5 or not 0 <= split.test_fraction < 0.5:
            raise UserError("--val-fraction must lie in (0, 0.5) and --test-fraction in [0, 0.5)")
        self.train_path = Path(train).resolve()
        self.dev_path = None if split.dev is None else Path(split.dev).resolve()
        self.tokenizer_path = Path(tokenizer).resolve()
        self.options, self.name = split, name or self.train_path.stem
        self.max_length = split.max_length
        self._files = {"train": str(self.train_path), "tokenizer": str(self._tokenizer_file())}
        if self.dev_path is not None:
            self._files["dev"] = str(self.dev_path)
        for key, path in self._files.items():
            if not Path(path).is_file():
                raise UserError(f"{path}: no such file (the {key} file)")
        self._sha256 = {k: sha256_file(Path(v)) for k, v in self._files.items()}
        self.tokenizer = load_tokenizer(self.tokenizer_path)
        self.eos = end_of_text(self.tokenizer)
        self.num_classes = int(self.tokenizer.get_vocab_size())
        self._build(read_documents(self.train_path), read_documents(self.dev_path) if self.dev_path else None)

    def _tokenizer_file(self) -> Path:
        path = self.tokenizer_path
        return path / "tokenizer.json" if path.is_dir() else path

    def _build(self, documents: list[str], dev: list[str] | None) -> None:
        """Documents split (seeded), packed into blocks per split; the splits' block counts and a digest of the
        document indices identify them."""
        rng = np.random.default_rng(self.options.split_seed)
        order = rng.permutation(len(documents))
        n_val = max(1, round(self.options.val_fraction * len(documents)))
        n_test = 0 if dev is not None else max(1, round(self.options.test_fraction * len(documents)))
        if len(documents) - n_val - n_test < 1:
            raise UserError(f"{self.train_path}: {len(documents)} documents are too few for a training, a validation "
                            f"and a test split (separate documents with blank lines, or give --dev)")
        parts = {"val": order[:n_val], "test": order[n_val: n_val + n_test], "train": order[n_val + n_test:]}
        texts = {name: [documents[i] for i in sorted(idx)] for name, idx in parts.items()}
        if dev is not None:
            texts["test"] = dev
        self._splits: dict[str, Split] = {}
        counts: dict[str, int] = {}
        for name, docs in texts.items():
            blocks = pack(self.tokenizer, docs, self.max_length, self.eos)
            if name == "train" and self.options.max_train is not None and self.options.max_train < len(blocks):
                keep = np.sort(np.random.default_rng(self.options.split_seed + 1).permutation(len(blocks))
                               [: self.options.max_train])
                blocks = blocks[keep]
            if len(blocks) == 0:
                raise UserError(f"the {name} split has fewer than {self.max_length + 1} tokens; lower --max-length "
                                f"or give more text")
            counts[name] = len(blocks)
            x, y = torch.from_numpy(blocks[:, :-1].copy()), torch.from_numpy(blocks[:, 1:].copy())
            self._splits[name] = Split(name, {"input_ids": x}, y, {"task": self.name, "split": name,
                                                                   "n": int(len(blocks)), "tokens": int(y.numel()),
                                                                   "vocab": self.num_classes})
        self.counts = counts
        self._indices_sha1 = hashlib.sha1(b"".join(parts[k].astype(np.int64).tobytes() for k in sorted(parts))
                                          ).hexdigest()

    @property
    def spec(self) -> dict[str, Any]:
        o = self.options
        return {"kind": KIND, "name": self.name, "path": str(self.train_path), "files": dict(self._files),
                "sha256": dict(self._sha256), "tokenizer": str(self.tokenizer_path), "max_length": self.max_length,
                "split": {"val_fraction": o.val_fraction, "test_fraction": o.test_fraction, "seed": o.split_seed,
                          "max_train": o.max_train, "indices_sha1": self._indices_sha1, "sizes": dict(self.counts)},
                "num_classes": self.num_classes, "end_of_text": self.eos, "input_shape": [self.max_length],
                "inputs": ["input_ids"]}

    def split(self, name: str) -> Split:
        if name not in self._splits:
            raise ValueError(f"unknown split {name!r}; known: {', '.join(self._splits)}")
        return self._splits[name]

    def train_data(self, batch_size: int, seed: int, augment: bool = True) -> EpochBatches:
        return EpochBatches(self.split("train"), batch_size, seed)

    @property
    def preprocessing(self) -> dict[str, Any]:
        """How text becomes model inputs: the tokenizer shipped beside an export, packed blocks of `max_length`."""
        return {"task": "causal language modelling", "tokenizer": "tokenizer.json", "max_length": self.max_length,
                "end_of_text": self.eos, "inputs": "input_ids: int64 (N, max_length); logits (N, max_length, vocab)"}

    def assets(self) -> dict[str, bytes]:
        return {"tokenizer.json": self.tokenizer.to_str().encode()}


def open_lm(path: Path, options: Mapping[str, Any] | None) -> CausalLMTask:
    """`--data TRAIN.txt|TRAIN.jsonl` with the checkpoint's tokenizer and the split options."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(LM_OPTIONS) - {"augment", "image_size"})
    if unknown:
        raise UserError(f"language-modelling data takes no option {unknown[0]!r}")
    tokenizer = options.get("tokenizer")
    if tokenizer is None:
        raise UserError(f"--data {path}: language-modelling text needs a tokenizer (train llama takes it from "
                        f"--checkpoint)")
    split = LMSplit(None if options.get("dev") is None else Path(options["dev"]), int(options.get("max_length", 128)),
                    float(options.get("val_fraction", 0.05)), float(options.get("test_fraction", 0.05)),
                    int(options.get("split_seed", 0)), options.get("max_train"))
    return CausalLMTask(path, Path(tokenizer), split)


def lm_from_spec(spec: Mapping[str, Any]) -> CausalLMTask:
    """Rebuild a language-modelling task from its spec; UserError when a file is missing or changed since."""
    try:
        files, rule = dict(spec["files"]), dict(spec["split"])
        check_recorded_files(files, spec["sha256"])
        split = LMSplit(Path(files["dev"]) if "dev" in files else None, int(spec["max_length"]),
                        float(rule["val_fraction"]), float(rule["test_fraction"]), int(rule["seed"]),
                        rule.get("max_train"))
        task = CausalLMTask(Path(files["train"]), Path(spec["tokenizer"]), split, str(spec["name"]))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError(f"malformed language-modelling task spec ({type(exc).__name__}: {exc})") from None
    if task._indices_sha1 != rule["indices_sha1"]:
        raise UserError("data splits differ from the ones recorded at training time (retrain on this data)")
    return task
