"""The `nasengine` commands about devices: `measure` an export, list `devices`, and the `device` tools
(`serve` a measurement agent, `profile` a per-layer latency table, `adapt` a few-shot latency predictor)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nasengine.cli.argtypes import positive_int, whole_number
from nasengine.errors import UserError
from nasengine.search_spaces.quantization import PRECISIONS


def _cmd_measure(args: argparse.Namespace) -> None:
    from nasengine.measurement.devices import get_device
    from nasengine.exporting.subnet import subnet_workload

    try:
        workload = subnet_workload(Path(args.subnet), args.graph)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    rows = []
    for name in args.device or ["ort-cpu-1t"]:
        try:
            m = get_device(name).measure(workload)
        except ValueError as exc:  # e.g. a damaged model.safetensors met by a torch device
            raise UserError(str(exc)) from None
        rows.append({"device": name, **m.to_dict()})
        if not args.json:
            print(f"{name:<16} median {m.median_ms:.4f} ms  IQR {m.iqr_ms:.4f} ms ({m.spread:.1%})  "
                  f"repeats {m.repeats}  outliers {m.outliers}")
    if args.json:
        print(json.dumps(rows, indent=2))


def _cmd_device_profile(args: argparse.Namespace) -> None:
    from nasengine.measurement.profiling import profile_device

    result = profile_device(args.device, Path(args.supernet_dir), Path(args.out) if args.out else None, args.check,
                            args.seed, not args.quiet, args.precision)
    r = result["report"]
    print(f"profiled {result['entries']} distinct layers on {args.device} in {result['seconds']:.0f}s -> "
          f"{result['path']}")
    print(f"  error on {r['held_out']} held-out subnets measured end to end (of {args.check}: the other "
          f"{args.check - r['held_out']} calibrate the table): MAPE {r['mape_raw']:.1%} raw sum, "
          f"{r['mape_calibrated']:.1%} calibrated ({r['fit']} fit); Kendall tau {r['kendall_tau']:.3f}")
    if args.precision == "fp32":
        print(f"  search on it with: nasengine search {args.supernet_dir} --device lut:{args.device} --out RUN")
    else:
        print(f"  searches on {args.device} with --quantization search or int8 now price {args.precision} layers "
              f"from it")


def _cmd_device_adapt(args: argparse.Namespace) -> None:
    from nasengine.measurement.adapt import DEFAULT_SOURCES, adapt_device

    sources = [s.strip() for s in args.sources.split(",") if s.strip()] if args.sources else list(DEFAULT_SOURCES)
    result = adapt_device(args.device, Path(args.supernet_dir), sources, args.pool, args.support, args.check,
                          args.seed, not args.quiet)
    print(f"adapted a latency predictor for {args.device} from {result['support']} measurements "
          f"(sources: {', '.join(result['sources'])}) in {result['seconds']:.0f}s -> {result['path']}")
    if result["check"]:
        c = result["check"]
        print(f"  on {c['n']} more measured subnets: Spearman rho {c['spearman_rho']:.3f}, MAPE {c['mape']:.1%}")
    print(f"  search on it with: nasengine search {args.supernet_dir} --device meta:{args.device} --out RUN")


def _cmd_devices(args: argparse.Namespace) -> None:
    from nasengine.measurement.devices import device_configs, get_device

    rows = []
    for config in device_configs():
        try:
            device = get_device(config.name)
        except UserError as exc:  # a misconfigured device is listed with its problem, not fatal to the listing
            rows.append({"name": config.name, "backend": config.backend, "settings": dict(config.settings),
                         "available": False, "reason": str(exc), "description": config.description})
            continue
        reason = device.availability()
        rows.append({"name": config.name, "backend": config.backend, "settings": device.describe()["settings"],
                     "available": reason is None, "reason": reason, "description": config.description})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        state = "available" if row["available"] else f"unavailable ({row['reason']})"
        print(f"{row['name']:<18} {row['backend']:<12} {json.dumps(row['settings']):<40} {state}")


def add_device_commands(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Register `measure`, `device {serve,profile,adapt}` and `devices` on the CLI's subcommands."""
    p = sub.add_parser("measure", help="measure an exported subnet's latency on devices")
    p.add_argument("subnet", help="directory written by `nasengine export`")
    p.add_argument("--device", action="append", help="device (repeatable; default ort-cpu-1t)")
    p.add_argument("--graph", choices=["fp32", "int8"], default=None,
                   help="time model.onnx or model.int8.onnx (default: the graph the export deployed)")
    p.add_argument("--json", action="store_true", help="print the measurements as JSON (median, spread, repeats, ...)")
    p.set_defaults(handler=_cmd_measure)

    device = sub.add_parser("device", help="device tools: profile a latency table, serve a measurement agent")
    device_sub = device.add_subparsers(dest="device_command", required=True, parser_class=parser_class)
    from nasengine.measurement.agent import add_serve_arguments, run_from_args

    p = device_sub.add_parser("serve", help="run the measurement agent on this machine (target of `remote` devices)")
    add_serve_arguments(p)
    p.set_defaults(handler=run_from_args)

    p = device_sub.add_parser("profile", help="time every distinct layer of a supernet once on a device")
    p.add_argument("device", help="a device that runs models (see `nasengine devices`)")
    p.add_argument("supernet_dir", help="directory written by `nasengine train`")
    p.add_argument("--out", default=None,
                   help="table path (default SUPERNET_DIR/latency_tables/DEVICE.json, DEVICE.int8.json for int8)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="int8: every layer quantized (static QDQ); w8/w4: every matrix weight weight-only "
                        "INT8/INT4. The tables that price layers of a searched precision policy (--quantization "
                        "search) at that precision; needs an onnxruntime or remote device")
    p.add_argument("--check", type=positive_int, default=20,
                   help="random subnets measured end to end (default 20): the first half calibrates the table, the "
                        "second half judges it (MAPE, Kendall tau); at least 4")
    p.add_argument("--seed", type=whole_number, default=0, help="seed of the subnets measured to check (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(handler=_cmd_device_profile)

    p = device_sub.add_parser("adapt", help="few-shot latency predictor for a device, meta-learned from others")
    p.add_argument("device", help="the target device (measured --support times)")
    p.add_argument("supernet_dir", help="directory written by `nasengine train`")
    p.add_argument("--sources", default=None,
                   help="comma-separated devices or tables to meta-learn from (default: ort-cpu-1t, ort-cpu-2t, "
                        "ort-cpu-1t-int8, torch-cpu-1t)")
    p.add_argument("--pool", type=positive_int, default=200,
                   help="archs measured on every source device (default 200; cached per device)")
    p.add_argument("--support", type=positive_int, default=20,
                   help="archs measured on the target, chosen by the predictor (default 20)")
    p.add_argument("--check", type=whole_number, default=0,
                   help="more target measurements to judge the adapted predictor (default 0: none)")
    p.add_argument("--seed", type=whole_number, default=0, help="seed of the pool and of the fit (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(handler=_cmd_device_adapt)

    p = sub.add_parser("devices", help="list the devices usable here")
    p.add_argument("--json", action="store_true", help="print the devices, settings and availability as JSON")
    p.set_defaults(handler=_cmd_devices)
