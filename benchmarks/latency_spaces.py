"""Loaders for the shared HELP latency data (OFA MobileNetV3 and FBNet spaces): encodings, latencies, analytic MACs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from nasengine.kernels.describe import DESCRIPTORS, LayerSpec, OpSpec, cost_descriptors, total_macs

DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "latency"

# OFA MobileNetV3 w1.0 (ImageNet): per-stage output widths, strides and squeeze-excite flags.
OFA_WIDTHS = (24, 40, 80, 112, 160)
OFA_STRIDES = (2, 2, 2, 1, 2)
OFA_SE = (False, True, False, True, True)
OFA_MAX_DEPTH = 4
OFA_KS = (3, 5, 7)
OFA_E = (3, 4, 6)
OFA_D = (2, 3, 4)
OFA_R = (128, 224)

# FBNet (HW-NAS-Bench CIFAR-100 setting): layers per stage, widths, strides; ops as (kernel, expand, groups).
FBNET_LAYERS = (1, 4, 4, 4, 4, 4, 1)
FBNET_WIDTHS = (16, 24, 32, 64, 112, 184, 352)
FBNET_STRIDES = (1, 1, 2, 2, 1, 2, 1)
FBNET_OPS = ((3, 1, 1), (3, 1, 2), (3, 3, 1), (3, 6, 1), (5, 1, 1), (5, 1, 2), (5, 3, 1), (5, 6, 1), None)


class LatencySpace(NamedTuple):
    """One space's benchmark data: encodings, per-device latencies (ms), raw archs and analytic MACs."""

    X: np.ndarray
    latencies: dict[str, np.ndarray]
    archs: list[dict]
    macs: np.ndarray
    descriptors: np.ndarray  # (n, len(DESCRIPTORS)) from the archs' op descriptions

    def with_descriptors(self) -> np.ndarray:
        """The encoding followed by the cost descriptors (MetaLatencyPredictor(descriptors=len(DESCRIPTORS)))."""
        return np.hstack([self.X, self.descriptors])


