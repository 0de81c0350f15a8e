"""Model inputs as data: named, typed inputs (`InputSpec`), batches of them, and input transforms.

A model's inputs are either one float tensor (images) or a dict of named tensors (token ids and an attention
mask for text). Everything that moves inputs around (splits, training, evaluation, devices, export) goes
through the helpers here, so no path assumes one float tensor. Models take their inputs positionally, in
the order they are declared: `model(*as_args(inputs))`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

Inputs = Union[torch.Tensor, Mapping[str, torch.Tensor]]
SINGLE_INPUT = "input"  # the name of a model's only input (an image batch)
_DTYPES = {"float32": torch.float32, "int64": torch.int64}


@dataclass(frozen=True)
class InputSpec:
    """One named model input: dtype (float32 | int64), shape without the batch dimension, and for integer
    inputs the exclusive upper bound of valid values (a vocabulary size; 2 for a 0/1 mask)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    high: int | None = None

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise ValueError(f"input {self.name!r}: dtype must be one of {sorted(_DTYPES)}, got {self.dtype!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape),
                **({"high": self.high} if self.high is not None else {})}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "InputSpec":
        return cls(str(data["name"]), str(data["dtype"]), tuple(int(s) for s in data["shape"]),
                   None if data.get("high") is None else int(data["high"]))

    def describe(self, batch: int) -> str:
        return f"{self.name}:{self.dtype}[{','.join(map(str, (batch, *self.shape)))}]"


def image_input(shape: Sequence[int]) -> list[InputSpec]:
    """The input list of a model that takes one float image batch of `shape` (no batch dimension)."""
    return [InputSpec(SINGLE_INPUT, "float32", tuple(int(s) for s in shape))]


def specs_from_config(config: Mapping[str, Any]) -> list[InputSpec]:
    """The inputs an exported subnet's config records (`inputs`; older exports: one float `input_shape`)."""
    if "inputs" in config:
        return [InputSpec.from_dict(d) for d in config["inputs"]]
    return image_input(config["input_shape"])


def example_inputs(specs: Sequence[InputSpec], batch: int = 1, seed: int = 0) -> Inputs:
    """Deterministic inputs for `specs`: standard-normal floats; integers are all ones (a valid token id of any
    vocabulary and an all-attending mask), so every sample has the declared, full sequence length."""
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for spec in specs:
        shape = (batch, *spec.shape)
        if spec.dtype == "float32":
            out[spec.name] = torch.randn(shape, generator=gen)
        else:
            out[spec.name] = torch.ones(shape, dtype=_DTYPES[spec.dtype])
    return pack(out)


def pack(named: Mapping[str, torch.Tensor]) -> Inputs:
    """A lone input named `input` as a bare tensor, anything else as a dict (the two forms models take)."""
    if len(named) == 1 and SINGLE_INPUT in named:
        return named[SINGLE_INPUT]
    return dict(named)


def named(inputs: Inputs) -> dict[str, torch.Tensor]:
    """Inputs as a dict of named tensors."""
    if isinstance(inputs, torch.Tensor):
        return {SINGLE_INPUT: inputs}
    return dict(inputs)


def as_args(inputs: Inputs) -> tuple[torch.Tensor, ...]:
    """Positional arguments of a model call, in declared order."""
    return (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs.values())


def rows(inputs: Inputs) -> int:
    """How many samples a batch of inputs holds."""
    return int(next(iter(named(inputs).values())).shape[0])


def take(inputs: Inputs, index: Any) -> Inputs:
    """The samples `index` (a slice or an index tensor) of every input."""
    if isinstance(inputs, torch.Tensor):
        return inputs[index]
    return {k: v[index] for k, v in inputs.items()}


def to_device(inputs: Inputs, device: torch.device | str) -> Inputs:
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device)
    return {k: v.to(device) for k, v in inputs.items()}


def to_numpy(inputs: Inputs) -> dict[str, np.ndarray]:
    """An onnxruntime feed: each input as a contiguous array of its dtype (floats as float32)."""
    feed = {}
    for name, value in named(inputs).items():
        array = value.detach().cpu().numpy()
        feed[name] = np.ascontiguousarray(array, dtype=np.float32 if array.dtype.kind == "f" else array.dtype)
    return feed


def trim_padding(inputs: Inputs) -> Inputs:
    """Drop the trailing sequence positions no sample of the batch attends to (dynamic padding): the same
    logits at a fraction of the cost for short sentences. Inputs without an `attention_mask` pass unchanged."""
    if isinstance(inputs, torch.Tensor) or "attention_mask" not in inputs:
        return inputs
    mask = inputs["attention_mask"]
    used = mask.any(dim=0).nonzero()
    length = int(used.max()) + 1 if len(used) else 1
    if length == mask.shape[1]:
        return inputs
    return {k: v[:, :length] if v.dim() == 2 and v.shape[1] == mask.shape[1] else v for k, v in inputs.items()}


def resize_images(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of an (N, C, H, W) batch to `size` (align_corners=False); identity when already there."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def apply_input_transform(x: Inputs, spec: dict) -> Inputs:
    """Apply a transform described as data (`{"resize": [h, w]}` or `{}`), as stored in exported configs."""
    unknown = set(spec) - {"resize"}
    if unknown:
        raise ValueError(f"unknown input transform {sorted(unknown)[0]!r}")
    if "resize" in spec:
        if not isinstance(x, torch.Tensor):
            raise ValueError("a resize transform applies to image inputs only")
        x = resize_images(x, tuple(spec["resize"]))
    return x
