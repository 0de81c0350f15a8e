"""Text classification from TSV files: a header with a `label` column and one text column.

Sentences are tokenised once with the checkpoint's tokenizer (`tokenizer.json`, or a WordPiece `vocab.txt`;
the `tokenizers` package) into token ids and an attention mask of `max_length` positions. The training file
gives the train split and a stratified, seeded validation split; a `dev` file, when given, is the test split
(held out from training too otherwise). With `holdout="sentence"` the held-out splits are whole sentences: a
phrase bank such as SST-2's training file lists every sub-phrase of its sentences as a row of its own, and a
held-out row whose sub- or super-phrases are trained on is no test of generalisation, so a held-out sentence
takes every row it contains out of training with it. Batches drop the padding no sample needs
(`nasengine.kernels.inputs.trim_padding`),
and training batches group sentences of similar length so that little padding is left.
The spec records every file's SHA-256, so search and export rebuild the same splits or refuse.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from nasengine.kernels.inputs import trim_padding
from nasengine.errors import UserError
from nasengine.tasks.files import check_recorded_files, sha256_file
from nasengine.tasks.base import PREPROCESSING_SCHEMA, PREPROCESSING_VERSION, EpochBatches, Split, Task

KIND = "text_tsv"
TEXT_OPTIONS = ("dev", "tokenizer", "max_length", "val_fraction", "test_fraction", "split_seed", "max_train",
                "holdout")
HOLDOUT_UNITS = ("row", "sentence")
PHRASE_INDEX_WORDS = 128  # longer texts form their own group and are not searched for sub-phrases (cost ~ words²)


def read_tsv(path: Path) -> tuple[list[str], list[str]]:
    """(labels, texts) of a TSV with a header naming `label` and one text column; UserError naming the problem."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(reader, None)
            if header is None:
                raise UserError(f"{path} is empty")
            if "label" not in header or len(header) < 2:
                raise UserError(f"{path}: the header must name a `label` column and a text column, got {header}")
            label_at = header.index("label")
            text_at = next(i for i, name in enumerate(header) if i != label_at)
            labels, texts = [], []
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != len(header):
                    raise UserError(f"{path}:{line}: {len(row)} columns, the header has {len(header)}")
                labels.append(row[label_at].strip())
                texts.append(row[text_at])
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text") from None
    if not texts:
        raise UserError(f"{path} holds no rows")
    return labels, texts


def load_tokenizer(path: Path) -> Any:
    """A `tokenizers.Tokenizer` from a checkpoint directory (tokenizer.json, else vocab.txt) or a file."""
    from tokenizers import Tokenizer
    from tokenizers.implementations import BertWordPieceTokenizer

    path = Path(path)
    file = path / "tokenizer.json" if path.is_dir() else path
    if file.name == "tokenizer.json" and file.is_file():
        return Tokenizer.from_file(str(file))
    vocab = path / "vocab.txt" if path.is_dir() else path
    if vocab.is_file():
        return BertWordPieceTokenizer(str(vocab), lowercase=True)
    raise UserError(f"no tokenizer.json or vocab.txt in {path}")


def tokenizer_file(path: Path) -> Path:
    path = Path(path)
    if path.is_file():
        return path
    return path / "tokenizer.json" if (path / "tokenizer.json").is_file() else path / "vocab.txt"


def tokenize(tokenizer: Any, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """Token ids and attention masks, truncated and padded to `max_length` positions."""
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    encodings = tokenizer.encode_batch(texts)
    ids = np.zeros((len(texts), max_length), dtype=np.int64)
    mask = np.zeros((len(texts), max_length), dtype=np.int64)
    for row, enc in enumerate(encodings):
        n = len(enc.ids)
        ids[row, :n] = enc.ids
        mask[row, :n] = 1
    return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}


