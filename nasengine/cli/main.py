"""The `nasengine` command line: search, export, evaluate, generate, audit, finetune, devices, supernets (data and
train: cli/train.py)."""

from __future__ import annotations

import argparse
import os
import logging
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

from nasengine.cli.audit import add_audit_command
from nasengine.cli.train import add_data_and_train_commands
from nasengine.cli.finetune import add_finetune_command
from nasengine.cli.argtypes import positive_float, positive_int, whole_number
from nasengine.cli.devices import add_device_commands
from nasengine.cli.generate import add_generate_command
from nasengine.cli.search_summary import print_search_summary
from nasengine import __version__
from nasengine.errors import UserError, one_line
from nasengine.search_spaces.quantization import PRECISIONS
from nasengine.search_spaces.registry import RegistryError


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2) instead of usage dumps, prefixed `nasengine: error:` like every
    other error of the command line (the subcommand, if any, leads the message)."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("nasengine").strip()
        print(f"nasengine: error: {command + ': ' if command else ''}{message}", file=sys.stderr)
        raise SystemExit(2)


def _cmd_search(args: argparse.Namespace) -> None:
    from nasengine.searching.runner import SearchRequest, search

    objectives = tuple(o.strip() for o in args.objectives.split(",") if o.strip())
    plugins = (*getattr(args, "plugins_global", []), *getattr(args, "plugins_local", []))
    result = search(SearchRequest(Path(args.supernet_dir), Path(args.out), tuple(args.device or ()), args.evals,
                                  args.latency_budget, objectives, args.strategy, args.seed, args.overwrite,
                                  not args.quiet, tuple(args.constraint or ()), args.storage, args.study,
                                  args.workers, plugins, args.quantization, args.quant_accuracy,
                                  precisions=tuple(p.strip() for p in args.precisions.split(",") if p.strip()),
                                  hv_reference=args.hv_reference, decode_cache=args.decode_cache))
    print_search_summary(result, args.out)


