"""Pickle-free persistence: JSON for scalars, .npz (allow_pickle=False) or nested lists for arrays."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from nasengine.search_spaces.storage import atomic_file, atomic_write

FORMAT_VERSION = 1
CONFIG = "config.json"
ARRAYS = "arrays.npz"


def save_state(path: str | Path, kind: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Write a directory with config.json (kind, version, meta) and arrays.npz; returns the directory."""
    folder = Path(path)
    config = {"kind": kind, "format_version": FORMAT_VERSION, **meta}
    with atomic_file(folder / ARRAYS, suffix=".npz") as tmp:  # arrays first, config last marks it complete
        np.savez(tmp, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write(folder / CONFIG, json.dumps(config, indent=2, sort_keys=True))
    return folder


def load_state(path: str | Path, kind: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read what save_state wrote, checking that it holds the expected kind of object."""
    folder = Path(path)
    if not (folder / CONFIG).is_file() or not (folder / ARRAYS).is_file():
        raise ValueError(f"{folder} is not a saved {kind} (needs {CONFIG} and {ARRAYS})")
    meta = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    check_kind(meta, kind)
    with np.load(folder / ARRAYS, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return meta, arrays


def check_kind(meta: dict[str, Any], kind: str) -> None:
    """Raise ValueError unless meta describes the expected kind and a readable format version."""
    if meta.get("kind") != kind:
        raise ValueError(f"expected a saved {kind}, found {meta.get('kind')!r}")
    if int(meta.get("format_version", -1)) > FORMAT_VERSION:
        raise ValueError(f"format version {meta.get('format_version')} is newer than this code ({FORMAT_VERSION})")


def arrays_to_json(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Arrays as strict-JSON {dtype, shape, data} records (uint64 kept exact as Python ints, NaN as null)."""
    out = {}
    for k, v in arrays.items():
        a = np.asarray(v)
        data = a.ravel().tolist()
        if a.dtype.kind == "f" and np.isnan(a).any():
            data = [None if x != x else x for x in data]
        out[k] = {"dtype": a.dtype.str, "shape": list(a.shape), "data": data}
    return out


def arrays_from_json(records: dict[str, dict[str, Any]]) -> dict[str, np.ndarray]:
    """Inverse of arrays_to_json (null back to NaN)."""
    out = {}
    for k, r in records.items():
        dtype = np.dtype(r["dtype"])
        data = [np.nan if x is None else x for x in r["data"]] if dtype.kind == "f" else r["data"]
        out[k] = np.asarray(data, dtype=dtype).reshape(tuple(r["shape"]))
    return out
