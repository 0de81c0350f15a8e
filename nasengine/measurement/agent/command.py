"""`nasengine device serve`: the agent's command-line arguments and entry point (imports the server lazily)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from nasengine.measurement.agent.protocol import DEFAULT_MAX_BYTES, DEFAULT_PORT, DEFAULT_QUEUE_TIMEOUT_S, TOKEN_ENV
from nasengine.cli.argtypes import byte_size, port, positive_float
from nasengine.errors import UserError


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `nasengine device serve` (add to a subparser, then call `run_from_args`)."""
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 for all interfaces - plain HTTP)")
    parser.add_argument("--port", type=port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)")
    parser.add_argument("--token", default=None,
                        help=f"secret clients must send (visible in `ps`; prefer --token-file or ${TOKEN_ENV})")
    parser.add_argument("--token-file", default=None, metavar="FILE", help="read the token from FILE")
    parser.add_argument("--max-bytes", type=byte_size, default=DEFAULT_MAX_BYTES, metavar="N",
                        help="largest model accepted, e.g. 64M (default 64M)")
    parser.add_argument("--queue-timeout", type=positive_float, default=DEFAULT_QUEUE_TIMEOUT_S, metavar="S",
                        help=f"how long a request may wait for its turn before a 503 "
                             f"(default {DEFAULT_QUEUE_TIMEOUT_S:g})")
    parser.add_argument("--quiet", action="store_true", help="no per-request log lines on stderr")


def resolve_token(token: str | None, token_file: str | None) -> str:
    """The token from --token, else --token-file, else $NASENGINE_AGENT_TOKEN; UserError when there is none."""
    if token is not None and token_file is not None:
        raise UserError("give either --token or --token-file, not both")
    if token_file is not None:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UserError(f"cannot read --token-file {token_file}: {exc.strerror or exc}") from None
        if not token:
            raise UserError(f"--token-file {token_file} is empty")
    elif token is None:
        token = os.environ.get(TOKEN_ENV, "")
    if not token.strip():
        raise UserError(f"the agent needs a token: pass --token, --token-file FILE or set ${TOKEN_ENV}")
    return token.strip()


def _stop_on_sigterm(*_: Any) -> None:
    raise KeyboardInterrupt


def run_from_args(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C/SIGTERM; returns 0. Configuration problems raise UserError (one line, exit 2)."""
    token = resolve_token(args.token, args.token_file)
    from nasengine.measurement.agent.server import serve

    def ready(server: Any) -> None:
        print(f"nasengine agent listening on {server.url} (models up to {server.max_bytes} bytes, queue timeout "
              f"{server.queue_timeout_s:g}s); Ctrl-C stops", flush=True)
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print("nasengine agent: plain HTTP - the token and models cross the network unencrypted",
                  file=sys.stderr, flush=True)

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm) if in_main and hasattr(signal, "SIGTERM") else None
    try:
        serve(args.host, args.port, token, max_bytes=args.max_bytes, queue_timeout_s=args.queue_timeout,
              log=None if args.quiet else sys.stderr, on_ready=ready)
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print("nasengine agent stopped", flush=True)
    return 0
