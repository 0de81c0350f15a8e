"""The `nasengine` command line, in one place: `main` (data, train, search, export, evaluate, supernets) and
`devices` (measure, devices, device serve/profile/adapt); `argtypes` turns bad option values into one-line errors."""

from nasengine.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
