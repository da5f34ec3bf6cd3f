"""Wall time and peak memory as the sample count grows: is time linear and memory flat?

For each ``--sizes`` N (default 500, 1000, 4000: mnist-5k's train split has 4,000 images, so every size draws
from it) a fresh Python process runs ``advbench.evaluate`` on N samples (``--models`` x ``--attacks`` x ``--eps``,
rows and adversarials written to a temporary run directory, as ``advbench run`` does) and reports its wall time,
its resident memory before the run (imports, dataset loaded) and its peak (``resource.getrusage`` maxrss). Printed
per size: seconds, seconds per sample relative to the smallest size (linear time: ~1.0), the peak and the growth
of the peak over the baseline.

Memory cannot be perfectly flat: a run holds its samples (the caller's data and the run's selection of it) and
its rows; a cell's adversarials go to a spill file a batch at a time (``advbench.engine.spill``), so what must
not grow with the sample count is everything else: copies of the images per cell, per carry, per
transferability source. The report gives the growth per 1,000 samples so that can be judged.

MNIST images are 3 KB, too small for copies of them to stand out from the allocator's own growth (glibc keeps
freed heap memory; oneDNN caches a kernel per batch shape); ``--input-shape 3,64,64`` runs on synthetic images
of that shape (48 KB each, seeded uniform noise) with a small seeded conv net labelled by its own predictions
(every sample attacked), where a copy of the images is 196 MB at 4,000 samples.

    python benchmarks/scaling.py [--sizes 500,1000,4000] [--input-shape 3,64,64] [--out results/scaling.md]
"""

from __future__ import annotations

import argparse
import math
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import csv_list, report  # noqa: E402

CHILD = r"""
import json, resource, sys, time
import torch
import advbench
args = json.loads(sys.argv[1])
data = dict(split="train")
models = args["models"]
if args["shape"]:  # synthetic images and a small seeded conv net that labels them (every sample attacked)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(args["shape"][0], 16, 3, 2), torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 3, 2),
                              torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 10)).eval()
    x = torch.rand((args["n"], *args["shape"]), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = torch.cat([net(x[i : i + 500]).argmax(1) for i in range(0, len(x), 500)])
    data, models = dict(dataset=(x, y)), {"synthetic_cnn": net}
else:
    advbench.load_dataset("mnist-5k", "train")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
advbench.evaluate(models=models, attacks=args["attacks"], eps=args["eps"], n_samples=args["n"],
                  batch_size=args["batch_size"], device="cpu", out=args["out"], threads=1, **data)
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
    p.add_argument("--input-shape", default=None, help="C,H,W: synthetic images of that shape (module doc)")
    p.add_argument("--out", default=None)
    return p.parse_args(argv)


#: glibc serves every allocation above this size by mmap and returns it on free (its default threshold rises with
#: the largest block freed, up to 32 MiB, and memory below it stays in the heap): the peak then follows the live
#: tensors rather than what the allocator kept. Runs take 1.4-2x as long under it, so it is not a default.
LIVE_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def measure(n: int, args: argparse.Namespace, env: dict[str, str] | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        payload = json.dumps({"n": n, "models": csv_list(args.models), "attacks": csv_list(args.attacks),
                              "eps": [float(e) for e in csv_list(args.eps)], "batch_size": args.batch_size,
                              "out": str(Path(tmp) / "run"),
                              "shape": [int(v) for v in csv_list(args.input_shape)] if args.input_shape else None})
        done = subprocess.run([sys.executable, "-c", CHILD, payload], capture_output=True, text=True, check=True,
                              env={**os.environ, **(env or {})})
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(s) for s in csv_list(args.sizes)]
    results = {n: measure(n, args) for n in sizes}
    live = {n: measure(n, args, LIVE_ENV) for n in sizes}
    first, last = sizes[0], sizes[-1]
    per_first = results[first]["wall"] / first
    image_bytes = 4 * math.prod(int(v) for v in csv_list(args.input_shape or "1,28,28"))
    headers = ["samples", "wall s", "s per sample / at smallest", "baseline MiB", "peak MiB", "peak - baseline MiB",
               "live: peak - baseline MiB", "one copy of the samples MiB"]
    rows = []

    def above(r: dict) -> float:
        return (r["peak_kb"] - r["base_kb"]) / 1024

    for n in sizes:
        r = results[n]
        rows.append([str(n), f"{r['wall']:.1f}", f"{r['wall'] / n / per_first:.2f}", f"{r['base_kb'] / 1024:.0f}",
                     f"{r['peak_kb'] / 1024:.0f}", f"{above(r):.0f}", f"{above(live[n]):.0f}",
                     f"{n * image_bytes / 2**20:.0f}"])

    def growth(found: dict) -> float:
        return (above(found[last]) - above(found[first])) / ((last - first) / 1000)

    what = f"synthetic {args.input_shape} images, a small conv net" if args.input_shape else args.models
    title = f"scaling: {what} x {args.attacks} x eps {args.eps}, batch {args.batch_size}"
    summary = (f"time per sample at {last} vs {first}: {results[last]['wall'] / last / per_first:.2f}x (linear: 1.0); "
               f"peak above baseline grows {growth(results):.1f} MiB per 1,000 samples, live (allocator keeping "
               f"nothing, {' '.join(f'{k}={v}' for k, v in LIVE_ENV.items())}) {growth(live):.1f}; one copy of the "
               f"samples is {1000 * image_bytes / 2**20:.1f} MiB per 1,000")
    import torch

    report(title, headers, rows, summary, args.out, "Scaling with the sample count", f"torch {torch.__version__}, CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
