"""How good are per-layer lookup tables against end-to-end measurement on this machine?

For each device: profile every distinct layer of a supernet once, then measure `--check` random subnets end
to end; the table is calibrated on half and judged on the other half (MAPE of the raw sum and of the
calibrated sum, Kendall tau). Uses the same code path as `nasengine device profile`.

    python benchmarks/lookup_table.py runs/supernet [--devices ort-cpu-1t,ort-cpu-2t,torch-cpu-1t] [--check 40]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from nasengine.measurement.profiling import profile_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("supernet_dir", type=Path)
    parser.add_argument("--devices", default="ort-cpu-1t,ort-cpu-2t,torch-cpu-1t")
    parser.add_argument("--check", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for device in args.devices.split(","):
            result = profile_device(device, args.supernet_dir, Path(tmp) / f"{device}.json", args.check,
                                    progress=False)
            rows.append((device, result))
            print(f"{device}: done in {result['seconds']:.0f}s", flush=True)
    print(f"\nsupernet {args.supernet_dir}, {args.check} random subnets measured end to end per device "
          f"(calibrated on half, judged on the other half)\n")
    print("| device | distinct layers | profiling time (s) | MAPE raw sum | fit | MAPE calibrated | Kendall tau |")
    print("|---|---|---|---|---|---|---|")
    for device, r in rows:
        q = r["report"]
        print(f"| {device} | {r['entries']} | {r['seconds']:.0f} | {q['mape_raw']:.1%} | {q['fit']} "
              f"| {q['mape_calibrated']:.1%} "
              f"| {q['kendall_tau']:.3f} |")


if __name__ == "__main__":
    main()
