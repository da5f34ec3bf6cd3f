"""Wall time of the batched black-box attacks: HopSkipJump (1,000 label queries per sample) and Square
(5,000 score queries per sample) on mnist-5k test images, through advbench's harness.

    python benchmarks/blackbox_speed.py [--n-samples 200] [--model cnn.mnist5k_std] [--out FILE.md]

Both attacks run on the whole batch at once (no per-sample Python loop), which is what keeps a 200-image run
in minutes on 2 CPU cores. Reported: wall time, success rate, median queries and (HopSkipJump) the median L2
norm of the adversarials found.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import torch

import advbench
from advbench.testing import run_batch
from advbench.plugins import get_host
from advbench.threat import Norm, flat_norm

CASES = [
    # (label, attack, options, norm, eps)
    ("hopskipjump l2, 1,000 queries", "hopskipjump", {"max_queries": 1000}, Norm.L2, math.inf),
    ("square linf 0.1, 5,000 queries", "square", {"max_queries": 5000}, Norm.LINF, 0.1),
    ("square linf 0.2, 5,000 queries", "square", {"max_queries": 5000}, Norm.LINF, 0.2),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=200)
    parser.add_argument("--model", default="cnn.mnist5k_std")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    model = advbench.load_model(args.model)
    x, y = advbench.load_dataset("mnist-5k", "test")
    # an evenly spread subset: the test split is sorted by class
    idx = torch.linspace(0, x.shape[0] - 1, args.n_samples).long()
    x, y = x[idx], y[idx]
    with torch.no_grad():
        clean = model(x).argmax(1)
    keep = clean == y
    x, y, clean = x[keep], y[keep], clean[keep]
    registry = get_host().registry.attacks
    lines = ["| case | samples | wall s | success % | median queries | median L2 |", "|---|---|---|---|---|---|"]
    for label, name, options, norm, eps in CASES:
        attack = registry.get(name).build(**options)
        start = time.perf_counter()
        out = run_batch(attack, model, x, y, norm, eps, seed=args.seed, num_classes=10)
        wall = time.perf_counter() - start
        ok = out.success
        l2 = flat_norm(out.x_adv - x, Norm.L2)[ok]
        row = (f"| {label} | {x.shape[0]} | {wall:.1f} | {100 * ok.float().mean():.1f} | "
               f"{out.n_forward.float().median():.0f} | {l2.median():.3f} |" if ok.any() else "| - |")
        print(row, flush=True)
        lines.append(row)
    header = (f"# Black-box attack speed\n\n{args.model}, {x.shape[0]} correctly classified mnist-5k test images, "
              f"torch {torch.__version__} ({torch.get_num_threads()} threads), {platform.processor() or platform.machine()}.\n\n")
    if args.out:
        args.out.write_text(header + "\n".join(lines) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
