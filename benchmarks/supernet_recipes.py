"""Which training recipe makes subnets as good as trained alone? One supernet per variant (subnet sampler, fixed
teacher or not), each audited against the same archs trained alone (`nasengine audit`, references shared).

Each variant is one `nasengine train` command and one `nasengine audit`; both resume, so a killed run continues.
Prints one row per variant: training seconds, Kendall tau (90 % interval), the MACs proxy's tau, mean and worst gap
(inherited minus standalone, points).

    python benchmarks/supernet_recipes.py --out runs/recipes [--data fashion-mnist --max-train 4000 --epochs 6
        --archs 10 --variants uniform,cost-uniform,...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

# name -> extra `nasengine train` options (besides data, batch, seed; a variant's own --epochs are its recipe's
# epochs, given as a multiple "xN" of --epochs, so that rows can be compared at about equal training time)
LOW_LR_TEACHER = ["--teacher", "auto", "--teacher-lr", "0.004", "--lr", "0.001"]
VARIANTS: dict[str, list[str]] = {
    "uniform": [],
    "teacher": ["--teacher", "auto"],
    "per-subnet": ["--resolution", "per-subnet"],
    "teacher+low-lr": LOW_LR_TEACHER,
    "teacher+low-lr per-subnet": [*LOW_LR_TEACHER, "--resolution", "per-subnet"],
    "uniform x3": ["--epochs", "x3"],
    "per-subnet x3": ["--resolution", "per-subnet", "--epochs", "x3"],
    "cost-uniform": ["--sampler", "cost-uniform"],
    "attentive-worst": ["--sampler", "attentive-worst"],
    "complexity-shift": ["--sampler", "complexity-shift"],
    "attentive-best": ["--sampler", "attentive-best"],
    "teacher+low-lr x2": [*LOW_LR_TEACHER, "--epochs", "x2"],
    "teacher+cost-uniform": ["--teacher", "auto", "--sampler", "cost-uniform"],
}


def train_options(extra: list[str], epochs: int) -> list[str]:
    """`--epochs xN` as N times the base epochs; the base epochs when a variant names none. Variants that name no
    resolution rule train with one resolution per step, the rule of the rows measured before per-subnet became
    the default, so that those rows reproduce."""
    out = list(extra)
    if "--resolution" not in out:
        out += ["--resolution", "per-step"]
    if "--epochs" in out:
        i = out.index("--epochs") + 1
        out[i] = str(epochs * int(out[i].lstrip("x")))
    else:
        out += ["--epochs", str(epochs)]
    return out


def nasengine(*args: str) -> None:
    print("$ nasengine " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "nasengine", *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--supernet", default="ofa_mbv3")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--max-train", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=6, help="supernet epochs, and each arch trained alone")
    parser.add_argument("--teacher-epochs", type=int, default=None, help="teacher variants (default --epochs)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--archs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant {unknown[0]}; choose from {', '.join(VARIANTS)}")
    rows = []
    audits: list[Path] = []
    for name in names:
        sn, audit = args.out / name.replace(" ", "_") / "supernet", args.out / name.replace(" ", "_") / "audit"
        extra = train_options(VARIANTS[name], args.epochs)
        if "--teacher" in extra and args.teacher_epochs:
            extra += ["--teacher-epochs", str(args.teacher_epochs)]
        if not (sn / "config.json").exists():
            nasengine("train", args.supernet, "--data", args.data, "--max-train", str(args.max_train),
                      "--batch-size", str(args.batch_size), "--seed", str(args.seed), "--threads",
                      str(args.threads), "--out", str(sn), "--quiet", *extra)
        reuse = [opt for a in audits for opt in ("--reuse", str(a))]
        nasengine("audit", str(sn), "--out", str(audit), "--archs", str(args.archs), "--epochs", str(args.epochs),
                  "--threads", str(args.threads), "--quiet", *reuse)
        audits.append(audit)
        summary = json.loads((audit / "summary.json").read_text())
        rows.append((name, summary))
    print(f"\n{args.supernet} on {args.data} ({args.max_train} training images, batch {args.batch_size}), "
          f"{args.archs} archs each trained alone {args.epochs} epochs, {args.threads} thread(s)\n")
    print("| variant | supernet training s | vs largest alone | Kendall tau [90 %] | MACs tau | mean gap | worst gap |")
    print("|---|---|---|---|---|---|---|")
    for name, s in rows:
        q, c = s["summary"], s["training_cost"]
        print(f"| {name} | {c['supernet_seconds']:.0f} | {c['ratio']:.2f}x | {q['tau']:.3f} [{q['tau_low']:.2f}, "
              f"{q['tau_high']:.2f}] | {q['tau_macs']:.3f} | {q['mean_gap_points']:+.2f} | "
              f"{q['worst_gap_points']:+.2f} |")


if __name__ == "__main__":
    main()
