"""Named, typed model inputs: specs round-trip as JSON, example inputs follow them, batches slice every input."""

from __future__ import annotations

import torch

from nasengine.kernels.inputs import InputSpec, as_args, example_inputs, image_input, rows, specs_from_config, take, \
    to_numpy, trim_padding


def test_specs_round_trip_and_old_configs_read_as_one_image() -> None:
    specs = [InputSpec("input_ids", "int64", (16,), 100), InputSpec("attention_mask", "int64", (16,), 2)]
    assert specs_from_config({"inputs": [s.to_dict() for s in specs]}) == specs
    assert specs_from_config({"input_shape": [1, 8, 8]}) == image_input((1, 8, 8))


def test_example_inputs_have_the_declared_names_dtypes_and_shapes() -> None:
    image = example_inputs(image_input((1, 8, 8)), batch=3)
    assert isinstance(image, torch.Tensor) and image.shape == (3, 1, 8, 8)  # one image: a bare tensor
    text = example_inputs([InputSpec("input_ids", "int64", (5,), 9), InputSpec("attention_mask", "int64", (5,), 2)], 2)
    assert list(text) == ["input_ids", "attention_mask"] and text["input_ids"].dtype == torch.int64
    assert bool((text["attention_mask"] == 1).all())  # the whole declared length is attended
    assert [a.shape for a in as_args(text)] == [(2, 5), (2, 5)]
    assert {k: v.dtype.kind for k, v in to_numpy(text).items()} == {"input_ids": "i", "attention_mask": "i"}


def test_take_and_trim_padding() -> None:
    ids = torch.tensor([[2, 7, 3, 0, 0, 0], [2, 3, 0, 0, 0, 0], [2, 5, 6, 8, 3, 0]])
    batch = {"input_ids": ids, "attention_mask": (ids > 0).long()}
    first_two = take(batch, slice(0, 2))
    assert rows(first_two) == 2
    trimmed = trim_padding(first_two)
    assert trimmed["input_ids"].shape == (2, 3) and torch.equal(trimmed["input_ids"], ids[:2, :3])
    assert trim_padding(batch)["input_ids"].shape == (3, 5)
    images = torch.zeros(2, 1, 4, 4)
    assert trim_padding(images) is images