def text_preprocessing(tokenizer: str, max_length: int, classes: list[str]) -> dict[str, Any]:
    """The preprocessing contract of text (what `load_tokenizer` and `tokenize` do), for a tokenizer file name."""
    wordpiece, n = tokenizer != "tokenizer.json", int(max_length)
    return {"schema": PREPROCESSING_SCHEMA, "version": PREPROCESSING_VERSION, "kind": "text", "tokenizer": tokenizer,
            "tokenizer_format": "wordpiece-vocab" if wordpiece else "tokenizers-json",
            "load": ("tokenizers.implementations.BertWordPieceTokenizer(FILE, lowercase=True)" if wordpiece
                     else "tokenizers.Tokenizer.from_file(FILE)"),
            "max_length": n,
            "truncation": {"max_length": n, "includes_special_tokens": True,
                           "call": f"tokenizer.no_padding(); tokenizer.enable_truncation(max_length={n})"},
            "padding": {"length": n, "side": "right", "input_ids": 0, "attention_mask": 0},
            "inputs": [{"name": "input_ids", "dtype": "int64", "shape": [n], "value": "encoding.ids, then padding"},
                       {"name": "attention_mask", "dtype": "int64", "shape": [n],
                        "value": "1 for each token of encoding.ids, then padding"}],
            "classes": [str(c) for c in classes]}


def _stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) indices, `fraction` of every class held out, both in file order."""
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = int(round(len(members) * fraction))
        held.extend(rng.choice(members, size=k, replace=False).tolist() if k else [])
    held_arr = np.sort(np.asarray(held, dtype=np.int64))
    kept = np.setdiff1d(np.arange(len(labels)), held_arr)
    return kept, held_arr


def phrase_groups(texts: list[str]) -> np.ndarray:
    """Per row, the row index of its group's sentence: the longest text of the file that contains it word for
    word (case-insensitive), itself when none does. One pass from the longest text down, over a hash set of
    every contiguous word span of the sentences found so far (8-byte BLAKE2 digests: the same in every
    process, unlike `hash`, so a rebuilt task finds the same splits)."""
    words = [text.lower().split() for text in texts]
    owner_of_span: dict[bytes, int] = {}

    def key(span: list[str]) -> bytes:
        return hashlib.blake2b(" ".join(span).encode(), digest_size=8).digest()

    groups = np.empty(len(texts), dtype=np.int64)
    for row in sorted(range(len(texts)), key=lambda i: (-len(words[i]), i)):
        sentence = words[row]
        owner = owner_of_span.get(key(sentence))
        if owner is None:
            owner = row
            if len(sentence) <= PHRASE_INDEX_WORDS:
                for start in range(len(sentence)):
                    for stop in range(start + 1, len(sentence) + 1):
                        owner_of_span.setdefault(key(sentence[start:stop]), owner)
        groups[row] = owner
    return groups


def _sentence_holdout(labels: np.ndarray, groups: np.ndarray, candidates: np.ndarray, fraction: float,
                      seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) rows of `candidates`: `fraction` of the sentences among them (stratified by label) are
    held out, and every row of their groups leaves `kept`; held-out rows are the sentences alone."""
    candidate_set = np.zeros(len(groups), dtype=bool)
    candidate_set[candidates] = True
    sentences = np.flatnonzero((groups == np.arange(len(groups))) & candidate_set)
    _, held_at = _stratified_holdout(labels[sentences], fraction, seed)
    held = sentences[held_at]
    leaving = np.isin(groups, held)
    kept = candidates[~leaving[candidates]]
    return kept, held


@dataclass(frozen=True)
class TextSplit:
    """How a text task's rows are read and split: `dev` (a TSV scored as the test split, else a `test_fraction` is
    held out), tokens per row, the validation share, the seed, a stratified training subset, and whether single
    rows or whole sentences with all the rows they contain are held out."""

    dev: Path | None = None
    max_length: int = 64
    val_fraction: float = 0.02
    test_fraction: float = 0.1
    split_seed: int = 0
    max_train: int | None = None
    holdout: str = "row"


