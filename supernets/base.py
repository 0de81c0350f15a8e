"""The Supernet contract every family implements: a space, an active arch, extraction and a cost summary."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import Any, Mapping

import torch
from torch import nn

from nasengine.kernels.describe import LayerSpec
from nasengine.kernels.inputs import InputSpec, Inputs, apply_input_transform, example_inputs, image_input
from nasengine.kernels.fake_quant import quantizable_paths
from nasengine.kernels.static import check_static
from nasengine.kernels.trace import trace_layers
from nasengine.search_spaces.choices import Condition
from nasengine.search_spaces.quantization import QuantizableLayer
from nasengine.search_spaces.space import Arch, Space


@dataclass(frozen=True)
class Layer:
    """One unit of a subnet as it runs: its description, input shape (no batch) and, on request, a static module."""

    spec: LayerSpec
    input_shape: tuple[int, ...]
    module: nn.Module | None = None
    input_dtype: str = "float32"  # int64 for a layer that looks up token ids

    @property
    def inputs(self) -> list[InputSpec]:
        """The layer's one input as a device workload declares it."""
        return [InputSpec("input", self.input_dtype, self.input_shape)]


@dataclass(frozen=True)
class Cost:
    """Analytic size of one subnet: learnable parameters and multiply-accumulates at batch 1."""

    params: int
    macs: int


@dataclass(frozen=True)
class FamilyConfig:
    """Base of a family's constructor settings (a frozen dataclass of plain JSON values): the registry hands a
    builder only the keys its config declares, `--set KEY=JSON` overrides one, and unknown keys are refused."""

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]


