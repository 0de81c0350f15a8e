"""How fast does `nasengine finetune` recover what weight sharing leaves? Accuracy per fine-tuning epoch of one
exported subnet against the same arch trained alone from scratch for E epochs.

Searches the supernet (error and MACs, no device needed), exports the pick, fine-tunes it with distillation from
the supernet and with labels only, and trains the arch alone (the reference `nasengine audit` uses). Every step
resumes from what is already in --out.

    python benchmarks/finetune_recovery.py runs/fmnist/supernet --out runs/finetune [--evals 30 --epochs 3]
        [--arch ARCH.json --reuse AUDIT_DIR]

With --arch it exports that arch instead of searching (e.g. the arch an audit found furthest below training alone),
and --reuse takes the arch's standalone training from that audit when it holds it.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

from nasengine.auditing.standalone import read_reference, reference_identity, reuse_reference, train_alone
from nasengine.supernets.io import read_config


def nasengine(*args: str) -> None:
    print("$ nasengine " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "nasengine", *args], check=True)


def curve(export: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(export / "finetune_log.csv")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("supernet_dir", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--evals", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs")
    parser.add_argument("--alone-epochs", type=int, default=None, help="default: the supernet's epochs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--arch", type=Path, default=None, help="export this arch (JSON file) instead of searching")
    parser.add_argument("--reuse", type=Path, default=None, help="an audit directory whose standalone trainings "
                        "to reuse")
    args = parser.parse_args()
    run, exp = args.out / "search", args.out / "export"
    threads = ["--threads", str(args.threads)]
    if not (run / "results.csv").exists():
        nasengine("search", str(args.supernet_dir), "--out", str(run), "--objectives", "error,macs", "--evals",
                  str(args.evals), "--strategy", "random", "--quiet", *threads)
    if not (exp / "manifest.json").exists():
        chosen = ["--arch", f"@{args.arch}"] if args.arch is not None else []
        nasengine("export", str(run), "--out", str(exp), "--quiet", *threads, *chosen)
    tuned = {"distilled": args.out / "finetuned", "labels only": args.out / "finetuned-labels"}
    for name, path in tuned.items():
        if not (path / "manifest.json").exists():
            extra = ["--distill-from", "none" if name == "labels only" else "supernet"]
            nasengine("finetune", str(exp), "--out", str(path), "--epochs", str(args.epochs), "--quiet", *threads,
                      *extra)
    config = read_config(args.supernet_dir)
    arch = json.loads((exp / "manifest.json").read_text())["arch"]
    epochs = args.alone_epochs or int(config["training"]["epochs"])
    reference = args.out / "alone.json"
    identity = reference_identity(config, arch, epochs)
    if read_reference(reference, identity) is None and args.reuse is not None:
        reuse_reference(reference, identity, [args.reuse])
    if read_reference(reference, identity) is None:
        print(f"training the arch alone for {epochs} epochs", flush=True)
        train_alone(str(args.supernet_dir), arch, epochs, args.threads, str(reference))
    alone = json.loads(reference.read_text())
    curves = {name: curve(path) for name, path in tuned.items()}
    print(f"\narch of {json.loads((exp / 'manifest.json').read_text())['macs'] / 1e6:.2f} MMACs; trained alone "
          f"{epochs} epochs: {alone['standalone']:.2%} test ({alone['train_seconds']:.0f} s)\n")
    print("| fine-tuning epochs | share of training alone | " + " | ".join(curves) + " |")
    print("|---|---|" + "---|" * len(curves))
    for i, row in enumerate(curves["distilled"]):
        cells = " | ".join(f"{float(c[i]['test_acc']):.2%}" for c in curves.values())
        print(f"| {i} | {i / epochs:.0%} | {cells} |")
    for name, rows in curves.items():
        reached = next((int(r["epoch"]) for r in rows if float(r["test_acc"]) >= alone["standalone"]), None)
        seconds = sum(float(r["seconds"]) for r in rows if r["seconds"])
        text = (f"reaches the standalone accuracy after {reached} epoch(s) ({reached / epochs:.0%} of training alone)"
                if reached is not None else f"stays below the standalone accuracy after {len(rows) - 1} epochs")
        print(f"{name}: {text}; {seconds:.0f} s of fine-tuning")


if __name__ == "__main__":
    main()
