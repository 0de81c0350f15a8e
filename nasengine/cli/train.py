"""`nasengine data` and `nasengine train`: how the engine reads a data set, and training a supernet on it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nasengine.cli.argtypes import image_size, positive_float, positive_int, positive_or_zero_float, whole_number
from nasengine.errors import UserError


def _overrides(pairs: list[str] | None) -> dict[str, Any]:
    """`--set key=JSON` pairs as constructor overrides (values parsed as JSON, bare words as strings)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


def _check_overrides(supernet: str, overrides: dict[str, Any]) -> None:
    """A `--set` key the family's constructor does not take: one line listing the keys it does take."""
    if not overrides:
        return
    from nasengine import supernets

    keys = supernets.entry(supernet).arguments()  # RegistryError: unknown family
    if keys is None:  # a builder forwarding **kwargs to no declared config: the build itself reports bad keys
        return
    unknown = sorted(set(overrides) - keys)
    if unknown:
        raise UserError(f"--set {unknown[0]}: {supernet} takes no such argument; its constructor keys are "
                        f"{', '.join(sorted(keys))} (`nasengine supernets` lists the families)")


def _data_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """Split rule, augmentation and image size given on the command line (overriding the data set's own)."""
    given = {k: getattr(args, k) for k in ("val_fraction", "test_fraction", "split_seed", "max_train", "augment",
                                            "image_size", "dev", "max_length", "holdout")
             if getattr(args, k, None) is not None}
    if "dev" in given:
        given["dev"] = str(Path(given["dev"]).resolve())
    if "augment" in given:
        given["augment"] = tuple(a.strip() for a in given["augment"].split(",") if a.strip() and a.strip() != "none")
    return given or None


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dev", default=None, metavar="FILE",
                   help="text data: a TSV (or, for a language model, a .txt / .jsonl) scored as the test split "
                        "(default: a share of --data held out)")
    p.add_argument("--max-length", type=positive_int, default=None,
                   help="text data: tokens per sequence, truncated and padded (default 64; a language model's "
                        "token blocks: 128); the devices time subnets at this length")
    p.add_argument("--holdout", choices=("row", "sentence"), default=None,
                   help="text data: hold out single rows (default), or whole sentences with every row they "
                        "contain, for phrase banks such as SST-2's training file whose rows include each "
                        "sentence's sub-phrases")
    p.add_argument("--val-fraction", type=positive_float, default=None,
                   help="share of the training files held out for validation when the files define no "
                        "validation split (default 0.1)")
    p.add_argument("--test-fraction", type=float, default=None,
                   help="share held out for testing when the files define no test split (default 0.15)")
    p.add_argument("--split-seed", type=whole_number, default=None, help="seed of the stratified splits (default 0)")
    p.add_argument("--max-train", type=positive_int, default=None,
                   help="train on a stratified subset of this many images (default: all)")
    p.add_argument("--augment", default=None,
                   help="comma-separated training augmentations: affine, hflip, or none (default affine)")
    p.add_argument("--image-size", type=image_size, default=None, metavar="HxW",
                   help="resize the images of an image folder to this size (default: their own, if all agree)")


def _cmd_data(args: argparse.Namespace) -> None:
    from nasengine.tasks import open_data

    task = open_data(args.data, _data_options(args))
    spec = task.spec
    if args.json:
        print(json.dumps(spec, indent=2))
        return
    sizes = spec.get("split", {}).get("sizes") or {s: len(task.split(s)) for s in ("train", "val", "test")}
    if "inputs" in spec:  # named inputs, e.g. token ids and an attention mask
        shape = f"{', '.join(spec['inputs'])} of {'x'.join(map(str, spec['input_shape']))} tokens"
    else:
        shape = f"{'x'.join(map(str, spec['input_shape']))} (C x H x W)"
    print(f"{task.name}: {spec['num_classes']} classes, inputs {shape}")
    print("  splits: " + ", ".join(f"{k} {v:,}" for k, v in sizes.items()))
    if spec.get("classes"):
        print("  classes: " + ", ".join(spec["classes"]))
    skipped = spec.get("skipped_files")
    if skipped:
        print(f"  skipped {skipped['count']} file(s) that are not PNG/JPEG images: {', '.join(skipped['first'])}"
              + (", ..." if skipped["count"] > len(skipped["first"]) else ""))


def _cmd_train(args: argparse.Namespace) -> None:
    from nasengine.training.run import TrainRequest, train

    given = {k: getattr(args, k) for k in ("epochs", "seed", "recipe", "batch_size", "lr", "warmup", "n_random",
                                            "checkpoint_every", "checkpoint_seconds", "teacher", "teacher_epochs",
                                            "teacher_lr", "kd_temperature", "sampler", "resolution",
                                            "budget_minutes")
             if getattr(args, k) is not None}  # unset options take TrainRequest's defaults
    overrides = _overrides(args.set)
    _check_overrides(args.supernet, overrides)
    result = train(TrainRequest(args.supernet, Path(args.out), overwrite=args.overwrite, progress=not args.quiet,
                                overrides=overrides, data=args.data, data_options=_data_options(args),
                                init_from=Path(args.init_from) if args.init_from else None,
                                checkpoint=Path(args.checkpoint) if args.checkpoint else None, **given))
    if result.get("rank", 0) != 0:  # under torchrun, rank 0 reports for all
        return
    acc = result["final_accuracy"]
    print(f"trained {args.supernet} in {result['seconds']:.0f}s -> {args.out}")
    for name in ("max", "min"):
        scores = acc[name]
        perplexity = (f"  (perplexity val {scores['val_perplexity']:.2f}  test {scores['test_perplexity']:.2f})"
                      if "val_perplexity" in scores else "")
        print(f"  {name} subnet: val {scores['val']:.2%}  test {scores['test']:.2%}{perplexity}")


