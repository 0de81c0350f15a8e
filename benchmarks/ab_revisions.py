"""Run one benchmark script against the code of two git revisions, alternating, and report each figure's ratio.

The script (from the working tree) is run with the packages of `--base` (a temporary git worktree) and of the
working tree in turn, `--rounds` times each (A B A B ...), so both see the same phases of a noisy machine. The
script must accept `--json PATH` and write a flat or one-level nested object of numbers there. With
`--script-from-each`, each revision runs its own copy of the script (for revisions whose import paths differ,
such as those before the component folders were installed as nasengine.kernels, ...).

    python benchmarks/ab_revisions.py --base HEAD~3 --rounds 3 -- benchmarks/measurement_cost.py --archs 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

COMPONENTS = ("kernels", "supernets", "predictors", "search_spaces")


def import_root(tree: Path, scratch: Path) -> Path:
    """A directory to put on PYTHONPATH so that `tree`'s packages import as installed: a tree whose component
    folders install as nasengine.<name> (setup.py maps them) gets a `nasengine/` of links holding them; an older
    tree, whose folders were top-level packages, is its own root."""
    if not (tree / "setup.py").is_file():
        return tree
    package = scratch / "nasengine"
    package.mkdir(parents=True)
    for entry in (tree / "nasengine").iterdir():
        (package / entry.name).symlink_to(entry)
    for name in COMPONENTS:
        (package / name).symlink_to(tree / name)
    return scratch


def _flat(data: dict, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key} / "))
        elif isinstance(value, (int, float)):
            out[f"{prefix}{key}"] = float(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare the working tree against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--script-from-each", action="store_true",
                        help="run each revision's own copy of the script (import paths differ between them)")
    parser.add_argument("script", nargs=argparse.REMAINDER, help="-- SCRIPT [ARGS...]")
    args = parser.parse_args()
    script = [a for a in args.script if a != "--"]
    repo = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                               check=True).stdout.strip())
    with tempfile.TemporaryDirectory() as tmp:
        base_tree = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(base_tree), args.base],
                       check=True, capture_output=True)
        try:
            roots = {"base": import_root(base_tree, Path(tmp) / "base-root"),
                     "current": import_root(repo, Path(tmp) / "current-root")}
            figures: dict[str, list[dict[str, float]]] = {"base": [], "current": []}
            for i in range(args.rounds):
                for label, tree in (("base", base_tree), ("current", repo)):
                    out = Path(tmp) / f"{label}-{i}.json"
                    env = {**os.environ, "PYTHONPATH": str(roots[label])}
                    source = (tree if args.script_from_each else repo) / script[0]
                    subprocess.run([sys.executable, str(source), *script[1:], "--json", str(out)],
                                   check=True, env=env, cwd=tmp, stdout=subprocess.DEVNULL)
                    figures[label].append(_flat(json.loads(out.read_text())))
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(base_tree)],
                           capture_output=True)
    print(f"{script[0]}: {args.base} vs working tree, {args.rounds} alternating rounds\n")
    print("| figure | base (median) | current (median) | current / base (median of rounds) |")
    print("|---|---|---|---|")
    for key in figures["base"][0]:
        base = [f[key] for f in figures["base"]]
        current = [f[key] for f in figures["current"]]
        ratios = [c / b for c, b in zip(current, base) if b]
        print(f"| {key} | {statistics.median(base):.4g} | {statistics.median(current):.4g} | "
              f"{statistics.median(ratios):.3f} |")


if __name__ == "__main__":
    main()
