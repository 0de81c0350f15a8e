"""Per-layer latency lookup tables: time every distinct layer of a supernet once on a device, then predict a
subnet's latency as the sum over its layers (OFA's and FBNet's approach), calibrated on a few end-to-end runs.

Layers are keyed by their description (kernels.describe.LayerSpec without its name), so two blocks with the
same shapes share one entry. A table is JSON and serves as the `lut` device backend.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from nasengine.kernels.describe import LayerSpec, OpSpec
from nasengine.measurement.devices.base import Device, Workload
from nasengine.search_spaces.choices import Choice
from nasengine.search_spaces.space import Arch, Space
from nasengine.search_spaces.storage import atomic_write

FORMAT = "nasengine-latency-table"


def signature_key(spec: LayerSpec) -> str:
    """Stable identity of what a layer computes (kind and ops with shapes), independent of its name."""
    try:
        return _cached_key(spec.kind, spec.ops)
    except TypeError:  # an op carries an unhashable extra value: no memo
        return _text_key(spec.kind, spec.ops)


def _text_key(kind: str, ops: tuple[OpSpec, ...]) -> str:
    text = json.dumps([kind, [op.to_dict() for op in ops]], sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:20]


@functools.lru_cache(maxsize=1 << 16)
def _cached_key(kind: str, ops: tuple[OpSpec, ...]) -> str:
    """Memo of _text_key (hashing the frozen specs is far cheaper than serialising them): coverage analysis
    and table lookups key the same few thousand layers many times."""
    return _text_key(kind, ops)


@dataclass
class LatencyTable:
    """Per-layer latencies (ms, per-call overhead removed) and a linear calibration of their sum."""

    device: str
    device_settings: dict[str, Any]
    supernet: str
    overhead_ms: float
    entries: dict[str, float] = field(default_factory=dict)
    spreads: dict[str, float] = field(default_factory=dict)
    scale: float = 1.0
    offset_ms: float = 0.0
    quality: dict[str, Any] = field(default_factory=dict)
    # quantized tables: per layer, ms of quantizing its input and of dequantizing its output, which a lone layer pays
    # and a chain of quantized layers pays once at each end; `entries` then hold the layer without them
    boundaries: dict[str, list[float]] = field(default_factory=dict)

    def missing(self, layers: Sequence[LayerSpec]) -> list[str]:
        return [layer.name for layer in layers if signature_key(layer) not in self.entries]

    def raw_sum(self, layers: Sequence[LayerSpec]) -> float:
        """One call's overhead plus each layer's own cost (and, for a quantized table, converting the first layer's
        input and the last layer's output once)."""
        missing = self.missing(layers)
        if missing:
            raise ValueError(f"latency table for {self.device} has no entry for layer(s) {', '.join(missing[:3])}; "
                             "profile the device again for this supernet")
        ends = (self.boundary(layers[0])[0] + self.boundary(layers[-1])[1]) if layers else 0.0
        return self.overhead_ms + sum(self.entries[signature_key(layer)] for layer in layers) + ends

    def boundary(self, layer: LayerSpec) -> tuple[float, float]:
        """(ms to quantize the layer's input, ms to dequantize its output) in a quantized table, else zeros."""
        quantize, dequantize = self.boundaries.get(signature_key(layer), (0.0, 0.0))
        return float(quantize), float(dequantize)

    @property
    def fit(self) -> str:
        """Which calibration is in force: `affine` (scale and offset) or `ratio` (scale alone)."""
        return "affine" if self.offset_ms else "ratio"

    def predict(self, layers: Sequence[LayerSpec]) -> float:
        return max(self.scale * self.raw_sum(layers) + self.offset_ms, 1e-6)

    def calibrate(self, layer_lists: Sequence[Sequence[LayerSpec]], measured_ms: Sequence[float]) -> dict[str, Any]:
        """Fit the table's sum to end-to-end measurements, `scale * sum + offset` or `scale * sum` alone,
        whichever predicts each measurement better when fitted without it (leave-one-out, relative error),
        and record the error before and after (MAPE, Kendall tau).

        With few subnets of nearly equal cost an offset fits noise and extrapolates wildly; leave-one-out
        picks the plain ratio then, and the offset once the measurements span enough range to pin it."""
        from nasengine.predictors.metrics import kendall_tau, mape

        raw = np.array([self.raw_sum(layers) for layers in layer_lists])
        y = np.asarray(measured_ms, dtype=float)
        self.scale, self.offset_ms = _choose_linear_fit(raw, y)
        calibrated = np.array([self.predict(layers) for layers in layer_lists])
        self.quality = {"n": int(len(y)), "mape_raw": mape(y, raw), "mape_calibrated": mape(y, calibrated),
                        "kendall_tau": kendall_tau(y, raw)}
        return self.quality

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    def save(self, path: Path) -> None:
        atomic_write(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: Path) -> "LatencyTable":
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
            raise ValueError(f"{path} is not a nasengine latency table")
        try:
            table = cls(**data)
        except TypeError as exc:
            raise ValueError(f"{path} is not a nasengine latency table ({exc})") from None
        bad = [k for k, v in table.entries.items() if not isinstance(v, (int, float)) or not 0 <= v < float("inf")]
        if bad:
            raise ValueError(f"{path}: entry {bad[0]} is not a latency >= 0 ms; profile the device again")
        return table


Describe = Callable[[Arch], Sequence[LayerSpec]]


class Requirement(NamedTuple):
    """A layer to cover: the gene values it needs (`pins`) on top of an arch in which it exists (`anchor`)."""

    layer: str
    pins: dict[str, Any]
    anchor: Arch


@dataclass
class LayerDeps:
    """What one layer (by name) depends on, learnt from single-gene changes around full archs.

    `anchor` is a full assignment (every gene valued, inactive ones too) in which the layer exists; `shape`
    holds the genes whose change alters its signature, `presence` those whose change removes it.
    """

    anchor: Arch
    shape: set[str] = field(default_factory=set)
    presence: set[str] = field(default_factory=set)


class _Describer:
    """describe() by full assignment, memoised on the canonical key: layer name -> signature."""

    def __init__(self, space: Space, describe: Describe):
        self.space, self.describe = space, describe
        self._cache: dict[str, dict[str, str]] = {}

    def __call__(self, full: Arch) -> dict[str, str]:
        arch = self.space.validate(full)
        key = self.space.key(arch)
        if key not in self._cache:
            self._cache[key] = {spec.name: signature_key(spec) for spec in self.describe(arch)}
        return self._cache[key]


def _dependents(space: Space) -> dict[str, list[Choice]]:
    """Controlling gene -> the genes active only under a condition on it."""
    out: dict[str, list[Choice]] = {}
    for gene in space.genes:
        if gene.active_if is not None:
            out.setdefault(gene.active_if.gene, []).append(gene)
    return out


def _activate_all(space: Space, full: Arch, rng: np.random.Generator) -> Arch:
    """`full` with each controlling gene moved (if needed) to an option that activates most of its dependents,
    so a base arch shows as many layers and genes as the space allows."""
    out = dict(full)
    for name, deps in _dependents(space).items():
        options = space.gene(name).options
        counts = [sum(d.active_if.holds({name: v}) for d in deps) for v in options]  # type: ignore[union-attr]
        best = [v for v, c in zip(options, counts) if c == max(counts)]
        if out[name] not in best:
            out[name] = best[int(rng.integers(len(best)))]
    return out


def _bases(space: Space, n_random: int, rng: np.random.Generator) -> list[Arch]:
    """The max arch and `n_random` random ones, as full assignments with all genes active where possible."""
    fulls = [{g.name: g.options[-1] for g in space.genes}]
    fulls += [{g.name: g.options[int(rng.integers(len(g)))] for g in space.genes} for _ in range(n_random)]
    return [_activate_all(space, f, rng) for f in fulls]


def layer_dependencies(space: Space, describe: Describe, n_random: int = 3, seed: int = 0,
                       max_bases: int = 32) -> dict[str, LayerDeps]:
    """For every layer name, the genes its signature and its presence depend on: each gene is set to each of
    its other options around several base archs. A layer met only after a change becomes a base itself (up to
    `max_bases`), so layers that no base shows are analysed too."""
    rng = np.random.default_rng(seed)
    look = _Describer(space, describe)
    queue = _bases(space, n_random, rng)
    deps: dict[str, LayerDeps] = {}
    done = 0
    while done < len(queue):
        base = queue[done]
        done += 1
        sigs = look(base)
        for name in sigs:
            deps.setdefault(name, LayerDeps(base))
        canonical = space.validate(base)
        for gene in space.genes:
            if canonical[gene.name] is None:
                continue  # changing an inactive gene changes nothing
            for option in gene.options:
                if option == base[gene.name]:
                    continue
                changed = {**base, gene.name: option}
                other = look(changed)
                for name, sig in sigs.items():
                    if name not in other:
                        deps[name].presence.add(gene.name)
                    elif other[name] != sig:
                        deps[name].shape.add(gene.name)
                for name in [n for n in other if n not in deps]:  # in layer order: deterministic anchors
                    deps[name] = LayerDeps(changed)
                    if len(queue) < max_bases:
                        queue.append(changed)
    return deps


def _combos(options: list[tuple[Any, ...]], cap: int, rng: np.random.Generator) -> list[tuple[Any, ...]]:
    """Every combination of `options`, or `cap` distinct random ones when there are more."""
    total = math.prod(len(o) for o in options)
    if total <= cap:
        return list(itertools.product(*options))
    seen: dict[tuple[int, ...], None] = {}
    for _ in range(8 * cap):
        seen.setdefault(tuple(int(rng.integers(len(o))) for o in options))
        if len(seen) >= cap:
            break
    return [tuple(o[i] for o, i in zip(options, idx)) for idx in seen]


def layer_requirements(space: Space, deps: dict[str, LayerDeps], cap: int = 2000,
                       seed: int = 0) -> list[Requirement]:
    """A requirement for every combination of the options of the genes shaping each layer
    (sampled down to `cap` per layer); the genes it needs to exist, and the controllers of its shaping genes,
    stay pinned at the anchor's values. Layers with the most combinations come first."""
    rng = np.random.default_rng(seed)
    order = {g.name: i for i, g in enumerate(space.genes)}
    out = []
    for name, dep in sorted(deps.items(), key=lambda kv: -math.prod(len(space.gene(g)) for g in kv[1].shape)):
        shape = sorted(dep.shape, key=order.__getitem__)
        held = dep.presence | {g.active_if.gene for g in map(space.gene, shape) if g.active_if is not None}
        fixed = {g: dep.anchor[g] for g in held - dep.shape}
        for combo in _combos([space.gene(g).options for g in shape], cap, rng):
            out.append(Requirement(name, {**fixed, **dict(zip(shape, combo))}, dep.anchor))
    return out


def _pack(requirements: list[Requirement]) -> list[tuple[Arch, list[int]]]:
    """First-fit: put each requirement into the first arch whose pins agree with its own (layers shaped by
    unrelated genes share archs); returns (pins filled from the first requirement's anchor, requirement ids)."""
    bins: list[tuple[dict[str, Any], Arch, list[int]]] = []
    for i, (_, pins, anchor) in enumerate(requirements):
        for held, _, members in bins:
            if all(held.get(g, v) == v for g, v in pins.items()):
                held.update(pins)
                members.append(i)
                break
        else:
            bins.append((dict(pins), anchor, [i]))
    return [({**anchor, **held}, members) for held, anchor, members in bins]


def _tag_archs(space: Space, limit: int, rng: np.random.Generator) -> list[Arch]:
    """Each gene tag held at one option across the whole network, for every combination (sampled to `limit`)."""
    tags = sorted({g.tag for g in space.genes if g.tag})
    options = [space.genes_tagged(t)[0].options for t in tags]
    combos = list(itertools.product(*options))
    if len(combos) > limit:
        combos = [combos[i] for i in sorted(rng.choice(len(combos), limit, replace=False))]
    return [space.restrict(by_tag={t: [v] for t, v in zip(tags, combo)
                                   if all(v in g.options for g in space.genes_tagged(t))}).max()
            for combo in combos]


def coverage_archs(space: Space, describe: Describe, limit: int = 400, extra_random: int = 32, seed: int = 0,
                   n_random_bases: int = 3, per_layer: int = 2000) -> list[Arch]:
    """Archs whose layers together include every distinct layer of the space, for any supernet.

    A layer's shape may depend on genes far from it (a stage's first block takes its input width from the
    previous stage's width gene), so holding each tag at one value network-wide misses mixed cases. Instead:
    learn which genes shape (and enable) each layer, enumerate the product of those genes' options per layer
    (`per_layer` at most), and pack the resulting partial archs into few full ones. Tag-uniform archs
    (`limit` at most) and `extra_random` random archs are added as a safety net; duplicates are dropped.
    """
    rng = np.random.default_rng(seed)
    look = _Describer(space, describe)
    requirements = layer_requirements(space, layer_dependencies(space, describe, n_random_bases, seed),
                                      per_layer, seed)
    archs: list[Arch] = []
    for full, members in _pack(requirements):
        archs.append(space.validate(full))
        present = look(full)
        for i in members:  # packing moved a gene it should not have: keep that requirement's own arch
            need = requirements[i]
            if need.layer not in present:
                archs.append(space.validate({**need.anchor, **need.pins}))
    archs += _tag_archs(space, limit, rng) + [space.sample(rng=rng) for _ in range(extra_random)]
    unique: dict[str, Arch] = {}
    for arch in archs:
        unique.setdefault(space.key(arch), arch)
    return list(unique.values())


def _tiny_model() -> nn.Module:
    return nn.Identity()


def _conversion_graph(shape: Sequence[int]) -> bytes:
    """An ONNX graph that quantizes a float tensor of `shape` (batch first) to UINT8 and back: what a quantized
    layer pays at the start and end of a run of quantized layers."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    value = [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)) for name in ("x", "y")]
    model = helper.make_model(helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"], name="quantize"),
         helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"], name="dequantize")], "conversion",
        value[:1], value[1:], [numpy_helper.from_array(np.array(0.02, np.float32), "scale"),
                               numpy_helper.from_array(np.array(128, np.uint8), "zero")]),
        opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _conversion_ms(device: Device, shape: tuple[int, ...], overhead: float, cache: dict[tuple[int, ...], float]
                   ) -> float:
    """ms to quantize (or dequantize) a float tensor of `shape` on `device`: half a quantize-dequantize pair."""
    if shape not in cache:
        graph = _conversion_graph((1, *shape))
        m = device.measure(Workload({}, f"conversion{list(shape)}", _tiny_model, shape, dynamic_onnx=graph,
                                    policy={"conversion": "int8"}))
        cache[shape] = max(m.median_ms - overhead, 0.0) / 2
    return cache[shape]


def profile(supernet: Any, device: Device, archs: Sequence[Arch],
            on_layer: Callable[[int, int], None] | None = None) -> LatencyTable:
    """Time each distinct layer met in `archs` once on `device` (through its ordinary measure path)."""
    overhead = device.measure(Workload({}, "overhead", _tiny_model, (1,))).median_ms
    todo: dict[str, tuple[Arch, str]] = {}
    for arch in archs:
        for spec in supernet.describe(arch):
            todo.setdefault(signature_key(spec), (arch, spec.name))
    table = LatencyTable(device.name, device.config.settings, supernet.name, overhead)
    by_arch: dict[str, list[str]] = {}
    for key, (arch, name) in todo.items():
        by_arch.setdefault(supernet.space.key(arch), []).append(key)
    done = 0
    conversions: dict[tuple[int, ...], float] = {}
    for arch_key, keys in by_arch.items():
        arch = json.loads(arch_key)
        layers = {signature_key(layer.spec): layer for layer in supernet.layer_modules(arch)}
        for key in keys:
            layer = layers[key]
            m = device.measure(Workload({}, key, lambda module=layer.module: module, layer.inputs))
            table.entries[key] = max(m.median_ms - overhead, 0.0)
            table.spreads[key] = m.spread
            if device.precision == "int8" and layer.input_dtype == "float32":  # a lone INT8 layer converts its ends
                table.boundaries[key] = [_conversion_ms(device, shape, overhead, conversions)
                                         for shape in _end_shapes(layer)]
                table.entries[key] = max(table.entries[key] - sum(table.boundaries[key]), 0.0)
            done += 1
            if on_layer is not None:
                on_layer(done, len(todo))
    return table


@torch.no_grad()
def _end_shapes(layer: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(input shape, output shape) of a profiled layer, without the batch dimension."""
    example = torch.zeros((1, *layer.input_shape))
    return tuple(layer.input_shape), tuple(layer.module(example).shape[1:])


def _fit_ratio(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """`y ≈ scale * raw` minimising relative squared error."""
    relative = raw / y
    return (float(np.sum(relative) / np.sum(relative ** 2)) if len(y) else 1.0), 0.0


def _fit_affine(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """`y ≈ scale * raw + offset` minimising relative squared error; the ratio fit where the slope comes out
    non-positive or the system is underdetermined."""
    if len(y) < 2:
        return _fit_ratio(raw, y)
    weights = 1.0 / y  # relative residuals: small and large subnets count alike
    design = np.stack([raw, np.ones_like(raw)], axis=1) * weights[:, None]
    (scale, offset), *_ = np.linalg.lstsq(design, y * weights, rcond=None)
    if scale <= 0:
        return _fit_ratio(raw, y)
    return float(scale), float(offset)


def _loo_relative_error(fit: Callable[[np.ndarray, np.ndarray], tuple[float, float]], raw: np.ndarray,
                        y: np.ndarray) -> float:
    """Mean relative error of predicting each point from a fit on all the others."""
    errors = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        scale, offset = fit(raw[keep], y[keep])
        errors.append(abs(max(scale * raw[i] + offset, 1e-6) - y[i]) / y[i])
    return float(np.mean(errors))


def _choose_linear_fit(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The affine fit where it generalises better than the ratio (leave-one-out; needs 4 or more points),
    otherwise the ratio."""
    if len(y) < 4 or _loo_relative_error(_fit_affine, raw, y) >= _loo_relative_error(_fit_ratio, raw, y):
        return _fit_ratio(raw, y)
    return _fit_affine(raw, y)