class TextTask(Task):
    """Sentence classification from TSV files (see the module docstring)."""

    in_channels = 0

    def __init__(self, train: Path, tokenizer: Path, split: TextSplit = TextSplit(), name: str | None = None):
        dev, max_length, val_fraction, test_fraction, split_seed, max_train, holdout = (
            split.dev, split.max_length, split.val_fraction, split.test_fraction, split.split_seed, split.max_train,
            split.holdout)
        self.train_path, self.dev_path = Path(train).resolve(), None if dev is None else Path(dev).resolve()
        self.tokenizer_path = tokenizer_file(Path(tokenizer)).resolve()
        if not 0 < max_length <= 4096:
            raise UserError(f"--max-length must lie in 1..4096, got {max_length}")
        if not 0 < val_fraction < 0.5:
            raise UserError(f"--val-fraction must lie in (0, 0.5), got {val_fraction}")
        if holdout not in HOLDOUT_UNITS:
            raise UserError(f"--holdout must be one of {', '.join(HOLDOUT_UNITS)}, got {holdout!r}")
        self.holdout = holdout
        for path in (self.train_path, self.dev_path, self.tokenizer_path):
            if path is not None and not path.is_file():
                raise UserError(f"{path}: no such file")
        self.max_length, self.val_fraction, self.test_fraction = (int(max_length), float(val_fraction),
                                                                  float(test_fraction))
        self.split_seed, self.max_train = int(split_seed), max_train
        self.name = name or self.train_path.stem
        self._files = {"train": str(self.train_path), "tokenizer": str(self.tokenizer_path)}
        if self.dev_path is not None:
            self._files["dev"] = str(self.dev_path)
        self._sha256 = {k: sha256_file(Path(v)) for k, v in self._files.items()}  # of the bytes read below
        labels, texts = read_tsv(self.train_path)
        dev = read_tsv(self.dev_path) if self.dev_path is not None else None
        self.classes = sorted(set(labels) | set(dev[0] if dev else []), key=lambda v: (len(v), v))
        index = {c: i for i, c in enumerate(self.classes)}
        self.num_classes = len(self.classes)
        if self.num_classes < 2:
            raise UserError(f"{self.train_path}: needs at least two labels, found {self.classes}")
        y = np.asarray([index[v] for v in labels], dtype=np.int64)
        test_share = self.test_fraction / (1 - self.val_fraction)
        if holdout == "sentence":
            groups = phrase_groups(texts)
            kept, val = _sentence_holdout(y, groups, np.arange(len(y)), self.val_fraction, self.split_seed)
            if dev is None:
                kept, test = _sentence_holdout(y, groups, kept, test_share, self.split_seed + 1)
        else:
            kept, val = _stratified_holdout(y, self.val_fraction, self.split_seed)
            if dev is None:
                sub, test = _stratified_holdout(y[kept], test_share, self.split_seed + 1)
                kept, test = kept[sub], kept[test]
        if len(kept) == 0 or len(val) == 0:
            raise UserError(f"{self.train_path}: the split rule leaves no training or no validation rows")
        if max_train is not None and max_train < len(kept):
            sub, _ = _stratified_holdout(y[kept], 1 - max_train / len(kept), self.split_seed + 2)
            kept = kept[sub]
        self._tokenizer = load_tokenizer(self.tokenizer_path)
        encoded = tokenize(self._tokenizer, texts, self.max_length)
        parts = {"train": kept, "val": val}
        if dev is None:
            parts["test"] = test
        self.rows = {k: v.copy() for k, v in parts.items()}  # each split's rows of the training file
        digest = hashlib.sha1(b"".join(np.asarray(parts[k], dtype=np.int64).tobytes() for k in sorted(parts)))
        self._indices_sha1 = digest.hexdigest()
        self._splits: dict[str, Split] = {}
        for split, idx in parts.items():
            t = torch.from_numpy(idx)
            self._splits[split] = self._make(split, {k: v[t] for k, v in encoded.items()}, torch.from_numpy(y[idx]))
        if dev is not None:
            dev_y = torch.tensor([index[v] for v in dev[0]], dtype=torch.int64)
            self._splits["test"] = self._make("test", tokenize(self._tokenizer, dev[1], self.max_length), dev_y)

    def _make(self, split: str, inputs: dict[str, torch.Tensor], labels: torch.Tensor) -> Split:
        return Split(split, inputs, labels, {"task": self.name, "split": split, "n": int(labels.shape[0]),
                                             "indices_sha1": self._indices_sha1}, collate=trim_padding)

    @property
    def spec(self) -> dict[str, Any]:
        return {"kind": KIND, "name": self.name, "path": str(self.train_path), "files": dict(self._files),
                "sha256": dict(self._sha256), "max_length": self.max_length,
                "split": {"val_fraction": self.val_fraction, "test_fraction": self.test_fraction,
                          "seed": self.split_seed, "max_train": self.max_train, "indices_sha1": self._indices_sha1,
                          **({"holdout": self.holdout} if self.holdout != "row" else {})},
                "classes": self.classes, "num_classes": self.num_classes, "input_shape": [self.max_length],
                "inputs": ["input_ids", "attention_mask"]}

    def split(self, name: str) -> Split:
        if name not in self._splits:
            raise ValueError(f"unknown split {name!r}; known: {', '.join(self._splits)}")
        return self._splits[name]

    def train_data(self, batch_size: int, seed: int, augment: bool = True) -> EpochBatches:
        train = self.split("train")  # batches of similar length: most padding is trimmed away
        return EpochBatches(train, batch_size, seed, lengths=train.inputs["attention_mask"].sum(dim=1))

    @property
    def preprocessing(self) -> dict[str, Any]:
        """The contract exports carry: the tokenizer file (shipped beside the export under this name), how it is
        loaded, truncation and padding to `max_length`, the inputs it yields and the class names."""
        return text_preprocessing(self.tokenizer_path.name, self.max_length, self.classes)

    def assets(self) -> dict[str, bytes]:
        return {self.tokenizer_path.name: self.tokenizer_path.read_bytes()}


