"""`nasengine generate`: text from an exported language model, to try it before shipping."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nasengine.cli.argtypes import positive_float, positive_int, whole_number
from nasengine.errors import UserError


def _cmd_generate(args: argparse.Namespace) -> None:
    from nasengine.exporting.generate import generate_text

    try:
        text = generate_text(Path(args.subnet), args.prompt, args.max_tokens, args.temperature or 0.0, args.top_k,
                             args.seed)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    print(text)


def add_generate_command(sub: Any) -> None:
    """Register `generate` on the CLI's subcommands."""
    p = sub.add_parser("generate", help="continue a prompt with an exported language model")
    p.add_argument("subnet", help="directory written by `nasengine export` from a language-model run")
    p.add_argument("--prompt", required=True, help="text to continue")
    p.add_argument("--max-tokens", type=positive_int, default=64, help="new tokens at most (default 64)")
    p.add_argument("--temperature", type=positive_float, default=None,
                   help="sample at this temperature (default: greedy decoding, the same text every time)")
    p.add_argument("--top-k", type=positive_int, default=50, help="sample from this many likeliest tokens (default 50)")
    p.add_argument("--seed", type=whole_number, default=0, help="seed of the sampling (default 0)")
    p.set_defaults(handler=_cmd_generate)
