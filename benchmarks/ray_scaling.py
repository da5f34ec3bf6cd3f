"""Benchmark (e): ``--executor ray`` on a local cluster against the local executor, on the same matrix.

One local Ray cluster is started (with this machine's CPUs; its start-up is timed on its own) and kept for
every ray run, so each run's time is what ``advbench run --executor ray --address auto`` pays on a running
cluster: worker processes start (torch imported, plugins loaded, attacks built), the samples go through the
object store, each worker loads its model, and results come back to the driver, which records them.

Three configurations run the same matrix (default: 2 CNNs x fgsm, pgd x 2 eps on all 1,000 test samples), in turn
within each repeat: the local executor, ray with 1 worker and ray with 2 workers, every one at one torch thread per
process (CPU convolutions differ in the last bit with the thread count, so only equal counts can give identical
rows; one thread per worker is also how a many-core machine is best shared out). It prints median wall times side by side, the speed-up from 1 to 2 workers
(ideal: 2, bounded by the number of units and of cores), the overhead per cell of ray with 1 worker over the
local executor, the cluster's start-up, and checks that all three give identical rows (every column but
``seconds``).

    python benchmarks/ray_scaling.py [--models cnn.mnist5k_std,cnn.mnist5k_pgdat] [--repeats 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import csv_list, markdown_table, median, print_table  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="cnn.mnist5k_std,cnn.mnist5k_pgdat", help="comma-separated model names")
    p.add_argument("--attacks", default="fgsm,pgd")
    p.add_argument("--eps", default="0.1,0.3")
    p.add_argument("--pgd-steps", type=int, default=40, help="PGD steps (advbench's default: 40)")
    p.add_argument("--n-samples", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--num-cpus", type=int, default=None, help="the local cluster's CPUs (default: this machine's)")
    p.add_argument("--out", default=None, help="also write the results as markdown to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import ray
    except ImportError:
        print("error: this benchmark needs Ray: pip install 'advbench[ray]'", file=sys.stderr)
        return 1
    import advbench
    from advbench.engine.ray_executor import connected

    settings = dict(n_samples=args.n_samples, device="cpu", seed=0, threads=1,
                    attack_options={"pgd": {"steps": args.pgd_steps}})
    n_cells = len(csv_list(args.models)) * len(csv_list(args.attacks)) * len(csv_list(args.eps))
    cpus = args.num_cpus or os.cpu_count() or 1
    configs = {"local": {}, "ray, 1 worker": {"executor": "ray", "workers": 1},
               "ray, 2 workers": {"executor": "ray", "workers": 2}}
    times: dict[str, list[float]] = {name: [] for name in configs}
    rows: dict[str, object] = {}
    t0 = time.perf_counter()
    with connected(ray, None, cpus):
        start_up = time.perf_counter() - t0
        for repeat in range(args.repeats):
            for name, extra in configs.items():
                t = time.perf_counter()
                result = advbench.evaluate(args.models, args.attacks, args.eps, **settings, **extra)
                times[name].append(time.perf_counter() - t)
                rows[name] = result.rows.drop(columns=["seconds"])
                print(f"repeat {repeat + 1}/{args.repeats} {name}: {times[name][-1]:.1f} s", file=sys.stderr)
    identical = all(rows[n].equals(rows["local"]) for n in configs)
    med = {n: median(v) for n, v in times.items()}
    table = [[n, f"{med[n]:.1f}", " ".join(f"{t:.1f}" for t in times[n]), f"{med[n] / n_cells:.2f}"] for n in configs]
    speedup = med["ray, 1 worker"] / med["ray, 2 workers"]
    overhead = (med["ray, 1 worker"] - med["local"]) / n_cells
    # paired within a repeat (the three ran back to back): less exposed to the load changing between repeats
    paired_speedup = median([a / b for a, b in zip(times["ray, 1 worker"], times["ray, 2 workers"])])
    paired_ratio = median([a / b for a, b in zip(times["ray, 1 worker"], times["local"])])
    headers = ["executor", "median wall (s)", "runs (s)", "median s / cell"]
    print_table(f"{args.models} x {args.attacks} x eps {args.eps}, {args.n_samples} samples, pgd {args.pgd_steps} steps",
                headers, table)
    summary = [
        f"speed-up from 1 to 2 Ray workers: {speedup:.2f}x (median / median); {paired_speedup:.2f}x (median of the "
        "per-repeat ratios)",
        f"overhead per cell, ray with 1 worker vs local: {overhead:+.2f} s ({med['ray, 1 worker'] / med['local']:.2f}x the "
        f"local wall time, median / median; {paired_ratio:.2f}x, median of the per-repeat ratios)",
        f"local cluster start-up (once per run without --address): {start_up:.1f} s",
        f"rows identical in all three (every column but seconds): {'yes' if identical else 'NO'}",
    ]
    print("\n".join(summary))
    if args.out:
        machine = (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                   f"ray {ray.__version__}, torch {__import__('torch').__version__}")
        text = (f"# Benchmark (e): --executor ray vs local ({date.today()})\n\n"
                f"Machine: {machine}. Command: `python benchmarks/ray_scaling.py {' '.join(argv or sys.argv[1:])}`.\n\n"
                f"Matrix: {args.models} x {args.attacks} x eps {args.eps} ({n_cells} cells), {args.n_samples} samples, "
                f"pgd {args.pgd_steps} steps, {args.repeats} repeats (configurations in turn within each repeat).\n\n"
                + markdown_table(headers, table) + "\n\n" + "\n".join(f"- {s}" for s in summary) + "\n")
        Path(args.out).write_text(text)
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