def _make_divisible(v: float, divisor: int = 8) -> int:
    """Round channels the MobileNet way (nearest multiple of divisor, never below 90 % of v)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _down(h: int, stride: int) -> int:
    """Spatial size after a 'same'-padded conv with this stride."""
    return -(-h // stride)


def _conv_bn(c_in: int, c_out: int, h: int, k: int, stride: int, groups: int, act: str | None) -> list[OpSpec]:
    """A 'same' convolution, its batch norm and (optionally) its activation, as op descriptions."""
    h_out = _down(h, stride)
    ops = [OpSpec("conv2d", c_in, c_out, (h, h), (h_out, h_out), k, stride, groups),
           OpSpec("batchnorm2d", c_out, c_out, (h_out, h_out), (h_out, h_out))]
    return ops + ([OpSpec(act, c_out, c_out, (h_out, h_out), (h_out, h_out))] if act else [])


def _head(c_in: int, h: int, mid: int, classes: int, act: str, mix: int = 0) -> list[LayerSpec]:
    """Final 1x1 expansion, global pooling, an optional feature-mix linear layer (`mix` units) and classifier."""
    ops = _conv_bn(c_in, mid, h, 1, 1, 1, act) + [OpSpec("global_pool", mid, mid, (h, h), (1, 1))]
    if mix:
        ops += [OpSpec("linear", mid, mix), OpSpec(act, mix, mix)]
    return [LayerSpec("head", "head", tuple(ops + [OpSpec("linear", mix or mid, classes, bias=True)]))]


def ofa_layers(arch: dict) -> list[LayerSpec]:
    """Op descriptions of an OFA MobileNetV3 w1.0 subnet (stem, MBConv blocks with squeeze-excite, head)."""
    h = int(arch["r"])
    stem = _conv_bn(3, 16, h, 3, 2, 1, "hardswish")
    h = _down(h, 2)
    first = _conv_bn(16, 16, h, 3, 1, 16, "relu") + _conv_bn(16, 16, h, 1, 1, 1, None) + [
        OpSpec("add", 16, 16, (h, h), (h, h))]
    layers = [LayerSpec("stem", "stem", tuple(stem)), LayerSpec("first", "mbconv", tuple(first))]
    c_in = 16
    for s, (width, stride, se) in enumerate(zip(OFA_WIDTHS, OFA_STRIDES, OFA_SE)):
        act = "relu" if s < 2 else "hardswish"
        for i in range(int(arch["d"][s])):
            k, e = int(arch["ks"][s * OFA_MAX_DEPTH + i]), float(arch["e"][s * OFA_MAX_DEPTH + i])
            st = stride if i == 0 else 1
            mid = _make_divisible(round(c_in * e))
            h_out = _down(h, st)
            ops = _conv_bn(c_in, mid, h, 1, 1, 1, act) + _conv_bn(mid, mid, h, k, st, mid, act)
            if se:
                red = _make_divisible(mid // 4)
                ops += [OpSpec("global_pool", mid, mid, (h_out, h_out), (1, 1)), OpSpec("linear", mid, red, bias=True),
                        OpSpec("relu", red, red), OpSpec("linear", red, mid, bias=True),
                        OpSpec("hardsigmoid", mid, mid), OpSpec("mul", mid, mid, (h_out, h_out), (h_out, h_out))]
            ops += _conv_bn(mid, width, h_out, 1, 1, 1, None)
            if st == 1 and c_in == width:
                ops.append(OpSpec("add", width, width, (h_out, h_out), (h_out, h_out)))
            layers.append(LayerSpec(f"s{s}b{i}", "mbconv", tuple(ops)))
            c_in, h = width, h_out
    return layers + _head(c_in, h, 960, 1000, "hardswish", mix=1280)


def fbnet_layers(arch: dict) -> list[LayerSpec]:
    """Op descriptions of an HW-NAS-Bench FBNet CIFAR-100 network (32x32 input; skip = identity or a 1x1
    projection when the shape changes)."""
    h, c_in = 32, 16
    layers = [LayerSpec("stem", "stem", tuple(_conv_bn(3, 16, h, 3, 1, 1, "relu")))]
    layer = 0
    for n_layers, width, stride in zip(FBNET_LAYERS, FBNET_WIDTHS, FBNET_STRIDES):
        for i in range(n_layers):
            st = stride if i == 0 else 1
            h_out = _down(h, st)
            op = FBNET_OPS[int(arch["ops"][layer])]
            ops: list[OpSpec] = []
            if op is None:
                if st != 1 or c_in != width:
                    ops = _conv_bn(c_in, width, h, 1, st, 1, None)
            else:
                k, e, g = op
                mid = c_in * e
                ops = (_conv_bn(c_in, mid, h, 1, 1, g, "relu") + _conv_bn(mid, mid, h, k, st, mid, "relu")
                       + _conv_bn(mid, width, h_out, 1, 1, g, None))
                if st == 1 and c_in == width:
                    ops.append(OpSpec("add", width, width, (h_out, h_out), (h_out, h_out)))
            layers.append(LayerSpec(f"l{layer}", "block" if op else "skip", tuple(ops)))
            c_in, h, layer = width, h_out, layer + 1
    return layers + _head(c_in, h, 1504, 100, "relu")


def ofa_macs(arch: dict) -> float:
    """Multiply-accumulates of an OFA MobileNetV3 w1.0 subnet at its resolution (from its op descriptions)."""
    return float(total_macs(ofa_layers(arch)))


def fbnet_macs(arch: dict) -> float:
    """Multiply-accumulates of an HW-NAS-Bench FBNet CIFAR-100 network (32x32 input; from its op descriptions)."""
    return float(total_macs(fbnet_layers(arch)))


def descriptor_matrix(layers_of_archs: list[list[LayerSpec]]) -> np.ndarray:
    """The engine's hardware-agnostic cost descriptors of each arch (columns in DESCRIPTORS order)."""
    rows = [cost_descriptors(layers) for layers in layers_of_archs]
    return np.array([[row[name] for name in DESCRIPTORS] for row in rows], float)


