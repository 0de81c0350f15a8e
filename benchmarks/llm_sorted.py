"""Sorted fine-tuning of SmolLM2-135M on 2 cores: every member's held-out perplexity before and after, prefill and
decode latency per member, the searched front beside the members, and the export checked in transformers and GGUF.

Text: the SST-2 review sentences in ../shared/data/text/sst2 (training sentences as training text, eight to a
document; the dev sentences as held-out text, never trained on). Steps, in order, each skipped when its result
file in WORK exists (so the benchmark resumes):

1. parity   the largest subnet, before training, against transformers reading the same GGUF itself
2. before   held-out perplexity of every member (the sorted members and depth-only / half-MLP variants)
3. train    `nasengine train llama --recipe sorted`, sized to about --minutes from a timed probe step
4. after    the same table on the trained supernet
5. latency  prefill (P = --max-length tokens) and decode per token (cache C = --cache) on torch-cpu-1t and -2t
6. search   `nasengine search` on perplexity and decode latency (nsga2), and `--strategy members`
7. export   the best subnet at <= 50% of the full model's decode latency, as hf + GGUF (F16, Q8_0): greedy
            tokens in transformers against ours for 3 prompts, GGUF logits read back, and SST-2 sentiment by
            prompting (log-likelihood of " positive" against " negative")

    python benchmarks/llm_sorted.py --work runs/llm [--minutes 60] [--evals 40]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "text" / "sst2"
PROMPTS = ["The movie was", "My favourite thing about the city is", "The capital of France is"]
DEVICES = ("torch-cpu-1t", "torch-cpu-2t")


def _cli(*args: object) -> None:
    subprocess.run([sys.executable, "-m", "nasengine", *map(str, args)], check=True)


def _step(work: Path, name: str, compute: Callable[[], Any]) -> Any:
    """`compute()` once: its JSON result is kept in WORK/NAME.json and read back on later runs."""
    path = work / f"{name}.json"
    if path.exists():
        return json.loads(path.read_text())
    start = time.perf_counter()
    print(f"[{name}] ...", flush=True)
    result = compute()
    result = {**result, "seconds": round(time.perf_counter() - start, 1)} if isinstance(result, dict) else result
    path.write_text(json.dumps(result, indent=2))
    print(f"[{name}] done in {time.perf_counter() - start:.0f} s", flush=True)
    return result


def _sentences(name: str, column: str) -> list[str]:
    with open(SST2 / name, newline="") as f:
        return [row[column].strip() for row in csv.DictReader(f, delimiter="\t") if row[column].strip()]


def write_corpus(directory: Path, dev_sentences: int) -> tuple[Path, Path]:
    """train.txt (training sentences of at least 8 words, shuffled, 8 to a document) and dev.txt (the first
    `dev_sentences` dev sentences, 8 to a document); documents are separated by blank lines."""
    directory.mkdir(parents=True, exist_ok=True)
    train = sorted({s for s in _sentences("train.tsv", "sentence") if len(s.split()) >= 8})
    random.Random(0).shuffle(train)
    dev = _sentences("dev.tsv", "content")[:dev_sentences]
    for name, sentences in (("train.txt", train), ("dev.txt", dev)):
        docs = [" ".join(sentences[i: i + 8]) for i in range(0, len(sentences), 8)]
        (directory / name).write_text("\n\n".join(docs) + "\n")
    return directory / "train.txt", directory / "dev.txt"


def table_archs(space: Any) -> dict[str, dict[str, Any]]:
    """The full model, the sorted members (what `--recipe sorted` trains), every depth at full width (Sorted
    LLaMA's exits) and half the MLP channels at two depths (MatFormer's); each arch once."""
    from nasengine.search_spaces.samplers import nested_archs

    depth_gene = space.gene("depth")
    top = space.max()
    full_mlp, full_kv = top["l0.mlp"], top["l0.kv"]
    mlp_options = space.gene("l0.mlp").options

    def uniform(depth: int, mlp: int, kv: int) -> dict[str, Any]:
        return space.validate({"depth": depth, **{f"l{i}.mlp": mlp for i in range(depth)},
                               **{f"l{i}.kv": kv for i in range(depth)}})

    half = min(mlp_options, key=lambda m: abs(m - full_mlp / 2))
    candidates = [("full", top), *((f"member{i}", a) for i, a in enumerate(nested_archs(space)))]
    candidates += [(f"depth{d}", uniform(d, full_mlp, full_kv)) for d in depth_gene.options]
    candidates += [(f"depth{d}-mlp{half}", uniform(d, half, full_kv))
                   for d in (depth_gene.options[-1], depth_gene.options[len(depth_gene.options) // 2])]
    archs: dict[str, dict[str, Any]] = {}
    for name, arch in candidates:
        if all(space.key(arch) != space.key(a) for a in archs.values()):
            archs[name] = arch
    return archs


def describe(arch: dict[str, Any]) -> str:
    depth = arch["depth"]
    mlp = sorted({arch[f"l{i}.mlp"] for i in range(depth)})
    kv = sorted({arch[f"l{i}.kv"] for i in range(depth)})
    return f"{depth} layers, MLP {'/'.join(map(str, mlp))}, KV groups {'/'.join(map(str, kv))}"


def perplexities(net: Any, task: Any, archs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from nasengine.evaluation.evaluator import Evaluator

    evaluator = Evaluator(net, task, "val")
    test = task.split("test")
    rows = {}
    for name, arch in archs.items():
        start = time.perf_counter()
        scores = evaluator.scores(arch, test)
        rows[name] = {"perplexity": scores["perplexity"], "accuracy": scores["accuracy"],
                      "params": net.cost(arch).params, "arch": arch, "what": describe(arch)}
        print(f"  {name:<14} {describe(arch):<40} ppl {scores['perplexity']:9.2f}  "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    return {"tokens": int(test.identity["tokens"]), "blocks": len(test), "rows": rows}


def parity(checkpoint: Path) -> dict[str, Any]:
    """Max abs logit difference of the largest subnet (importance-reordered) and transformers on real text, in
    float32 (what both run) and float64 (where rounding is out of the way, so what remains is a difference in what
    is computed)."""
    import transformers
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    from nasengine import supernets

    net = supernets.create("llama", checkpoint=str(checkpoint), max_length=128).eval()
    config = transformers.AutoConfig.from_pretrained(str(checkpoint.parent), gguf_file=checkpoint.name)
    config._attn_implementation = "eager"
    hf = transformers.LlamaForCausalLM(config).eval()
    tensors = load_gguf_checkpoint(str(checkpoint), return_tensors=True, model_to_load=hf)["tensors"]
    hf.load_state_dict(tensors, strict=False)
    hf.tie_weights()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(checkpoint.parent), gguf_file=checkpoint.name)
    text = " ".join(_sentences("dev.tsv", "content")[:12])
    ids = torch.tensor([tokenizer(text).input_ids[:128]])
    with torch.no_grad():
        ours, theirs = net(ids), hf(ids).logits
        ours64, theirs64 = net.double()(ids), hf.double()(ids).logits
    return {"tokens": ids.shape[1], "max_abs_logit_diff": float((ours - theirs).abs().max()),
            "max_abs_logit": float(theirs.abs().max()),
            "float64_max_abs_logit_diff": float((ours64 - theirs64).abs().max()),
            "same_argmax": float((ours.argmax(-1) == theirs.argmax(-1)).float().mean())}


def probe_step_seconds(net: Any, task: Any, batch_size: int) -> float:
    """Seconds of one sorted training step (all members, forward and backward) on this machine."""
    from nasengine.supernets.training.loop import StepRule, train_step
    from nasengine.supernets.training.recipes import Sorted
    import numpy as np

    phase = Sorted().phases(net.space, 1)[0]
    split = task.split("train")
    x, y = {"input_ids": split.inputs["input_ids"][:batch_size]}, split.labels[:batch_size]
    net.train()
    times = []
    for _ in range(2):
        start = time.perf_counter()
        train_step(net, x, y, phase, np.random.default_rng(0), StepRule(1, 0.0))  # the train command's n_random
        net.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    net.eval()
    return min(times)


def latencies(net: Any, archs: dict[str, dict[str, Any]], cache: int) -> dict[str, Any]:
    from nasengine.measurement.devices import get_device
    from nasengine.measurement.devices.base import Workload
    from nasengine.searching.supernet_metrics import measure_phases

    rows: dict[str, Any] = {}
    for device_name in DEVICES:
        device = get_device(device_name)
        for name, arch in archs.items():
            prefill = device.measure(Workload.of_supernet(net, arch)).median_ms
            decode = measure_phases(net, arch, device, cache)["decode"].median_ms
            rows.setdefault(name, {})[device_name] = {"prefill_ms": prefill, "decode_ms": decode}
            print(f"  {device_name} {name:<14} prefill {prefill:8.1f} ms  decode {decode:6.2f} ms/token", flush=True)
    return {"rows": rows}


def sentiment_accuracy(module: Any, tokenizer: Any, rows: list[tuple[int, str]]) -> float:
    """SST-2 by prompting: the label whose continuation (" positive" / " negative") is more likely."""
    def logprob(prompt: str, answer: str) -> float:
        head, tail = tokenizer.encode(prompt).ids, tokenizer.encode(prompt + answer).ids
        ids = torch.tensor([tail])
        with torch.no_grad():
            logits = torch.log_softmax(module(ids)[0].float(), dim=-1)
        return float(sum(logits[i - 1, tail[i]] for i in range(len(head), len(tail))))

    correct = 0
    for label, sentence in rows:
        prompt = f"Review: {sentence}\nSentiment (positive or negative):"
        guess = int(logprob(prompt, " positive") > logprob(prompt, " negative"))
        correct += int(guess == label)
    return correct / len(rows)


def sst2_rows(count: int) -> list[tuple[int, str]]:
    with open(SST2 / "dev.tsv", newline="") as f:
        rows = [(int(r["label"]), r["content"]) for r in csv.DictReader(f, delimiter="\t")]
    return rows[:count]


def export_checks(exp: Path, before: Any, after: Any, tokenizer_path: Path, sentiment_rows: int) -> dict[str, Any]:
    """Greedy tokens of the transformers directory against ours, GGUF logits read back, SST-2 by prompting."""
    import transformers

    from nasengine.exporting.subnet import load_subnet
    from nasengine.supernets.llama_export import from_checkpoint, generate_ids
    from nasengine.supernets.llama_import import read_tokenizer

    ours = load_subnet(exp).eval()
    tokenizer = read_tokenizer(exp)
    theirs = transformers.LlamaForCausalLM.from_pretrained(str(exp / "hf")).eval()
    greedy = []
    for prompt in PROMPTS:
        ids = tokenizer.encode(prompt).ids
        mine = generate_ids(ours, ids, 16)
        with torch.no_grad():
            hf = theirs.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False)[0, len(ids):].tolist()
        greedy.append({"prompt": prompt, "same": mine == hf[: len(mine)], "text": tokenizer.decode(mine)})
    block = torch.tensor([tokenizer.encode(" ".join(s for _, s in sst2_rows(8))).ids[:128]])
    gguf = {}
    with torch.no_grad():
        reference = ours(block)
        for name in ("model.gguf", "model.q8_0.gguf"):
            model, _ = from_checkpoint(exp / name)
            diff = (model.eval()(block) - reference).abs()
            gguf[name] = {"max_abs_logit_diff": float(diff.max()), "mean_abs_logit_diff": float(diff.mean()),
                          "max_abs_logit": float(reference.abs().max())}
    rows = sst2_rows(sentiment_rows)
    original = read_tokenizer(tokenizer_path)
    prompting = {"pick": sentiment_accuracy(ours, tokenizer, rows)}
    for name, net in (("full_before", before), ("full_after", after)):
        prompting[name] = sentiment_accuracy(net.extract(net.space.max()).eval(), original, rows)
    return {"greedy": greedy, "gguf": gguf, "sst2_rows": len(rows), "sst2_prompting": prompting}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, default=None, help="GGUF or HF directory (default: SmolLM2)")
    parser.add_argument("--minutes", type=float, default=60.0, help="training time to size the run to")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--cache", type=int, default=256, help="key/value cache length of the decode latency")
    parser.add_argument("--evals", type=int, default=40)
    parser.add_argument("--sentiment-rows", type=int, default=300)
    parser.add_argument("--dev-sentences", type=int, default=400, help="SST-2 dev sentences as held-out text")
    args = parser.parse_args()
    from nasengine import supernets
    from nasengine.supernets.llama_import import default_checkpoint
    from nasengine.tasks.causal_lm import open_lm
    from nasengine.training.loading import load_trained

    checkpoint = (args.checkpoint or default_checkpoint()).resolve()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    train_txt, dev_txt = write_corpus(work / "text", args.dev_sentences)
    options = {"tokenizer": checkpoint, "dev": dev_txt, "max_length": args.max_length, "val_fraction": 0.005}
    _step(work, "parity", lambda: parity(checkpoint))
    before_net = supernets.create("llama", checkpoint=str(checkpoint), max_length=args.max_length).eval()
    task = open_lm(train_txt, options)
    archs = table_archs(before_net.space)
    before = _step(work, "before", lambda: perplexities(before_net, task, archs))

    def size_training() -> dict[str, Any]:
        seconds = probe_step_seconds(before_net, task, args.batch_size)
        steps = max(1, int(args.minutes * 60 / seconds))
        return {"step_seconds": seconds, "steps": steps, "blocks": steps * args.batch_size,
                "train_blocks_available": len(task.split("train"))}

    plan = _step(work, "plan", size_training)
    sn = work / "sn"
    if not (sn / "config.json").exists():
        start = time.perf_counter()
        _cli("train", "llama", "--checkpoint", checkpoint, "--data", train_txt, "--dev", dev_txt, "--recipe",
             "sorted", "--max-length", args.max_length, "--batch-size", args.batch_size, "--max-train",
             plan["blocks"], "--val-fraction", 0.005, "--out", sn)
        (work / "train_wall.json").write_text(json.dumps({"seconds": time.perf_counter() - start}))
    net, config = load_trained(sn)
    after = _step(work, "after", lambda: perplexities(net.eval(), task, archs))
    timing = _step(work, "latency", lambda: latencies(net, archs, args.cache))
    run, members = work / "search", work / "members"
    for out, strategy in ((run, "nsga2"), (members, "members")):
        if not (out / "results.csv").exists():
            _cli("search", sn, "--out", out, "--strategy", strategy, "--evals", args.evals, "--device",
                 DEVICES[0], "--objectives", "perplexity,decode_ms", "--decode-cache", args.cache, "--quiet")
    pick = _step(work, "pick", lambda: pick_half_latency(run, members, net))
    exp = work / "export"
    if not (exp / "manifest.json").exists():
        _cli("export", run, "--out", exp, "--arch", json.dumps(pick["arch"]), "--format", "hf", "--format", "gguf",
             "--format", "gguf-q8_0", "--device", DEVICES[0])
    checks = _step(work, "checks", lambda: export_checks(exp, before_net, net, checkpoint,
                                                                   args.sentiment_rows))
    manifest = json.loads((exp / "manifest.json").read_text())
    summary = {"checkpoint": str(checkpoint), "training": config["training"], "plan": plan,
               "train_tokens": config["task"]["split"]["sizes"]["train"] * args.max_length,
               "train_wall_seconds": json.loads((work / "train_wall.json").read_text())["seconds"]
               if (work / "train_wall.json").exists() else None,
               "parity": json.loads((work / "parity.json").read_text()), "before": before, "after": after,
               "latency": timing, "pick": pick,
               "export": {k: manifest.get(k) for k in ("perplexity", "accuracy", "latency_ms", "phases", "params")},
               "checks": checks}
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    print_tables(summary)


def pick_half_latency(run: Path, members: Path, net: Any) -> dict[str, Any]:
    """The lowest validation perplexity among searched subnets and members at <= 50% of the full model's decode
    latency (the full model's, from the members run: it is the largest member)."""
    import pandas as pd

    column = f"decode_ms:{DEVICES[0]}"
    searched, nested = pd.read_csv(run / "results.csv"), pd.read_csv(members / "results.csv")
    full_key = json.dumps(net.space.max(), separators=(",", ":"))
    full = nested[nested["arch"] == full_key].iloc[0]
    both = pd.concat([searched.assign(source="nsga2"), nested.assign(source="members")], ignore_index=True)
    fits = both[both[column] <= 0.5 * full[column]].sort_values("perplexity")
    if fits.empty:
        raise SystemExit(f"no subnet at <= 50% of the full model's {full[column]:.2f} ms decode")
    best = fits.iloc[0]
    return {"arch": json.loads(best["arch"]), "source": best["source"], "val_perplexity": float(best["perplexity"]),
            "decode_ms": float(best[column]), "full_decode_ms": float(full[column]),
            "full_val_perplexity": float(full["perplexity"]), "what": describe(json.loads(best["arch"])),
            "front": _front(both, column)}


def _front(frame: Any, column: str) -> list[dict[str, Any]]:
    """Non-dominated (perplexity, decode ms) rows, fastest first."""
    rows = frame.sort_values([column, "perplexity"])
    out, best = [], math.inf
    for _, row in rows.iterrows():
        if row["perplexity"] < best:
            best = float(row["perplexity"])
            out.append({"source": row["source"], "decode_ms": float(row[column]), "val_perplexity": best,
                        "what": describe(json.loads(row["arch"]))})
    return out


def print_tables(summary: dict[str, Any]) -> None:
    before, after, timing = summary["before"]["rows"], summary["after"]["rows"], summary["latency"]["rows"]
    full = after["full"]["perplexity"]
    print("| subnet | params | ppl before | ppl after | after / full | prefill 1t | decode 1t | prefill 2t | "
          "decode 2t |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, row in after.items():
        t1, t2 = timing[name][DEVICES[0]], timing[name][DEVICES[1]]
        print(f"| {name}: {row['what']} | {row['params'] / 1e6:.1f} M | {before[name]['perplexity']:.1f} | "
              f"{row['perplexity']:.1f} | {row['perplexity'] / full:.2f} | {t1['prefill_ms']:.0f} ms | "
              f"{t1['decode_ms']:.1f} ms | {t2['prefill_ms']:.0f} ms | {t2['decode_ms']:.1f} ms |")
    print(json.dumps({k: summary[k] for k in ("parity", "pick", "export", "checks")}, indent=2))


if __name__ == "__main__":
    main()
