"""How close advbench's PGD is to the cost of its gradient steps, and to torchattacks' PGD.

On one batch (the first ``--batch-size`` mnist-5k test images) and for each model this measures:

* T1: one forward + input-gradient backward pass of the model (the unit of work of a PGD step);
* advbench PGD-k through the production harness (``_common.harness_attack`` ->
  ``advbench.engine.harness.Harness``; so the harness overhead -- oracle, query counting, validation,
  projection, the judging forward -- is included once), with
  ``early_stop=false`` and ``random_start=true`` so every run does exactly k steps;
* torchattacks PGD-k (``atk(x, y)``) with the same eps, steps, step size and random start, plus the one
  forward pass that turns its adversarials into predictions, so that both sides deliver the same thing
  (advbench's harness returns judged predictions; the agreement benchmark times torchattacks the same way).

It prints PGD-k / (k x T1) (target <= 1.10) and advbench / torchattacks (target <= 1.0). Every repeat
measures T1 and both attacks back to back (the attacks in alternating order); ratios are the medians of
the per-repeat ratios, times the medians over repeats.

    python benchmarks/pgd_speed.py [--models cnn.mnist5k_std,test_resnet.mnist5k_std] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import csv_list, harness_attack, median, report, require_torchattacks, timed  # noqa: E402

TARGET_STEP = 1.10  # PGD-k / (k x T1): the bar (torchattacks measures 1.13x, Foolbox 1.23x, ART 1.45x)
TARGET_VS_TA = 1.0  # advbench / torchattacks


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", "--model", dest="models", default="cnn.mnist5k_std,test_resnet.mnist5k_std",
                   help="comma-separated model names")
    p.add_argument("--steps", default="10,20,40", help="comma-separated PGD step counts k")
    p.add_argument("--eps", type=float, default=0.3, help="linf budget; step size 2.5 * eps / k")
    p.add_argument("--batch-size", "--n-samples", dest="batch_size", type=int, default=500,
                   help="the batch: the first N mnist-5k test images")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--t1-reps", type=int, default=5, help="forward+backward timings per repeat (their median is T1)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the table as markdown to this file")
    return p.parse_args(argv)


def fwd_bwd(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    xg = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(xg), y, reduction="sum"), xg)
    return grad


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ta = require_torchattacks()

    import advbench
    from advbench.engine.config import resolve_device
    from advbench.plugins import get_host
    from advbench.threat import Norm, ThreatModel

    device = resolve_device(args.device)
    ks = [int(k) for k in csv_list(args.steps)]
    x_all, y_all = advbench.load_dataset("mnist-5k", "test")
    x, y = x_all[: args.batch_size].to(device), y_all[: args.batch_size].to(device)
    threat = ThreatModel(Norm.LINF, args.eps)
    pgd_spec = get_host().registry.attacks.get("pgd")
    print(f"advbench {advbench.__version__} | torchattacks {ta.__version__} | torch {torch.__version__} | device "
          f"{device} ({torch.get_num_threads()} threads) | batch {x.shape[0]} | eps {args.eps} | "
          f"{args.repeats} repeats", file=sys.stderr)

    headers = ["model", "k", "T1 ms", "advbench s", "torchattacks s", "advbench/(k T1)", "torchattacks/(k T1)",
               "advbench/torchattacks", "targets"]
    rows: list[list[str]] = []
    for model_name in csv_list(args.models):
        model = advbench.load_model(model_name, device=device)
        with torch.no_grad():
            clean_logits = model(x).float()
            num_classes = int(model(x[:1]).shape[1])

        def run_advbench(k: int):
            attack = pgd_spec.build(steps=k, step_size=2.5 * args.eps / k, random_start=True, early_stop=False)
            gen = torch.Generator(device=device).manual_seed(args.seed)
            return harness_attack(attack, model, x, y, clean_logits, threat, gen, num_classes)

        def run_torchattacks(k: int):
            torch.manual_seed(args.seed)
            atk = ta.PGD(model, eps=args.eps, alpha=2.5 * args.eps / k, steps=k, random_start=True)
            adv = atk(x, y)
            with torch.no_grad():
                return model(adv).argmax(1)

        # warm-up: allocator, kernels, autograd graph shapes of both code paths
        for _ in range(3):
            fwd_bwd(model, x, y)
        run_advbench(2)
        run_torchattacks(2)

        per_k: dict[int, dict[str, list[float]]] = {k: {"t1": [], "adv": [], "ta": []} for k in ks}
        for r in range(args.repeats):
            for k in ks:
                t1 = median([timed(lambda: fwd_bwd(model, x, y), device)[0] for _ in range(args.t1_reps)])
                times = {}
                for side in (("adv", "ta") if r % 2 == 0 else ("ta", "adv")):
                    fn = run_advbench if side == "adv" else run_torchattacks
                    times[side] = timed(lambda: fn(k), device)[0]
                per_k[k]["t1"].append(t1)
                per_k[k]["adv"].append(times["adv"])
                per_k[k]["ta"].append(times["ta"])
        for k in ks:
            m = per_k[k]
            step_adv = median([a / (k * t) for a, t in zip(m["adv"], m["t1"])])
            step_ta = median([a / (k * t) for a, t in zip(m["ta"], m["t1"])])
            vs_ta = median([a / b for a, b in zip(m["adv"], m["ta"])])
            missed = []
            if step_adv > TARGET_STEP:
                missed.append(f"advbench/(k T1) > {TARGET_STEP}")
            if vs_ta > TARGET_VS_TA:
                missed.append("advbench slower than torchattacks")
            row = [model_name, str(k), f"{1000 * median(m['t1']):.1f}", f"{median(m['adv']):.3f}",
                   f"{median(m['ta']):.3f}", f"{step_adv:.3f}", f"{step_ta:.3f}", f"{vs_ta:.3f}",
                   "; ".join(missed) or "met"]
            rows.append(row)
            print("  " + " | ".join(row), file=sys.stderr, flush=True)

    title = (f"PGD-k speed, batch {x.shape[0]}, eps {args.eps}, device {device} ({torch.get_num_threads()} threads): "
             f"medians of {args.repeats} repeats")
    footer = (f"targets: advbench PGD-k / (k x T1) <= {TARGET_STEP}; advbench / torchattacks <= {TARGET_VS_TA}. "
              "Ratios are medians of per-repeat ratios (T1 and both attacks measured back to back).")
    report(title, headers, rows, footer, args.out, "PGD speed",
           f"advbench {advbench.__version__}, torchattacks {ta.__version__}, torch {torch.__version__}, device {device} "
           f"({torch.get_num_threads()} threads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
