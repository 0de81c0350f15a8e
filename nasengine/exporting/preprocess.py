"""Raw samples -> model inputs, exactly as the engine prepared its splits; predictions on raw samples from an export.

Every export records one preprocessing contract (config.json and manifest.json, key `preprocessing`, schema
`nasengine-preprocessing` version 1). Images: raw arrays of the training images' size (uint8 or float; HxW, HxWxC,
NxHxW, NxHxWxC or NxCxHxW) become `(float32(raw) * scale - mean[c]) / std[c]`, are laid out (N, C, H, W) and, when
the subnet runs at another resolution, resized bilinearly as torch does (align_corners=False, no antialias).
Text: strings are tokenised by the tokenizer file shipped beside the export, truncated and right-padded with 0 to
`max_length` tokens (`input_ids`, `attention_mask`, int64). `preprocess(EXP, raw)` applies it in numpy or torch;
`load_predictor(EXP)` (nasengine.exporting.predictor) maps raw samples to labels with the torch module or
onnxruntime; image exports also ship `model.raw.onnx` (nasengine.exporting.raw_graph), the same steps as ONNX
nodes in front of model.onnx (uint8 or float NHWC in, logits out).
Exports written before the contract existed get it derived from their task spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from nasengine.exporting.subnet import read_subnet_config
from nasengine.kernels.inputs import InputSpec, resize_images, specs_from_config
from nasengine.tasks.base import PREPROCESSING_SCHEMA, PREPROCESSING_VERSION, image_preprocessing

RESIZE_METHOD = {"method": "bilinear", "align_corners": False, "antialias": False,
                 "torch": "torch.nn.functional.interpolate(x, size=size, mode='bilinear', align_corners=False)",
                 "onnx": {"op": "Resize", "mode": "linear", "coordinate_transformation_mode": "half_pixel"},
                 "skipped_when": "the image already has this size"}

__all__ = ["apply_contract", "export_preprocessing", "image_batch", "load_tokenizer", "normalize_images", "preprocess",
           "read_preprocessing"]


# --- the contract -----------------------------------------------------------------------------------------------
def export_preprocessing(task_preprocessing: Mapping[str, Any], input_transform: Mapping[str, Any],
                         inputs: Sequence[InputSpec]) -> dict[str, Any]:
    """The contract an export records: its task's, plus the resize to the subnet's resolution (only when the input
    transform has one) and the model inputs it yields; a task without a versioned contract (a plugin's) is kept
    as its description, which `preprocess` refuses to apply."""
    base = dict(task_preprocessing)
    if base.get("schema") != PREPROCESSING_SCHEMA:
        return {"schema": PREPROCESSING_SCHEMA, "version": PREPROCESSING_VERSION, "kind": "custom",
                "description": base}
    specs = [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in inputs]
    if base["kind"] == "text":
        return {**base, "inputs": [{**given, **spec} for given, spec in zip(base["inputs"], specs)]}
    size = input_transform.get("resize")
    raw = base["raw"]
    steps = ["x = float32(raw) as (N, H, W, C)", "x = (x * scale - mean[c]) / std[c] in float32, per channel c",
             "x = x.transpose(0, 3, 1, 2) (N, C, H, W)"]
    if size:
        steps.append(f"x = bilinear resize of x to {int(size[0])}x{int(size[1])} as torch.nn.functional.interpolate "
                     f"(align_corners=False, antialias=False); skipped when it is {raw['height']}x{raw['width']}")
    return {**base, "resize": {"size": [int(v) for v in size], **RESIZE_METHOD} if size else None,
            "inputs": [{**specs[0], "layout": "NCHW"}], "steps": steps, "raw_graph": None}


def read_preprocessing(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """The preprocessing contract of an export directory, of its config.json as a dict, or a contract itself;
    derived from the task spec for exports older than the contract; ValueError naming what is missing."""
    if isinstance(source, Mapping):
        if source.get("schema") == PREPROCESSING_SCHEMA:
            return _checked(dict(source), "the given preprocessing")
        config, where = dict(source), "the given config"
    else:
        config, where = read_subnet_config(Path(source)), str(Path(source) / "config.json")
    recorded = config.get("preprocessing")
    if isinstance(recorded, Mapping):
        return _checked(dict(recorded), where)
    return _checked(_derived(config, where), where)


def _checked(contract: dict[str, Any], where: str) -> dict[str, Any]:
    """`contract` when this engine can apply it; ValueError naming `where` otherwise."""
    version = contract.get("version")
    if contract.get("schema") != PREPROCESSING_SCHEMA or not isinstance(version, int):
        raise ValueError(f"{where}: 'preprocessing' is not a {PREPROCESSING_SCHEMA} contract; export the subnet again")
    if version > PREPROCESSING_VERSION:
        raise ValueError(f"{where}: preprocessing version {version} is newer than this nasengine reads "
                         f"({PREPROCESSING_VERSION}); upgrade nasengine")
    if contract.get("kind") == "custom":
        raise ValueError(f"{where}: its task describes its preprocessing only in words "
                         f"({contract.get('description')}); prepare raw samples as it says")
    if contract.get("kind") not in ("image", "text"):
        raise ValueError(f"{where}: unknown preprocessing kind {contract.get('kind')!r}")
    return contract


def _derived(config: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The contract of an export written before exports recorded one, from its task spec and input transform."""
    from nasengine.tasks.arrays import folder_decode
    from nasengine.tasks.text import text_preprocessing

    spec = config["task"] if isinstance(config["task"], Mapping) else {"kind": "named", "name": config["task"]}
    kind = spec.get("kind")
    try:
        if kind == "text_tsv":
            base = text_preprocessing(Path(str(spec["files"]["tokenizer"])).name, int(spec["max_length"]),
                                      list(spec["classes"]))
        elif isinstance(spec.get("normalize"), Mapping) and "input_shape" in spec:  # arrays on disk
            norm, shape = spec["normalize"], [int(s) for s in spec["input_shape"]]
            uint8 = abs(float(norm["scale"]) - 1 / 255) < 1e-12  # ArrayTask scales uint8 images, and only those
            decode = folder_decode(shape[0], (shape[1], shape[2])) if kind == "image_folder" else None
            base = image_preprocessing(shape, f"{spec.get('name')} images ({kind})", "uint8" if uint8 else "float32",
                                       norm, spec.get("classes") or None, decode)
        elif kind == "named":
            base = _named_task_preprocessing(config, str(spec.get("name")))
        else:
            raise ValueError(f"its task ({kind}) does not say how raw samples are prepared")
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"{where} records no preprocessing and its task spec is incomplete "
                         f"({type(exc).__name__}: {exc}); export the subnet again") from None
    except ValueError as exc:
        raise ValueError(f"{where} records no preprocessing (exported before nasengine recorded it) and "
                         f"{exc}; export the subnet again") from None
    return {**export_preprocessing(base, config.get("input_transform") or {}, specs_from_config(config)),
            "derived": "from config.json's task spec: this export predates the preprocessing contract"}


