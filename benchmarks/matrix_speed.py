"""A whole matrix as one ``advbench.evaluate`` (what ``advbench run`` does) against the same cells run one at a
time with torchattacks.

The matrix: ``--models`` x {fgsm, pgd, apgd_ce} x ``--eps`` on the same samples (``--n-samples`` of the mnist-5k
test split, the seeded subset the run picks). advbench runs it as one call (each model loaded once, clean logits
once, misclassified samples never attacked, early stop, broken samples leaving the batch); torchattacks runs each
cell on its own, on every sample, with the same settings (FGSM; PGD with advbench's default steps, step
2.5 eps / steps and a random start; APGD-CE with advbench's default steps, one restart), plus one forward pass
per batch to judge. Models are loaded outside torchattacks' timing (in its favour).

Printed: robust accuracy per cell for both (advbench - torchattacks in pp; target <= +1 pp), the total wall
times and their ratio (target: torchattacks / advbench >= 3).

    python benchmarks/matrix_speed.py [--n-samples 1000] [--eps 0.05,0.1,0.2,0.3] [--out results/matrix_speed.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import csv_list, report, require_torchattacks, timed  # noqa: E402

TARGET_SPEEDUP = 3.0
WEAKER_PP = 1.0
ATTACKS = ("fgsm", "pgd", "apgd_ce")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="cnn.mnist5k_std,test_resnet.mnist5k_std,linear.mnist5k_std")
    p.add_argument("--eps", default="0.05,0.1,0.2,0.3")
    p.add_argument("--n-samples", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    return p.parse_args(argv)


def torchattacks_cell(ta, model, attack: str, eps: float, x, y, batch_size: int, settings: dict, seed: int) -> float:
    """Robust accuracy (%) of one cell run with torchattacks on every sample."""
    torch.manual_seed(seed)
    if attack == "fgsm":
        atk = ta.FGSM(model, eps=eps)
    elif attack == "pgd":
        steps = settings["pgd_steps"]
        atk = ta.PGD(model, eps=eps, alpha=settings["pgd_rel"] * eps, steps=steps, random_start=True)
    else:
        atk = ta.APGD(model, norm="Linf", eps=eps, steps=settings["apgd_steps"], n_restarts=1, loss="ce", seed=seed)
    robust = 0
    for i in range(0, x.shape[0], batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        adv = atk(xb, yb)
        with torch.no_grad():
            robust += int((model(adv).argmax(1) == yb).sum())
    return 100.0 * robust / x.shape[0]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ta = require_torchattacks()
    import advbench
    from advbench.plugins import get_host

    eps = [float(e) for e in csv_list(args.eps)]
    models = csv_list(args.models)
    registry = get_host().registry.attacks
    pgd, apgd = registry.get("pgd").build(), registry.get("apgd_ce").build()
    settings = {"pgd_steps": pgd.steps, "pgd_rel": pgd.alpha(1.0), "apgd_steps": apgd.steps}
    print(f"advbench {advbench.__version__} | torchattacks {ta.__version__} | torch {torch.__version__} | "
          f"{torch.get_num_threads()} threads | {args.n_samples} samples | {settings}", file=sys.stderr)

    # warm-up outside the timing: imports, the plugin host, the dataset and weights caches (torchattacks then
    # starts warm as well)
    advbench.evaluate(models=models, attacks=["fgsm"], eps=eps[:1], n_samples=2, device=args.device)
    adv_s, result = timed(lambda: advbench.evaluate(models=models, attacks=list(ATTACKS), eps=eps,
                                                    n_samples=args.n_samples, batch_size=args.batch_size,
                                                    device=args.device, seed=args.seed, save_adversarials=False),
                          args.device)
    rows_df = result.rows
    x_all, y_all = advbench.load_dataset("mnist-5k", "test")
    ids = torch.as_tensor(sorted(rows_df["sample_id"].unique()))
    x, y = x_all[ids].to(args.device), y_all[ids].to(args.device)

    headers = ["model", "attack", "eps", "advbench robust %", "torchattacks robust %", "diff pp", "flag"]
    rows, ta_s = [], 0.0
    for name in models:
        model = advbench.load_model(name, device=args.device)
        for attack in ATTACKS:
            for e in eps:
                seconds, ta_rob = timed(lambda: torchattacks_cell(ta, model, attack, e, x, y, args.batch_size,
                                                                  settings, args.seed), args.device)
                ta_s += seconds
                cell = rows_df[(rows_df.model == name) & (rows_df.attack == attack) & (rows_df.eps == e)]
                adv_rob = 100.0 * float(cell["robust"].mean())
                diff = adv_rob - ta_rob
                rows.append([name, attack, f"{e:g}", f"{adv_rob:.1f}", f"{ta_rob:.1f}", f"{diff:+.1f}",
                             "ADVBENCH WEAKER" if diff > WEAKER_PP else ""])
                print("  " + " | ".join(rows[-1]), file=sys.stderr, flush=True)
    speedup = ta_s / adv_s
    title = f"{len(models)} models x {len(ATTACKS)} attacks x {len(eps)} eps on {x.shape[0]} samples"
    summary = (f"wall time: advbench (one run) {adv_s:.1f} s, torchattacks (cell by cell) {ta_s:.1f} s, "
               f"speed-up {speedup:.2f}x (target >= {TARGET_SPEEDUP}x: {'met' if speedup >= TARGET_SPEEDUP else 'MISSED'}); "
               f"cells with advbench weaker by more than {WEAKER_PP} pp: {sum(1 for r in rows if r[-1])}")
    report(title, headers, rows, summary, args.out, "Matrix speed: one advbench run vs torchattacks cell by cell",
           f"advbench {advbench.__version__}, torchattacks {ta.__version__}, torch {torch.__version__}, device "
           f"{args.device} ({torch.get_num_threads()} threads). Settings: {settings}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
