"""Text batches grouped by length: every sample once per epoch, far less padding, reproducible and resumable."""

from __future__ import annotations

import torch

from nasengine.tasks.base import EpochBatches, Split
from nasengine.kernels.inputs import trim_padding


def text_split(n: int = 2000, max_length: int = 48, seed: int = 0) -> Split:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, max_length + 1, (n,), generator=gen)
    mask = (torch.arange(max_length)[None, :] < lengths[:, None]).long()
    ids = torch.arange(n)[:, None].expand(n, max_length) * mask  # a sample's id in every position it uses
    return Split("train", {"input_ids": ids, "attention_mask": mask}, torch.arange(n) % 2, {}, collate=trim_padding)


def grouped(split: Split, batch_size: int = 32, seed: int = 0) -> EpochBatches:
    return EpochBatches(split, batch_size, seed, lengths=split.inputs["attention_mask"].sum(dim=1))


def epoch_ids(data: EpochBatches, epoch: int = 0) -> list[torch.Tensor]:
    return [x["input_ids"][:, 0] for x, _ in data.batches(epoch)]


def test_grouped_epoch_sees_each_sample_once_and_pads_far_less() -> None:
    split = text_split()
    data, plain = grouped(split), EpochBatches(split, 32, 0)
    ids = torch.cat(epoch_ids(data))
    assert len(ids) == data.steps_per_epoch * 32 == len(split) // 32 * 32
    assert len(torch.unique(ids)) == len(ids)
    padded = sum(x["input_ids"].numel() for x, _ in data.batches(0))
    plain_padded = sum(x["input_ids"].numel() for x, _ in plain.batches(0))
    used = int(split.inputs["attention_mask"][ids].sum())
    assert padded < 1.2 * used < plain_padded  # shuffled batches pad to their longest of 32 random lengths


def test_grouped_batches_are_shuffled_reproducible_and_differ_per_epoch() -> None:
    split = text_split()
    first, again = epoch_ids(grouped(split)), epoch_ids(grouped(split))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, epoch_ids(grouped(split), epoch=1)))
    longest = [int(split.inputs["attention_mask"][b].sum(1).max()) for b in first]
    assert longest != sorted(longest) and longest != sorted(longest, reverse=True)  # batch order is mixed


def test_grouped_batches_resume_mid_epoch_and_shard_like_one_process() -> None:
    split = text_split()
    data = grouped(split)
    full = epoch_ids(data)
    resumed = [x["input_ids"][:, 0] for x, _ in data.batches(0, start_step=5)]
    assert all(torch.equal(a, b) for a, b in zip(full[5:], resumed)) and len(resumed) == len(full) - 5
    wide = epoch_ids(grouped(split, batch_size=64))
    ranks = [epoch_ids(grouped(split, batch_size=32).shard(r, 2)) for r in range(2)]
    for step, batch in enumerate(wide):
        assert torch.equal(torch.cat([ranks[0][step], ranks[1][step]]), batch)


def test_lengths_must_match_the_split() -> None:
    import pytest

    with pytest.raises(ValueError, match="lengths"):
        EpochBatches(text_split(100), 8, 0, lengths=torch.ones(99))