def _cmd_export(args: argparse.Namespace) -> None:
    from nasengine.exporting.exporter import ExportRequest, export

    arch = None
    if args.arch is not None:
        from nasengine.search_spaces.archs import arch_from_json

        try:
            text = Path(args.arch[1:]).read_text() if args.arch.startswith("@") else args.arch
            arch = arch_from_json(text)
        except OSError as exc:
            raise UserError(f"--arch: cannot read {args.arch[1:]}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise UserError(f"--arch: {exc}") from None
    manifest = export(ExportRequest(Path(args.run), Path(args.out), args.latency_budget, args.device, args.overwrite,
                                    arch, args.pick, tuple(dict.fromkeys(args.format or ()))))
    searched = manifest["search_latency_ms"]
    head = (f"{args.out} already holds this export (same run and options; nothing redone)" if manifest.get("resumed")
            else f"exported -> {args.out}")
    how = "predicted for" if manifest.get("latency_kind") == "predicted" else "on"
    perplexity = f"test perplexity {manifest['perplexity']:.3f}, " if manifest.get("perplexity") else ""
    print(f"{head}: {perplexity}test accuracy {manifest['accuracy']:.2%}, {manifest['latency_ms']:.3f} ms {how} "
          f"{manifest['device']} (search split: {manifest['search_accuracy']:.2%}"
          + (f", {searched:.3f} ms" if searched is not None else "") + f"), {manifest['params']:,} params")
    for phase, timing in (manifest.get("phases") or {}).items():
        print(f"  {phase}: {timing['ms']:.3f} ms per token against a cache of {manifest.get('decode_cache')} "
              f"positions on {manifest['device']}")
    for line in _pick_lines(manifest.get("pick"), manifest["device"]):
        print(line)


def _pick_lines(pick: Any, device: str) -> list[str]:
    """How the exported subnet was chosen (manifest.json's `pick`): the rule, and the most accurate subnet it was
    weighed against when that is another one."""
    if not isinstance(pick, dict) or not pick.get("text"):
        return []
    picked, best = pick.get("picked") or {}, pick.get("most_accurate") or {}
    lines = [f"  pick ({pick.get('rule')}): " + (f"{_row_text(picked, device)}, " if picked else "") + pick["text"]]
    if best and best.get("number") != picked.get("number"):
        lines.append(f"  the most accurate Pareto subnet is {_row_text(best, device)} (--pick most-accurate "
                     f"exports it)")
    return lines


def _row_text(row: dict[str, Any], device: str) -> str:
    """`#172 (99.16%, 0.045 ms)` (a language model: `#3 (perplexity 18.21, 9.310 ms)`) from the manifest's summary
    of a results row."""
    accuracy = row.get("accuracy")
    if accuracy is None and row.get("error") is not None:
        accuracy = 1.0 - row["error"]
    latency = row.get(f"decode_ms:{device}", row.get(f"latency_ms:{device}"))
    quality = f"perplexity {row['perplexity']:.2f}" if row.get("perplexity") is not None else \
        f"{accuracy:.2%}" if accuracy is not None else None
    values = ([quality] if quality else []) + ([f"{latency:.3f} ms"] if latency is not None else [])
    return f"#{row.get('number')}" + (f" ({', '.join(values)})" if values else "")


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from nasengine.exporting.subnet import score_subnet

    try:
        score = score_subnet(Path(args.subnet), args.split, args.graph)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    what = (f"perplexity {score['perplexity']:.3f}, next-token accuracy {score['accuracy']:.2%}"
            if "perplexity" in score else f"top-1 accuracy {score['accuracy']:.2%}")
    print(f"{args.subnet}: {what} on the {score['split']} split ({score['n']:,} "
          f"{'blocks' if 'perplexity' in score else 'samples'}) with {score['graph']}")


def _cmd_supernets(args: argparse.Namespace) -> None:
    from nasengine import supernets

    for name in supernets.available():
        entry = supernets.entry(name)
        data = f"data={entry.task}" if entry.task else "--data required"
        print(f"{name:<20} {data:<16} {entry.summary}  [{entry.module}]")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nasengine", description="Hardware-aware neural architecture search.")
    parser.add_argument("--version", action="version", version=f"nasengine {__version__}")
    parser.add_argument("--plugin", action="append", dest="plugins_global", default=[], metavar="FILE.py|MODULE",
                        help=PLUGIN_HELP)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    add_data_and_train_commands(sub)

    p = sub.add_parser("search", help="search a trained supernet for one or more devices")
    p.add_argument("supernet_dir", help="directory written by `nasengine train`")
    p.add_argument("--device", action="append",
                   help="target device (repeatable; default ort-cpu-1t when an objective or constraint is a "
                        "latency); see `nasengine devices`")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--evals", type=positive_int, default=200, help="distinct subnets to evaluate (default 200)")
    p.add_argument("--latency-budget", type=positive_float, default=None, metavar="MS",
                   help="only subnets at most this many milliseconds on every searched device count (the same "
                        "as --constraint latency<=MS)")
    p.add_argument("--objectives", default="error,latency",
                   help="comma-separated metrics: error, accuracy, latency (one per device), params, macs, "
                        "size_mb, memory_mb, perplexity and decode_ms (language models), or one a plugin registers "
                        "(default error,latency)")
    p.add_argument("--constraint", action="append", metavar="METRIC<=X",
                   help="bound a metric, e.g. latency<=2.5, size_mb<=1, accuracy>=0.8 (repeatable)")
    p.add_argument("--strategy", default="nsga2",
                   help="random, nsga2 (default), agemoea, nsga3, tpe, optuna-nsga2, linas, members (a sorted "
                        "supernet's nested members only), or a plugin's")
    p.add_argument("--seed", type=whole_number, default=0, help="seed of the search strategy (default 0)")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="optuna RDB for the trial store, shared by workers on several machines (e.g. "
                        "postgresql+psycopg2://user@host/db); default: RUN/store.journal")
    p.add_argument("--study", default=None, help="study name in the store (default: derived from the settings, "
                                                 "so the same command on another machine joins the same study)")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="processes evaluating subnets at once against the same store (default 1)")
    p.add_argument("--quantization", choices=["none", "int8", "search"], default="none",
                   help="none: FP32 subnets (default); int8: every layer INT8; search: a precision per layer searched "
                        "with the architecture (see --precisions). INT8 graphs are onnxruntime QDQ, calibrated on "
                        "training images; their accuracy and latency are measured on the quantized graph")
    p.add_argument("--precisions", default=",".join(PRECISIONS), metavar="LIST",
                   help="what --quantization search may choose per layer, where the layer supports it (default "
                        f"{','.join(PRECISIONS)}): fp32, int8 (static INT8), w8/w4 (weight-only INT8/INT4 "
                        "blockwise weights of linear and attention layers, onnxruntime MatMulNBits)")
    p.add_argument("--decode-cache", type=positive_int, default=256, metavar="TOKENS",
                   help="decoders (llama): the key/value cache length their per-token decode latency (decode_ms) and "
                        "memory (memory_mb) are taken at (default 256)")
    p.add_argument("--hv-reference", type=Path, default=None, metavar="FILE",
                   help='fixed hypervolume scale, so runs can be compared: JSON {"ideal": {COLUMN: VALUE, ...}, '
                        '"nadir": {...}, "reference": 1.1} naming every objective column (default: this run\'s '
                        'best and worst values)')
    p.add_argument("--quant-accuracy", choices=["real", "estimate"], default="real",
                   help="accuracy of quantized subnets: real (onnxruntime runs the INT8 graph on the split, "
                        "default) or estimate (fake quantization in torch; see BENCHMARKS.md for its agreement)")
    p.set_defaults(handler=_cmd_search)

    p = sub.add_parser("export", help="export a Pareto subnet as a standalone checkpoint and ONNX")
    p.add_argument("run", help="run directory written by `nasengine search`")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--latency-budget", type=positive_float, default=None, metavar="MS",
                   help="only Pareto subnets at most this many milliseconds on --device are picked from (default: "
                        "all); --pick then chooses among them")
    p.add_argument("--device", default=None,
                   help="device whose Pareto set to pick from (default: the run's first device)")
    p.add_argument("--format", action="append", default=None, metavar="NAME",
                   help="also write this format (repeatable): hf (a transformers LLaMA directory), gguf (F16), "
                        "gguf-q8_0, or a plugin's; config.json, model.safetensors and ONNX are always written")
    p.add_argument("--arch", default=None, help="export this arch (JSON, or @file.json) instead of choosing one")
    p.add_argument("--pick", choices=["within-noise", "most-accurate"], default="within-noise",
                   help="within-noise (default): the fastest on --device (no latency objective: the best on the next "
                        "objective) of the Pareto subnets whose validation accuracy is at least the one-sided 90%% "
                        "Wilson lower bound of the most accurate one's; most-accurate: the most accurate Pareto "
                        "subnet. --latency-budget applies first")
    p.set_defaults(handler=_cmd_export)

    p = sub.add_parser("evaluate", help="accuracy of an exported subnet on its task split")
    p.add_argument("subnet", help="directory written by `nasengine export`")
    p.add_argument("--split", default=None, choices=["train", "val", "test"],
                   help="split to score (default: the one recorded in manifest.json, normally test)")
    p.add_argument("--graph", choices=["fp32", "int8"], default=None,
                   help="score the FP32 model or model.int8.onnx (default: the graph the export deployed)")
    p.set_defaults(handler=_cmd_evaluate)

    add_generate_command(sub)
    add_audit_command(sub)
    add_finetune_command(sub)
    add_device_commands(sub, _Parser)

    p = sub.add_parser("supernets", help="list the registered supernets")
    p.set_defaults(handler=_cmd_supernets)

    for sp in sub.choices.values():
        sp.add_argument("--plugin", action="append", dest="plugins_local", default=[], metavar="FILE.py|MODULE",
                        help=PLUGIN_HELP)
    for name in ("train", "search", "export"):
        sp = sub.choices[name]
        sp.add_argument("--overwrite", action="store_true", help="replace the output directory")
        sp.add_argument("--quiet", action="store_true", help="no progress output")
    for name in ("train", "search", "export", "evaluate", "measure", "generate", "finetune"):
        sub.choices[name].add_argument("--threads", type=positive_int, default=None,
                                       help="torch threads for training and evaluation (default: all cores); "
                                            "device thread counts are set by the device")
    return parser


