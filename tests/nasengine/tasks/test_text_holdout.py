"""Whole-sentence hold-out for phrase banks: a held-out sentence takes every row it contains out of training."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from nasengine.errors import UserError
from nasengine.tasks import open_data, task_from_spec
from nasengine.tasks.arrays import ArrayTaskOptions
from nasengine.tasks.text import phrase_groups
from tests.text_data import FILLER, NEGATIVE, POSITIVE, write_tiny_checkpoint


def test_phrase_groups_join_each_row_to_its_longest_container() -> None:
    texts = ["the film was good", "film was", "Good", "a dull plot", "dull", "was good and", "plot"]
    groups = phrase_groups(texts)
    assert groups.tolist() == [0, 0, 0, 3, 3, 5, 3]  # "was good and" is in no longer row: a sentence itself
    script = f"from nasengine.tasks.text import phrase_groups; print(phrase_groups({texts!r}).tolist())"
    for seed in ("1", "2"):  # the same in every process: no salted `hash`
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed})
        assert out.stdout.strip() == str(groups.tolist())


def write_phrase_bank(path: Path, sentences: int, seed: int = 0) -> Path:
    """SST-2-like rows: each sentence, then three of its contiguous sub-phrases, labelled as the sentence."""
    rng = random.Random(seed)
    rows = ["label\tsentence"]
    for i in range(sentences):
        label = i % 2
        words = [rng.choice(FILLER) for _ in range(5)] + [rng.choice(POSITIVE if label else NEGATIVE)]
        rng.shuffle(words)
        words += [f"id{i}"]  # a word no other sentence has: a row holding it is part of this sentence only
        rows.append(f"{label}\t{' '.join(words)}")
        for _ in range(3):
            start = rng.randrange(len(words) - 1)
            rows.append(f"{label}\t{' '.join(words[start:start + rng.randint(1, 3)])}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_sentence_holdout_keeps_no_part_of_a_held_out_sentence_in_training(tmp_path: Path) -> None:
    ckpt = write_tiny_checkpoint(tmp_path / "ckpt")
    bank = write_phrase_bank(tmp_path / "bank.tsv", 200)
    options = {"tokenizer": str(ckpt), "max_length": 12, "val_fraction": 0.1, "holdout": "sentence"}
    task = open_data(str(bank), options)
    texts = [line.split("\t")[1] for line in bank.read_text().splitlines()[1:]]
    sentence_rows = {i for i, t in enumerate(texts) if len(t.split()) == 7}
    marker = [next(w for w in t.split() if w.startswith("id")) if any(w.startswith("id") for w in t.split()) else None
              for t in texts]
    val, test, train = (set(task.rows[s].tolist()) for s in ("val", "test", "train"))
    assert len(val) == 20 and len(test) == 20  # 10 % of the 200 sentences each (test: no dev file given)
    assert (val | test) <= sentence_rows and not (val & test)
    held_markers = {marker[i] for i in val | test}
    trained_markers = {marker[i] for i in train} - {None}
    assert held_markers.isdisjoint(trained_markers)  # no sub-phrase of a held-out sentence is trained on
    sub_phrases_dropped = sum(1 for i, m in enumerate(marker) if m in held_markers) - 40
    assert len(train) == len(texts) - 40 - sub_phrases_dropped - sum(
        1 for i, t in enumerate(texts) if marker[i] is None and i not in train)
    labels = task.split("val").labels.tolist()
    assert labels.count(0) == labels.count(1)  # stratified by the sentences' labels
    rebuilt = task_from_spec(json.loads(json.dumps(task.spec)))
    assert rebuilt.split("val").labels.tolist() == labels and task.spec["split"]["holdout"] == "sentence"
    plain = open_data(str(bank), {k: v for k, v in options.items() if k != "holdout"})
    assert "holdout" not in plain.spec["split"]  # the row rule's spec (and old runs' identities) unchanged
    assert set(plain.rows["val"].tolist()) - sentence_rows  # the row rule holds out sub-phrases too
    with pytest.raises(UserError, match="--holdout must be one of"):
        open_data(str(bank), {**options, "holdout": "paragraph"})


def test_holdout_is_refused_for_image_data() -> None:
    with pytest.raises(ValueError, match="--holdout applies to text data only"):
        ArrayTaskOptions().with_overrides({"holdout": "sentence"})