def ofa_encode(arch: dict) -> np.ndarray:
    """One-hot kernel/expand per layer (inactive layers all-zero), one-hot depth per stage, scaled resolution."""
    n_stages = len(OFA_WIDTHS)
    layer_part = np.zeros((n_stages * OFA_MAX_DEPTH, len(OFA_KS) + len(OFA_E)))
    depth_part = np.zeros((n_stages, len(OFA_D)))
    for s in range(n_stages):
        d = int(arch["d"][s])
        depth_part[s, OFA_D.index(d)] = 1.0
        for i in range(d):
            j = s * OFA_MAX_DEPTH + i
            layer_part[j, OFA_KS.index(int(arch["ks"][j]))] = 1.0
            layer_part[j, len(OFA_KS) + OFA_E.index(int(arch["e"][j]))] = 1.0
    res = (float(arch["r"]) - OFA_R[0]) / (OFA_R[1] - OFA_R[0])
    return np.concatenate([layer_part.ravel(), depth_part.ravel(), [res]])


def fbnet_encode(arch: dict) -> np.ndarray:
    """One-hot of the op chosen at each of the 22 searchable layers."""
    ops = np.asarray(arch["ops"], int)
    onehot = np.zeros((len(ops), len(FBNET_OPS)))
    onehot[np.arange(len(ops)), ops] = 1.0
    return onehot.ravel()


def ofa_encode_int(arch: dict) -> np.ndarray:
    """Raw integer genes (kernel, expand per layer, 0 when inactive; depths; resolution): a non-one-hot check."""
    active = [i % OFA_MAX_DEPTH < int(arch["d"][i // OFA_MAX_DEPTH]) for i in range(len(arch["ks"]))]
    ks = [float(k) if a else 0.0 for k, a in zip(arch["ks"], active)]
    e = [float(x) if a else 0.0 for x, a in zip(arch["e"], active)]
    return np.asarray(ks + e + [float(d) for d in arch["d"]] + [float(arch["r"])])


def fbnet_encode_int(arch: dict) -> np.ndarray:
    """Raw op index per layer (0..8): a non-one-hot check."""
    return np.asarray(arch["ops"], float)


_SPACES = {"ofa": (ofa_encode, ofa_macs), "fbnet": (fbnet_encode, fbnet_macs)}
_LAYERS = {"ofa": ofa_layers, "fbnet": fbnet_layers}
_INT_ENCODERS = {"ofa": ofa_encode_int, "fbnet": fbnet_encode_int}


def load_space(
    name: str, root: Path | str | None = None, n_archs: int | None = None, encoding: str = "onehot"
) -> LatencySpace:
    """Read archs.jsonl + latency_ms.csv of one space and build encodings ('onehot' as specified for the
    benchmark, or 'int' raw genes) and MACs (first n_archs if given)."""
    if name not in _SPACES:
        raise ValueError(f"unknown space {name!r}; expected one of {sorted(_SPACES)}")
    if encoding not in ("onehot", "int"):
        raise ValueError(f"encoding must be 'onehot' or 'int'; got {encoding!r}")
    folder = Path(root or DATA_ROOT) / name
    if not folder.is_dir():
        raise FileNotFoundError(f"latency data folder {folder} is missing")
    encode, macs_of = _SPACES[name]
    if encoding == "int":
        encode = _INT_ENCODERS[name]
    with open(folder / "archs.jsonl", encoding="utf-8") as fh:
        archs = [json.loads(line) for line in fh if line.strip()]
    table = pd.read_csv(folder / "latency_ms.csv").set_index("arch_id").reindex(range(len(archs)))
    if n_archs is not None:
        archs, table = archs[:n_archs], table.iloc[:n_archs]
    X = np.stack([encode(a) for a in archs])
    lat = {str(c): table[c].to_numpy(float) for c in table.columns}
    macs = np.array([macs_of(a) for a in archs])
    return LatencySpace(X, lat, archs, macs, descriptor_matrix([_LAYERS[name](a) for a in archs]))


def reference_arch_ids(name: str, root: Path | str | None = None) -> np.ndarray:
    """HELP's 10 fixed 'hardware embedding' architectures of a space."""
    with open(Path(root or DATA_ROOT) / name / "reference_arch_ids.json", encoding="utf-8") as fh:
        return np.asarray(json.load(fh), int)
