"""Wall time and peak memory as the sample count grows: is time linear and memory flat?

For each ``--sizes`` N (default 500, 1000, 4000: mnist-5k's train split has 4,000 images, so every size draws
from it) a fresh Python process runs ``advbench.evaluate`` on N samples (``--models`` x ``--attacks`` x ``--eps``,
rows and adversarials written to a temporary run directory, as ``advbench run`` does) and reports its wall time,
its resident memory before the run (imports, dataset loaded) and its peak (``resource.getrusage`` maxrss). Printed
per size: seconds, seconds per sample relative to the smallest size (linear time: ~1.0), the peak and the growth
of the peak over the baseline.

Memory cannot be perfectly flat: a run holds its samples, and each cell's rows and adversarials until they are
written; what must not happen is memory that grows with the batch count or with the cells (everything is
processed in batches of ``--batch-size``). The report gives the growth per 1,000 samples so that can be judged.

    python benchmarks/scaling.py [--sizes 500,1000,4000] [--out results/scaling.md]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import csv_list, report  # noqa: E402

CHILD = r"""
import json, resource, sys, time
import advbench
args = json.loads(sys.argv[1])
advbench.load_dataset("mnist-5k", "train")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
advbench.evaluate(models=args["models"], attacks=args["attacks"], eps=args["eps"], split="train",
                  n_samples=args["n"], batch_size=args["batch_size"], device="cpu", out=args["out"])
wall = time.perf_counter() - t0
print(json.dumps({"wall": wall, "base_kb": base, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="500,1000,4000")
    p.add_argument("--models", default="cnn.mnist5k_std")
    p.add_argument("--attacks", default="fgsm,pgd")
    p.add_argument("--eps", default="0.1,0.3")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--out", default=None)
    return p.parse_args(argv)


def measure(n: int, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        payload = json.dumps({"n": n, "models": csv_list(args.models), "attacks": csv_list(args.attacks),
                              "eps": [float(e) for e in csv_list(args.eps)], "batch_size": args.batch_size,
                              "out": str(Path(tmp) / "run")})
        done = subprocess.run([sys.executable, "-c", CHILD, payload], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(s) for s in csv_list(args.sizes)]
    results = {n: measure(n, args) for n in sizes}
    first = sizes[0]
    per_first = results[first]["wall"] / first
    headers = ["samples", "wall s", "s per sample / at smallest", "baseline MiB", "peak MiB", "peak - baseline MiB"]
    rows = []
    for n in sizes:
        r = results[n]
        rows.append([str(n), f"{r['wall']:.1f}", f"{r['wall'] / n / per_first:.2f}", f"{r['base_kb'] / 1024:.0f}",
                     f"{r['peak_kb'] / 1024:.0f}", f"{(r['peak_kb'] - r['base_kb']) / 1024:.0f}"])
    last = sizes[-1]
    growth = ((results[last]["peak_kb"] - results[first]["peak_kb"]) / 1024) / ((last - first) / 1000)
    title = f"scaling: {args.models} x {args.attacks} x eps {args.eps}, batch {args.batch_size}"
    summary = (f"time per sample at {last} vs {first}: {results[last]['wall'] / last / per_first:.2f}x (linear: 1.0); "
               f"peak memory grows {growth:.1f} MiB per 1,000 samples")
    import torch

    report(title, headers, rows, summary, args.out, "Scaling with the sample count", f"torch {torch.__version__}, CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
