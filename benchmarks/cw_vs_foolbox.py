"""advbench's C&W L2 against Foolbox's ``L2CarliniWagnerAttack``, side by side, at an equal budget.

Both attack the same samples (``--n-samples`` mnist-5k test images spread evenly over the class-sorted split) in
the same batches, unbounded (``epsilons=None`` for Foolbox; advbench's minimum-norm run), with the same binary
search steps, Adam iterations per search step, learning rate, confidence, first c and early abort. advbench runs
through its production harness (``_common.harness_outcome``: oracle, validation, projection, the judging forward
pass); Foolbox runs ``attack(fmodel, x, y, epsilons=None)`` followed by one forward pass to judge its output.
Each side is timed ``--repeats`` times (alternating order; medians). Reported per model: both wall times and
their ratio (target: advbench / Foolbox <= 1.0), both median L2 norms over the clean-correct samples each side
broke and their ratio (target: within 2%), the same ratio on the samples both broke, and the success rates.
Foolbox's output for a sample it could not break is an all-zero image (its initial best), which the model often
misclassifies; such outputs are counted as failures here.

With ``--advbench-defaults``, a third column runs advbench's ``cw_l2`` at its own defaults (one number for what a
user gets without options).

Foolbox is not an advbench dependency: ``python -m pip install foolbox==3.3.4`` (it pulls eagerpy and GitPython,
never torch).

    python benchmarks/cw_vs_foolbox.py [--models cnn.mnist5k_std] [--n-samples 200] [--steps 1000 --search-steps 9]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    csv_list, harness_outcome, median, report, spread_samples, timed,
)

FOOLBOX_VERSION = "3.3.4"
TARGET_TIME = 1.0  # advbench / Foolbox wall time
TARGET_L2 = 0.02  # |advbench / Foolbox median L2 - 1|


def require_foolbox():
    try:
        import foolbox
    except ImportError:
        print(f"error: this benchmark compares advbench with Foolbox, which is not installed (it is not a dependency "
              f"of advbench).\nInstall it with:  python -m pip install foolbox=={FOOLBOX_VERSION}", file=sys.stderr)
        raise SystemExit(1) from None
    return foolbox


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="cnn.mnist5k_std", help="comma-separated model names")
    p.add_argument("--n-samples", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--steps", type=int, default=1000, help="Adam iterations per binary-search step (both sides)")
    p.add_argument("--search-steps", type=int, default=9, help="binary-search steps over c (both sides)")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--confidence", type=float, default=0.0)
    p.add_argument("--c-init", type=float, default=1e-3)
    p.add_argument("--no-abort-early", dest="abort_early", action="store_false")
    p.add_argument("--advbench-defaults", action="store_true", help="also run advbench's cw_l2 at its defaults")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="also write the table as markdown to this file")
    return p.parse_args(argv)


def batched(fn, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenated (x_adv [n, ...], success [n]) of ``fn(x_batch, y_batch)`` over batches."""
    parts = [fn(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def median_l2(x_adv: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> tuple[float, int]:
    norms = (x_adv - x).flatten(1).norm(dim=1)[mask]
    return (float(norms.median()) if norms.numel() else float("nan")), int(mask.sum())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fb = require_foolbox()

    import advbench
    from advbench.engine.config import resolve_device
    from advbench.plugins import get_host
    from advbench.threat import Norm, ThreatModel

    device = resolve_device(args.device)
    x, y = spread_samples(args.n_samples, device)
    spec = get_host().registry.attacks.get("cw_l2")
    shared = dict(steps=args.steps, binary_search_steps=args.search_steps, lr=args.lr, confidence=args.confidence,
                  c_init=args.c_init, abort_early=args.abort_early)
    threat = ThreatModel(Norm.L2, float("inf"))
    print(f"advbench {advbench.__version__} | foolbox {fb.__version__} | torch {torch.__version__} | device {device} "
          f"({torch.get_num_threads()} threads) | {x.shape[0]} samples | batch {args.batch_size} | {shared}",
          file=sys.stderr)
    headers = ["model", "n correct", "advbench s", "foolbox s", "time ratio", "advbench median L2 (n)",
               "foolbox median L2 (n)", "L2 ratio", "L2 ratio, both broke (n)", "targets"]
    if args.advbench_defaults:
        headers[-1:-1] = ["advbench defaults s", "defaults median L2 (n)"]
    rows = []
    for name in csv_list(args.models):
        model = advbench.load_model(name, device=device)
        with torch.no_grad():
            clean_logits = model(x).float()
        correct = clean_logits.argmax(1) == y

        def run_advbench(options, xb, yb, logits_b):
            attack = spec.build(**options)
            gen = torch.Generator(device=device).manual_seed(0)
            x_adv, _, success = harness_outcome(attack, model, xb, yb, logits_b, threat, gen, int(clean_logits.shape[1]))
            return x_adv, success

        def side_advbench(options=shared):
            return batched(lambda xb, yb: run_advbench(options, xb, yb, model(xb).detach().float()), x, y, args.batch_size)

        fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=device)
        fb_attack = fb.attacks.L2CarliniWagnerAttack(
            binary_search_steps=args.search_steps, steps=args.steps, stepsize=args.lr, confidence=args.confidence,
            initial_const=args.c_init, abort_early=args.abort_early)

        def side_foolbox():
            def one(xb, yb):
                _, clipped, _ = fb_attack(fmodel, xb, yb, epsilons=None)
                # Foolbox returns an all-zero image where it found nothing (its best_advs start at zeros), which
                # the model usually misclassifies: that is a failure, not an adversarial at L2 = ||x||.
                placeholder = (clipped == 0).flatten(1).all(dim=1) & (xb != 0).flatten(1).any(dim=1)
                with torch.no_grad():
                    return clipped, (model(clipped).argmax(1) != yb) & ~placeholder
            return batched(one, x, y, args.batch_size)

        times = {"adv": [], "fb": []}
        for r in range(args.repeats):
            for side in (("adv", "fb") if r % 2 == 0 else ("fb", "adv")):
                seconds, out = timed(side_advbench if side == "adv" else side_foolbox, device)
                times[side].append(seconds)
                if side == "adv":
                    adv_x, adv_ok = out
                else:
                    fb_x, fb_ok = out
        adv_ok, fb_ok = adv_ok & correct, fb_ok & correct
        a_l2, a_n = median_l2(adv_x, x, adv_ok)
        f_l2, f_n = median_l2(fb_x, x, fb_ok)
        both = adv_ok & fb_ok
        ab_l2, ab_n = median_l2(adv_x, x, both)
        fb_both, _ = median_l2(fb_x, x, both)
        t_ratio = median(times["adv"]) / median(times["fb"])
        missed = ([f"time ratio > {TARGET_TIME}"] if t_ratio > TARGET_TIME else []) + (
            [f"L2 off by more than {100 * TARGET_L2:.0f}%"] if abs(a_l2 / f_l2 - 1) > TARGET_L2 else [])
        row = [name, str(int(correct.sum())), f"{median(times['adv']):.1f}", f"{median(times['fb']):.1f}",
               f"{t_ratio:.2f}", f"{a_l2:.4f} ({a_n})", f"{f_l2:.4f} ({f_n})", f"{a_l2 / f_l2:.4f}",
               f"{ab_l2 / fb_both:.4f} ({ab_n})", "; ".join(missed) or "met"]
        if args.advbench_defaults:
            d_s, (d_x, d_ok) = timed(lambda: side_advbench({}), device)
            d_l2, d_n = median_l2(d_x, x, d_ok & correct)
            row[-1:-1] = [f"{d_s:.1f}", f"{d_l2:.4f} ({d_n})"]
        rows.append(row)
        print("  " + " | ".join(row), file=sys.stderr, flush=True)
    title = f"C&W L2, advbench vs Foolbox {fb.__version__}: {x.shape[0]} samples, {shared}"
    footer = (f"targets: advbench / Foolbox wall time <= {TARGET_TIME}; median L2 within {100 * TARGET_L2:.0f}%. "
              f"Median L2 over clean-correct samples each side broke; times are medians of {args.repeats} repeat(s).")
    report(title, headers, rows, footer, args.out, "C&W L2 vs Foolbox",
           f"advbench {advbench.__version__}, foolbox {fb.__version__}, torch {torch.__version__}, device {device} "
           f"({torch.get_num_threads()} threads). Settings: {shared}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