def open_text(path: Path, options: Mapping[str, Any] | None) -> TextTask:
    """`--data TRAIN.tsv` with text options (dev file, tokenizer, max length, split rule)."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(TEXT_OPTIONS) - {"augment", "image_size"})
    if unknown:
        raise UserError(f"text data takes no option {unknown[0]!r}")
    tokenizer = options.get("tokenizer")
    if tokenizer is None:  # the default checkpoint's, when installed
        from nasengine.supernets.bert_import import default_checkpoint

        tokenizer = default_checkpoint()
    if tokenizer is None:
        raise UserError(f"--data {path}: text data needs a tokenizer (train bert takes it from --checkpoint)")
    split = TextSplit(None if options.get("dev") is None else Path(options["dev"]), int(options.get("max_length", 64)),
                      float(options.get("val_fraction", 0.02)), float(options.get("test_fraction", 0.1)),
                      int(options.get("split_seed", 0)), options.get("max_train"), str(options.get("holdout", "row")))
    return TextTask(path, Path(tokenizer), split)


def text_from_spec(spec: Mapping[str, Any]) -> TextTask:
    """Rebuild a text task from its spec; UserError when a file is missing or changed since."""
    try:
        files, rule = dict(spec["files"]), dict(spec["split"])
        check_recorded_files(files, spec["sha256"])
        split = TextSplit(Path(files["dev"]) if "dev" in files else None, int(spec["max_length"]),
                          float(rule["val_fraction"]), float(rule["test_fraction"]), int(rule["seed"]),
                          rule.get("max_train"), str(rule.get("holdout", "row")))
        task = TextTask(Path(files["train"]), Path(files["tokenizer"]), split, str(spec["name"]))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError(f"malformed text task spec ({type(exc).__name__}: {exc})") from None
    if task._indices_sha1 != rule["indices_sha1"]:
        raise UserError("data splits differ from the ones recorded at training time (retrain on this data)")
    return task
