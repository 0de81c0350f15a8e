"""`python -m nasengine.measurement.agent [--port P] [--token-file F]`: the agent without the main CLI
(same options)."""

from __future__ import annotations

import argparse
import sys

from nasengine.measurement.agent.command import add_serve_arguments, run_from_args
from nasengine.errors import UserError


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m nasengine.measurement.agent", description=__doc__)
    add_serve_arguments(parser)
    try:
        return run_from_args(parser.parse_args())
    except UserError as exc:
        print(f"nasengine agent: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
