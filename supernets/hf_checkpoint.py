"""What every Hugging Face-format checkpoint directory shares: safetensors weights (a pickle is never loaded) and a
config.json, read with errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nasengine.search_spaces.messages import first_line

CONFIG, WEIGHTS = "config.json", "model.safetensors"


def read_hf_json(directory: Path, sharded: bool = False) -> dict[str, Any]:
    """The raw config.json of a checkpoint directory that holds model.safetensors (with `sharded`, or its index);
    ValueError naming what is missing or unreadable."""
    directory = Path(directory)
    if not (directory / WEIGHTS).is_file() and not (sharded and (directory / f"{WEIGHTS}.index.json").is_file()):
        pickled = " (pytorch_model.bin is a pickle and is never loaded)" if (directory / "pytorch_model.bin").exists() \
            else ""
        raise ValueError(f"{directory} has no {WEIGHTS}{pickled}")
    try:
        raw = json.loads((directory / CONFIG).read_text())
    except FileNotFoundError:
        raise ValueError(f"{directory} has no {CONFIG}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{directory / CONFIG} is not readable JSON ({first_line(exc)})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{directory / CONFIG} is not a JSON object")
    return raw