def _named_task_preprocessing(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A registered data set's contract (digits: recomputed from the bundled data), its plugins loaded first."""
    from nasengine.plugins import reload_recorded
    from nasengine.tasks.base import named_task_factory

    reload_recorded(config.get("plugins", []))
    factory = named_task_factory(name)
    if factory is None:
        raise ValueError(f"its data set {name!r} is not registered here (load the plugin that defines it)")
    return dict(factory().preprocessing)


# --- applying it --------------------------------------------------------------------------------------------------
def preprocess(source: str | Path | Mapping[str, Any], raw: Any, framework: str = "auto") -> Any:
    """Model inputs from raw samples, as the engine prepared its splits: an image batch (N, C, H, W) float32, or
    {"input_ids", "attention_mask"} int64 for text. `source` is an export directory, its config.json (as a dict)
    or a contract; `framework` numpy | torch | auto (torch for a torch tensor, numpy otherwise)."""
    contract = read_preprocessing(source)
    tokenizer_dir = Path(source) if not isinstance(source, Mapping) else None
    return apply_contract(contract, raw, _framework(framework, raw), tokenizer_dir)[0]


def _framework(framework: str, raw: Any) -> str:
    """numpy or torch: the one asked for, or under `auto` the kind of `raw` (numpy for anything but a tensor)."""
    if framework == "auto":
        return "torch" if isinstance(raw, torch.Tensor) else "numpy"
    if framework not in ("numpy", "torch"):
        raise ValueError(f"framework must be numpy, torch or auto, got {framework!r}")
    return framework


def apply_contract(contract: Mapping[str, Any], raw: Any, framework: str, root: Path | None,
           tokenizer: Any = None) -> tuple[Any, bool]:
    """(model inputs, whether `raw` was one sample) under `contract`."""
    if contract["kind"] == "text":
        texts, single = _texts(raw)
        if tokenizer is None:
            tokenizer = load_tokenizer(contract, root)
        from nasengine.tasks.text import tokenize

        encoded = tokenize(tokenizer, texts, int(contract["max_length"]))
        return ({k: v.numpy() for k, v in encoded.items()} if framework == "numpy" else encoded), single
    x, single = image_batch(contract, raw)
    return normalize_images(contract, x, framework), single


def _texts(raw: Any) -> tuple[list[str], bool]:
    """A list of strings from one string or a sequence of them; ValueError otherwise."""
    if isinstance(raw, str):
        return [raw], True
    if isinstance(raw, (list, tuple, np.ndarray)) and len(raw) and all(isinstance(t, str) for t in raw):
        return [str(t) for t in raw], False
    raise ValueError(f"raw text must be a string or a non-empty list of strings, got {_describe(raw)}")


def load_tokenizer(contract: Mapping[str, Any], root: Path | None) -> Any:
    """The tokenizer the contract names: the file beside the export (or the path itself without an export)."""
    from nasengine.tasks.text import load_tokenizer

    name = str(contract["tokenizer"])
    path = root / name if root is not None else Path(name)
    if not path.is_file():
        where = f"{root}" if root is not None else "the current directory (pass the export directory instead)"
        raise ValueError(f"{path}: the tokenizer file {name} is missing from {where}; export the subnet again")
    return load_tokenizer(path)


def _describe(raw: Any) -> str:
    """A value's type and shape for an error message."""
    shape = getattr(raw, "shape", None)
    return f"{type(raw).__name__} of shape {tuple(shape)}" if shape is not None else type(raw).__name__


def image_batch(contract: Mapping[str, Any], raw: Any) -> tuple[Any, bool]:
    """Raw images as one (N, H, W, C) batch of their own kind (numpy or torch, dtype kept), and whether `raw` was
    one image; a list of equally shaped images is stacked. ValueError naming the shapes and dtypes accepted."""
    spec = contract["raw"]
    h, w, c = int(spec["height"]), int(spec["width"]), int(spec["channels"])
    if isinstance(raw, (list, tuple)):
        if not raw:
            raise ValueError("no raw images given")
        arrays = [r if isinstance(r, torch.Tensor) else np.asarray(r) for r in raw]
        raw = torch.stack(arrays) if all(isinstance(a, torch.Tensor) for a in arrays) else np.stack(
            [a.numpy() if isinstance(a, torch.Tensor) else a for a in arrays])
    if not isinstance(raw, torch.Tensor):
        raw = np.asarray(raw)
    _check_dtype(raw)
    shape = tuple(int(s) for s in raw.shape)
    if len(shape) == 2 and shape == (h, w) and c == 1:
        x, single = raw[None, :, :, None], True
    elif len(shape) == 3 and shape == (h, w, c):
        x, single = raw[None], True
    elif len(shape) == 3 and shape[1:] == (h, w) and c == 1:
        x, single = raw[..., None], False
    elif len(shape) == 4 and shape[1:] == (h, w, c):
        x, single = raw, False
    elif len(shape) == 4 and shape[1:] == (c, h, w):
        x, single = (raw.permute(0, 2, 3, 1) if isinstance(raw, torch.Tensor) else raw.transpose(0, 2, 3, 1)), False
    else:
        accepted = [f"({h}, {w})", f"({h}, {w}, 1)", f"(N, {h}, {w})"] if c == 1 else [f"({h}, {w}, {c})"]
        accepted += [f"(N, {h}, {w}, {c})", f"(N, {c}, {h}, {w})"]
        raise ValueError(f"raw images must have shape {', '.join(accepted[:-1])} or {accepted[-1]} ({c} channel"
                         f"{'s' if c > 1 else ''} of {h}x{w}, uint8 or float), got shape {shape}")
    if x.shape[0] == 0:
        raise ValueError("no raw images given (a batch of 0)")
    return x, single


def _check_dtype(raw: Any) -> None:
    """Raw pixels must be real numbers (uint8, another integer type or float), all finite."""
    if isinstance(raw, torch.Tensor):
        ok, floating = raw.dtype not in (torch.bool, torch.complex64, torch.complex128), raw.is_floating_point()
    else:
        ok = np.issubdtype(raw.dtype, np.number) and not np.issubdtype(raw.dtype, np.complexfloating)
        floating = ok and np.issubdtype(raw.dtype, np.floating)
    if not ok:
        raise ValueError(f"raw images must be uint8 or float pixel values, got dtype {raw.dtype}")
    if floating and not bool((torch.isfinite(raw) if isinstance(raw, torch.Tensor) else np.isfinite(raw)).all()):
        raise ValueError("raw images contain NaN or infinite values")


def normalize_images(contract: Mapping[str, Any], x: Any, framework: str) -> Any:
    """(N, H, W, C) raw pixels -> the model's (N, C, H, W) float32 input: the float32 operations the engine's splits
    use, then its bilinear resize (torch's kernel on both paths, so both match the engine bit for bit)."""
    scale, mean, std = (np.float32(contract["scale"]), np.asarray(contract["mean"], np.float32),
                        np.asarray(contract["std"], np.float32))
    if isinstance(x, torch.Tensor):
        t = (x.detach().cpu().to(torch.float32) * torch.from_numpy(np.asarray(scale)) - torch.from_numpy(mean)) \
            / torch.from_numpy(std)
    else:
        t = torch.from_numpy((x.astype(np.float32) * scale - mean) / std)
    t = t.permute(0, 3, 1, 2).contiguous()
    resize = contract.get("resize")
    if resize:
        t = resize_images(t, (int(resize["size"][0]), int(resize["size"][1])))
    return t.numpy() if framework == "numpy" else t
