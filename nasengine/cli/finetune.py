"""`nasengine finetune`: recover what weight sharing left on the table, for one exported subnet."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nasengine.cli.argtypes import positive_float, positive_int, whole_number


def _cmd_finetune(args: argparse.Namespace) -> None:
    from nasengine.exporting.finetune import FinetuneRequest, finetune

    result = finetune(FinetuneRequest(Path(args.subnet), Path(args.out), epochs=args.epochs, lr=args.lr,
                                      batch_size=args.batch_size, distill_from=args.distill_from,
                                      kd_temperature=args.kd_temperature, seed=args.seed, overwrite=args.overwrite,
                                      progress=not args.quiet))
    parent = result["finetuned"]["parent"]["accuracy"]
    what = "already fine-tuned" if result.get("resumed") else "fine-tuned"
    print(f"{what} -> {args.out}: test accuracy {result['accuracy']:.2%} (parent {parent:.2%}), "
          f"{result['latency_ms']:.3f} ms on {result['device']}")


def add_finetune_command(sub: Any) -> None:
    """Register `finetune` on the CLI's subcommands."""
    p = sub.add_parser("finetune", help="fine-tune an exported subnet and export it again")
    p.add_argument("subnet", help="directory written by `nasengine export`")
    p.add_argument("--out", required=True, help="directory of the new export (same contract as `nasengine export`)")
    p.add_argument("--epochs", type=positive_int, default=2, help="epochs of fine-tuning (default 2)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="peak learning rate (default: a quarter of the supernet's; AdamW, short warm-up, cosine)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="default: the supernet's")
    p.add_argument("--distill-from", default="auto", metavar="auto|supernet|none|SN|EXP",
                   help="soft targets besides the labels: auto (default) the export's supernet's largest subnet "
                        "when it is at least 2 points more accurate on validation than the export, else none; supernet "
                        "(always), none (labels only), or another trained supernet or export of the task")
    p.add_argument("--kd-temperature", type=positive_float, default=1.0, help="distillation temperature (default 1)")
    p.add_argument("--seed", type=whole_number, default=0, help="seed of the data order (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace the output directory")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(handler=_cmd_finetune)