def add_data_and_train_commands(sub: Any) -> None:
    """Register `data` and `train` on the CLI's subcommands."""
    p = sub.add_parser("data", help="show how the engine reads a data set (classes, input shape, splits)")
    p.add_argument("data", help="a built-in name (digits, fashion-mnist) or a path to an .npz, IDX folder or "
                                "image folder")
    _add_data_options(p)
    p.add_argument("--json", action="store_true", help="print the task spec that config.json would record")
    p.set_defaults(handler=_cmd_data)

    p = sub.add_parser("train", help="train a weight-sharing supernet once")
    p.add_argument("supernet", help="registered supernet name (see `nasengine supernets`)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--data", default=None,
                   help="data set: a built-in name (digits, fashion-mnist) or a path to an .npz (x, y[, x_val, "
                        "y_val, x_test, y_test]), a folder of MNIST-style IDX files, a folder with one "
                        "sub-folder of PNG/JPEG images per class, a TSV of labelled text, or a .txt / .jsonl of "
                        "text for a language model (default: the family's own, if it names one)")
    _add_data_options(p)
    p.add_argument("--epochs", type=positive_int, help="default 20, or fewer if they would take over 30 minutes "
                                                       "here (timed on the first steps); families grown from a "
                                                       "checkpoint: their own (bert 2, llama 1)")
    p.add_argument("--budget-minutes", type=positive_float, metavar="M",
                   help="instead of --epochs: as many epochs as fit in M minutes on this machine, timed on the first "
                        "steps (the learning-rate schedule is sized to them; a resumed run keeps its epochs)")
    p.add_argument("--seed", type=whole_number, help="default 0")
    p.add_argument("--recipe", help="sandwich (default), progressive or sorted (nested members, search-free picks)")
    p.add_argument("--batch-size", type=positive_int, help="default 32")
    p.add_argument("--lr", type=positive_float, help="default 0.004, bert 1e-4 (AdamW, cosine schedule)")
    p.add_argument("--warmup", type=positive_or_zero_float, default=None,
                   help="linear warm-up as a share of all steps, 0..0.5 (default: one epoch but at most half the "
                        "run; bert 0.06)")
    p.add_argument("--n-random", type=whole_number, help="random subnets per step besides max and min (default 1)")
    p.add_argument("--teacher", default=None, metavar="auto|SN|EXP",
                   help="distil every subnet from a fixed teacher instead of the in-place largest subnet: auto trains "
                        "the largest subnet alone first (--teacher-epochs, its own schedule; the supernet starts from "
                        "it), SN names a trained supernet of the same task whose largest subnet teaches, or an "
                        "export")
    p.add_argument("--teacher-epochs", type=positive_int, default=None,
                   help="with --teacher auto: epochs of training the largest subnet alone (default: --epochs)")
    p.add_argument("--teacher-lr", type=positive_float, default=None,
                   help="with --teacher auto: peak learning rate of the teacher phase (default: --lr); a lower --lr "
                        "then keeps the recipe's epochs from undoing the teacher's weights")
    p.add_argument("--kd-temperature", type=positive_float, default=None,
                   help="temperature of the distillation targets (default 1)")
    p.add_argument("--resolution", default=None, choices=["per-step", "per-subnet"],
                   help="elastic resolution in training: per-subnet (default; each subnet at its own: the largest "
                        "always at the largest, as BigNAS) or per-step (one resolution per step for every subnet, as "
                        "Once-for-All)")
    p.add_argument("--sampler", default=None,
                   help="random subnets of each step: uniform (default), cost-uniform, attentive-best, "
                        "attentive-worst, complexity-shift, or a plugin's (see supernets/training/samplers.py)")
    p.add_argument("--checkpoint-every", type=whole_number, default=None,
                   help="checkpoint within an epoch every N steps (default 200; 0: only at epoch ends)")
    p.add_argument("--checkpoint-seconds", type=positive_or_zero_float, default=None,
                   help="... or every S seconds of training, whichever comes first (default 120; 0: off)")
    p.add_argument("--set", action="append", metavar="KEY=JSON",
                   help="override a supernet constructor argument, e.g. --set head_width=128 (repeatable; an "
                        "unknown key lists the keys the family takes)")
    p.add_argument("--checkpoint", default=None, metavar="DIR|FILE.gguf",
                   help="pretrained checkpoint for families grown from one: a Hugging Face-format directory "
                        "(config.json, model.safetensors, tokenizer.json or vocab.txt), or a GGUF file (llama) "
                        "(default: bert the installed MiniLM-L6, llama the installed SmolLM2-135M-Instruct)")
    p.add_argument("--init-from", default=None, metavar="SN",
                   help="start from the weights of a trained supernet with the same parameter shapes (e.g. fine-"
                        "tune it with other strides, resolutions or data) instead of a random initialisation")
    p.set_defaults(handler=_cmd_train)