class Supernet(nn.Module, ABC):
    """A weight-sharing network over `space`; `set_active(arch)` selects the subnet that `forward` runs.

    Subclasses build their layers from `nasengine.kernels` and implement `_activate`, `forward`, `input_shape`,
    `_export_active` and `config`; layer descriptions and costs are traced from the export unless a family
    overrides `_walk_active`. The arch dict is the only currency exchanged with the rest of the engine.
    """

    name: str = ""

    def __init__(self, space: Space):
        super().__init__()
        self.space = space
        self._active: Arch = space.max()

    # --- the active subnet ---------------------------------------------------------------------------
    @property
    def active_arch(self) -> Arch:
        return dict(self._active)

    def set_active(self, arch: Mapping[str, Any]) -> Arch:
        """Validate `arch` (ValueError naming the gene) and make it the subnet that forward runs."""
        canonical = self.space.validate(arch)
        self._activate(canonical)
        self._active = canonical
        return canonical

    @abstractmethod
    def _activate(self, arch: Arch) -> None:
        """Push the canonical arch's choices into the elastic layers."""

    # --- inputs ------------------------------------------------------------------------------------
    @abstractmethod
    def input_shape(self, arch: Mapping[str, Any]) -> tuple[int, ...]:
        """Shape of one sample of the subnet's first input (no batch dimension)."""

    def input_specs(self, arch: Mapping[str, Any]) -> list[InputSpec]:
        """The subnet's inputs by name, dtype and shape, in the order `forward` takes them; one float image
        unless a family declares others (token ids and an attention mask for text)."""
        return image_input(self.input_shape(arch))

    def input_transform(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        """How task inputs become this arch's inputs, as data (e.g. `{"resize": [r, r]}`); exported with the subnet."""
        return {}

    def adapt_input(self, x: Inputs, arch: Mapping[str, Any]) -> Inputs:
        """Apply `input_transform(arch)` to a batch of task inputs."""
        return apply_input_transform(x, self.input_transform(arch))

    def example_inputs(self, arch: Mapping[str, Any], batch: int = 1) -> Inputs:
        """Deterministic inputs of the declared names, dtypes and shapes for `arch` (see kernels.inputs)."""
        return example_inputs(self.input_specs(self.space.validate(arch)), batch)

    def example_input(self, arch: Mapping[str, Any], batch: int = 1) -> Inputs:
        """Alias of `example_inputs` (one tensor for single-input families)."""
        return self.example_inputs(arch, batch)

    # --- static subnets and costs ------------------------------------------------------------------
    @abstractmethod
    def _export_active(self) -> nn.Module:
        """Static module (kernels.static vocabulary) holding copies of the active subnet's weights."""

    @torch.no_grad()
    def static_active(self) -> nn.Module:
        """`_export_active()` without touching the caller's torch random state (building static modules runs
        their random initialisation, which the copied weights then replace)."""
        with torch.random.fork_rng(devices=[]):
            return self._export_active()

    @torch.no_grad()
    def extract(self, arch: Mapping[str, Any]) -> nn.Module:
        """A standalone static module of `arch` in eval mode; the supernet's active arch is restored."""
        previous = self._active
        self.set_active(arch)
        try:
            module = self.static_active()
        finally:
            self.set_active(previous)
        return module.eval()

    def phases(self, arch: Mapping[str, Any], cache_tokens: int) -> dict[str, tuple[Any, list[InputSpec]]]:
        """Latencies devices measure for `arch` besides one forward pass over its inputs, by metric stem: name ->
        (build() of the module to time, its inputs). A decoder adds "decode": one token against a key/value cache
        of `cache_tokens` positions (recorded as `decode_ms:<device>`). Families of one pass add nothing."""
        return {}

    def cache_bytes(self, arch: Mapping[str, Any], cache_tokens: int) -> int:
        """Bytes of state `arch` keeps per `cache_tokens` positions at inference (a decoder's key/value cache, in
        float32): part of the `memory_mb` metric beside the weights. Zero for families that keep none."""
        return 0

    def check_export(self) -> None:
        """TypeError naming the first module of the largest or smallest subnet's export that the engine cannot
        handle (outside the static vocabulary, or holding weights without a cost or quantization rule; see
        kernels.static.check_static): a family is refused before it trains, not when its first subnet exports."""
        for arch in (self.space.max(), self.space.min()):
            check_static(self.extract(arch))

    @torch.no_grad()
    def _walk_active(self, export: bool) -> list[Layer]:
        """The active subnet's layers in execution order; with `export`, each with its static module.

        Derived by tracing `_export_active()` on a batch-1 example (see kernels.trace); families may override it.
        """
        module = self.static_active().eval()
        traced = trace_layers(module, self.example_inputs(self._active, 1))
        return [Layer(t.spec, t.input_shape, t.module if export else None, t.input_dtype) for t in traced]

    def describe(self, arch: Mapping[str, Any]) -> list[LayerSpec]:
        """The subnet's layers and their ops as data, for costs and per-op latency tables."""
        return [layer.spec for layer in self._with_active(arch, export=False)]

    @torch.no_grad()
    def layer_modules(self, arch: Mapping[str, Any]) -> list[Layer]:
        """Each layer of `arch` as a standalone static module with its input shape (per-layer profiling)."""
        return [Layer(layer.spec, layer.input_shape, layer.module.eval(), layer.input_dtype)  # type: ignore[union-attr]
                for layer in self._with_active(arch, export=True)]

    def _with_active(self, arch: Mapping[str, Any], export: bool) -> list[Layer]:
        previous = self._active
        self.set_active(arch)
        try:
            return self._walk_active(export)
        finally:
            self.set_active(previous)

    @torch.no_grad()
    def quantizable_layers(self, probes: int = 8) -> list[QuantizableLayer]:
        """The layers of exported subnets that hold weights (by module path, the prefix of their ONNX nodes), each
        with the condition under which it exists, so a precision gene per layer is active exactly when its layer is.

        Derived from the exports: a layer's presence is probed against one unconditional gene at a time and then
        checked on `probes` random archs; a family whose layers depend on several genes at once overrides this.
        """
        cached = self.__dict__.get("_quantizable_layers")
        if cached is not None and cached[0] == probes:
            return list(cached[1])
        previous = self._active
        try:
            layers = _infer_layer_conditions(self, probes)
        finally:
            self.set_active(previous)
        self.__dict__["_quantizable_layers"] = (probes, tuple(layers))  # the space never changes: derive once
        return layers

    def cost(self, arch: Mapping[str, Any]) -> Cost:
        layers = self.describe(arch)
        return Cost(params=sum(layer.params for layer in layers), macs=sum(layer.macs for layer in layers))

    # --- persistence ----------------------------------------------------------------------------------
    @property
    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON constructor arguments; `nasengine.supernets.create(self.name, **self.config)` rebuilds this supernet."""

    def prepare_phase(self, tags: set[str]) -> None:
        """Hook called by training recipes when the elastic dimensions in `tags` are switched on."""


def _weight_layers(net: Supernet, arch: Mapping[str, Any]) -> list[str]:
    """Module paths of the layers of `arch`'s export that hold a conv or linear weight."""
    net.set_active(arch)
    return quantizable_paths(net.static_active())


def _infer_layer_conditions(net: Supernet, probes: int) -> list[QuantizableLayer]:
    space = net.space
    base = space.max()
    order = _weight_layers(net, base)
    present_in_base = set(order)
    absent: dict[str, dict[str, list[Any]]] = {}  # path -> gene -> values where presence differs from the base
    values_seen: dict[str, list[Any]] = {}
    for gene in space.genes:
        if gene.active_if is not None or len(gene) < 2:
            continue
        values_seen[gene.name] = list(gene.options)
        for value in gene.options:
            paths = _weight_layers(net, {**base, gene.name: value})
            order += [p for p in paths if p not in order]
            for path in set(order):
                if (path in paths) != (path in present_in_base):
                    absent.setdefault(path, {}).setdefault(gene.name, []).append(value)
    layers = []
    for path in order:
        varying = absent.get(path, {})
        if len(varying) > 1:
            raise ValueError(f"layer {path!r} of {type(net).__name__} exists under a combination of genes "
                             f"({', '.join(varying)}); the family must override quantizable_layers")
        condition = None
        if varying:
            gene, changed = next(iter(varying.items()))
            present = [v for v in values_seen[gene] if (v in changed) != (path in present_in_base)]
            condition = Condition(gene, "in", tuple(present))
        layers.append(QuantizableLayer(path, condition))
    for seed in range(probes):
        arch = space.sample(seed=seed)
        paths = set(_weight_layers(net, arch))
        expected = {layer.path for layer in layers if layer.active_if is None or layer.active_if.holds(arch)}
        if paths != expected:
            raise ValueError(f"the layers of {type(net).__name__} do not follow single genes (arch {arch} has "
                             f"{sorted(paths ^ expected)} unexpectedly); the family must override quantizable_layers")
    return layers
