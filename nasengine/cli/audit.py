"""`nasengine audit`: how far a supernet's accuracies can be trusted, against the same archs trained alone."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nasengine.cli.argtypes import positive_float, positive_int, whole_number


def _cmd_audit(args: argparse.Namespace) -> None:
    from nasengine.auditing import AuditRequest, run_audit

    run_audit(AuditRequest(Path(args.supernet_dir), Path(args.out), archs=args.archs, epochs=args.epochs,
                           workers=args.workers, threads=args.threads, seed=args.seed,
                           budget_minutes=args.budget_minutes, reuse=tuple(Path(d) for d in args.reuse or ()),
                           reference_seeds=args.reference_seeds, overwrite=args.overwrite, progress=not args.quiet))


def add_audit_command(sub: Any) -> None:
    """Register `audit` on the CLI's subcommands."""
    p = sub.add_parser("audit", help="trust report: inherited accuracies against the same archs trained alone")
    p.add_argument("supernet_dir", help="directory written by `nasengine train`")
    p.add_argument("--out", required=True, help="audit directory (audit.csv, audit.png, summary.json); a rerun "
                                                "resumes it")
    p.add_argument("--archs", type=int, default=15,
                   help="archs trained alone, spread over the cost range, smallest and largest included (default "
                        "15, at least 3)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs each arch is trained alone (default: as many as the supernet was trained, or its "
                        "teacher phase with --teacher auto)")
    p.add_argument("--workers", type=positive_int, default=1, help="archs trained at once, one process each "
                                                                   "(default 1)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch threads per training (default: the cores divided by --workers)")
    p.add_argument("--seed", type=whole_number, default=0, help="seed of the arch picks (default 0)")
    p.add_argument("--budget-minutes", type=positive_float, default=None, metavar="M",
                   help="start no training after M minutes; the report covers what is done, a rerun continues")
    p.add_argument("--reuse", action="append", metavar="AUDIT_DIR",
                   help="take finished standalone trainings from another audit (same task, settings, epochs and "
                        "arch), e.g. when comparing supernets trained with other recipes (repeatable)")
    p.add_argument("--reference-seeds", type=positive_int, default=1, metavar="N",
                   help="train each arch alone with N seeds (default 1): the standalone accuracy is their mean, and "
                        "the report says how alike the seeds rank the archs, the ceiling of the supernet's tau")
    p.add_argument("--overwrite", action="store_true", help="replace the audit directory")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(handler=_cmd_audit)