PLUGIN_HELP = ("import this Python file or module first, so the supernets, data sets, devices and strategies it "
               "registers are usable (repeatable)")


def _load_plugins(args: argparse.Namespace) -> None:
    from nasengine.plugins import begin_command, load_entry_point_plugins, load_plugin

    begin_command()
    load_entry_point_plugins()
    for ref in [*getattr(args, "plugins_global", []), *getattr(args, "plugins_local", [])]:
        load_plugin(ref, given=True)


def _quiet_libraries() -> None:
    """Third-party logging as a command-line user wants it (library code never changes these settings)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("onnxruntime.quantization").setLevel(logging.ERROR)  # (its root-logger advice is filtered
    # by nasengine.graphs.quantization while it quantizes)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    handler: Callable[[argparse.Namespace], Any] = args.handler
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    try:
        _load_plugins(args)
        handler(args)
    except RegistryError as exc:
        hint = " (a name your own code registers needs its plugin: --plugin FILE.py|MODULE)" \
            if str(exc).startswith("unknown") else ""
        print(f"nasengine: error: {one_line(str(exc))}{hint}", file=sys.stderr)
        return 2
    except UserError as exc:
        print(f"nasengine: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `nasengine data ... --json | head`: the reader left; so do we, quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        if exc.filename is None:  # not about a path the user named: a bug or an outage, keep the traceback
            raise
        print(f"nasengine: error: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nasengine: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
