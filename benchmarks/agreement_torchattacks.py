"""advbench vs torchattacks, side by side: robust accuracy and wall time per (model, attack, eps).

Both libraries attack the same samples (the first ``--n-samples`` of the mnist-5k test split), in the same
batches, with the same hyperparameters, on the same models (``advbench.load_model``: inputs in [0, 1],
normalisation inside, exactly what torchattacks expects). advbench attacks run through
``advbench.engine.runner.execute_attack`` or, where the runner no longer has it, the same contract from
its parts (``_common.harness_attack``: the harness contract: validation, projection into the ball and
[0, 1], re-judging by the model); torchattacks runs ``atk(x, y)`` followed by one forward pass to judge
its adversarials. Each side is timed over all batches, ``--repeats`` times (in alternating order), and the
median is reported. Robust = clean-correct and still correctly classified; accuracies are over all samples.

Adding a pair is one line in ``PAIRS``; a pair whose advbench attack is not registered is skipped.

    python benchmarks/agreement_torchattacks.py [--n-samples 1000] [--out results.md]
"""

from __future__ import annotations

import argparse
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import csv_list, harness_attack, markdown_table, median, print_table, require_torchattacks, timed  # noqa: E402

PGD_STEPS = 20  # torchattacks' PGD default is steps=10, alpha=2/255: both sides get these instead
ITER_STEPS = 10  # BIM / MI-FGSM
APGD_STEPS = 20  # AutoAttack uses 100; 20 keeps the run short on a CPU


def pgd_alpha(eps: float) -> float:
    return 2.5 * eps / PGD_STEPS  # Madry et al.'s rule, advbench's default for steps=20


@dataclass(frozen=True)
class Pair:
    """One comparison row family.

    Attributes:
        label: the row's attack label.
        advbench: the advbench registry name (the pair is skipped when it is not registered).
        options: eps -> advbench attack options (keys the attack does not have are dropped and reported).
        ta_name: the torchattacks attack, for the settings listing.
        torchattacks: (torchattacks module, model, eps, seed) -> a torchattacks attack.
    """

    label: str
    advbench: str
    options: Callable[[float], dict[str, Any]]
    ta_name: str
    torchattacks: Callable[[Any, torch.nn.Module, float, int], Any]


# fmt: off
PAIRS: list[Pair] = [
    Pair("fgsm", "fgsm", lambda e: {}, "FGSM", lambda ta, m, e, s: ta.FGSM(m, eps=e)),
    Pair("pgd", "pgd", lambda e: dict(steps=PGD_STEPS, step_size=pgd_alpha(e), random_start=True, early_stop=False),
         "PGD", lambda ta, m, e, s: ta.PGD(m, eps=e, alpha=pgd_alpha(e), steps=PGD_STEPS, random_start=True)),
    Pair("pgd early_stop", "pgd", lambda e: dict(steps=PGD_STEPS, step_size=pgd_alpha(e), random_start=True, early_stop=True),
         "PGD", lambda ta, m, e, s: ta.PGD(m, eps=e, alpha=pgd_alpha(e), steps=PGD_STEPS, random_start=True)),
    Pair("bim", "bim", lambda e: dict(steps=ITER_STEPS, step_size=e / ITER_STEPS, early_stop=False),
         "BIM", lambda ta, m, e, s: ta.BIM(m, eps=e, alpha=e / ITER_STEPS, steps=ITER_STEPS)),
    Pair("mifgsm", "mifgsm", lambda e: dict(steps=ITER_STEPS, step_size=e / ITER_STEPS, decay=1.0, early_stop=False),
         "MIFGSM", lambda ta, m, e, s: ta.MIFGSM(m, eps=e, alpha=e / ITER_STEPS, steps=ITER_STEPS, decay=1.0)),
    Pair("apgd_ce", "apgd_ce", lambda e: dict(steps=APGD_STEPS, restarts=1),
         "APGD-CE", lambda ta, m, e, s: ta.APGD(m, eps=e, steps=APGD_STEPS, n_restarts=1, loss="ce", seed=s)),
    Pair("apgd_dlr", "apgd_dlr", lambda e: dict(steps=APGD_STEPS, restarts=1),
         "APGD-DLR", lambda ta, m, e, s: ta.APGD(m, eps=e, steps=APGD_STEPS, n_restarts=1, loss="dlr", seed=s)),
    Pair("apgd_t", "apgd_t", lambda e: dict(steps=APGD_STEPS, restarts=1, n_target_classes=9),
         "APGDT", lambda ta, m, e, s: ta.APGDT(m, eps=e, steps=APGD_STEPS, n_restarts=1, n_classes=10, seed=s)),
]
# fmt: on

DEFAULT_MODELS = "cnn.mnist5k_std,test_resnet.mnist5k_std,linear.mnist5k_std"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=DEFAULT_MODELS, help="comma-separated model names")
    p.add_argument("--attacks", default=None,
                   help="comma-separated advbench attack names (default: every paired attack that is registered)")
    p.add_argument("--eps", default="0.1,0.2,0.3", help="comma-separated linf budgets in [0, 1] pixel space")
    p.add_argument("--n-samples", type=int, default=1000, help="the first N mnist-5k test images")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per side; medians are reported")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the table (and settings) as markdown to this file")
    return p.parse_args(argv)


def build_advbench(spec, options: dict[str, Any]) -> tuple[Any, dict[str, Any], list[str]]:
    """(attack, options used, option names dropped because the attack does not have them)."""
    cls = getattr(spec.factory, "__self__", None)
    accepted = set(cls.option_names()) if cls is not None and hasattr(cls, "option_names") else None
    used = {k: v for k, v in options.items() if accepted is None or k in accepted}
    dropped = sorted(set(options) - set(used))
    return spec.build(**used), used, dropped


def advbench_pass(attack, model, x, y, clean_pred, eps, batch_size, device, seed, num_classes) -> torch.Tensor:
    from advbench.threat import Norm, ThreatModel

    threat = ThreatModel(Norm.LINF, eps)
    generator = torch.Generator(device=device).manual_seed(seed)
    preds = [
        harness_attack(attack, model, x[i : i + batch_size], y[i : i + batch_size], clean_pred[i : i + batch_size],
                       threat, generator, num_classes)
        for i in range(0, x.shape[0], batch_size)
    ]
    return torch.cat(preds).cpu()


def torchattacks_pass(atk, model, x, y, eps, batch_size, seed) -> torch.Tensor:
    torch.manual_seed(seed)
    preds = []
    for i in range(0, x.shape[0], batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        adv = atk(xb, yb)
        with torch.no_grad():
            preds.append(model(adv).argmax(dim=1))
        over = (adv - xb).abs().amax().item()
        if over > eps + 1e-5 or adv.min().item() < 0 or adv.max().item() > 1:
            raise RuntimeError(f"torchattacks {type(atk).__name__} left the threat model (linf {over:.4g} > {eps})")
    return torch.cat(preds).cpu()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ta = require_torchattacks()

    import advbench
    from advbench.engine.executor import resolve_device
    from advbench.plugins import get_host
    from advbench.threat import format_eps, parse_eps_list

    device = resolve_device(args.device)
    registry = get_host().registry.attacks
    wanted = set(csv_list(args.attacks)) if args.attacks else None
    if wanted:
        unknown = wanted - {p.advbench for p in PAIRS}
        if unknown:
            print(f"error: no torchattacks pairing for {', '.join(sorted(unknown))}; "
                  f"paired: {', '.join(dict.fromkeys(p.advbench for p in PAIRS))}", file=sys.stderr)
            return 1
    pairs, notes = [], []
    for pair in PAIRS:
        if wanted is not None and pair.advbench not in wanted:
            continue
        if pair.advbench not in registry:
            notes.append(f"skipped {pair.label}: advbench attack {pair.advbench!r} is not registered")
            continue
        pairs.append(pair)
    eps_list = parse_eps_list(args.eps)
    models = csv_list(args.models)

    x_all, y_all = advbench.load_dataset("mnist-5k", "test")
    n = min(args.n_samples, x_all.shape[0])
    x, y = x_all[:n].to(device), y_all[:n].to(device)
    torch.manual_seed(args.seed)

    print(f"advbench {advbench.__version__} | torchattacks {ta.__version__} | torch {torch.__version__} | "
          f"device {device} ({torch.get_num_threads()} threads) | {n} samples | batch {args.batch_size} | "
          f"{args.repeats} repeats | seed {args.seed}", file=sys.stderr)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)

    headers = ["model", "attack", "eps", "clean %", "advbench rob %", "torchattacks rob %", "diff pp",
               "agree %", "advbench s", "torchattacks s", "time ratio", "flag"]
    rows: list[list[str]] = []
    options_seen: dict[str, str] = {}
    flags: list[str] = []
    for model_name in models:
        model = advbench.load_model(model_name, device=device)
        with torch.no_grad():
            clean_pred = torch.cat([model(x[i : i + args.batch_size]).argmax(1) for i in range(0, n, args.batch_size)])
            num_classes = int(model(x[:1]).shape[1])
        correct = (clean_pred == y).cpu()
        y_cpu = y.cpu()
        # warm-up: a few forward + input-gradient passes on one full batch
        for _ in range(3):
            xb = x[: args.batch_size].clone().requires_grad_(True)
            torch.autograd.grad(torch.nn.functional.cross_entropy(model(xb), y[: args.batch_size]), xb)
        for pair in pairs:
            for eps in eps_list:
                attack, used, dropped = build_advbench(registry.get(pair.advbench), pair.options(eps))
                shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in used.items())
                options_seen.setdefault(
                    pair.label,
                    f"advbench {pair.advbench}({shown or 'defaults'}) vs torchattacks {pair.ta_name}, same settings "
                    f"(at eps {format_eps(eps)})" + (f"; not options of advbench's attack, dropped: {dropped}" if dropped else ""),
                )
                atk = pair.torchattacks(ta, model, eps, args.seed)
                adv_times, ta_times, adv_robust, ta_robust = [], [], None, None
                for r in range(args.repeats):
                    order = ("adv", "ta") if r % 2 == 0 else ("ta", "adv")
                    for side in order:
                        if side == "adv":
                            t, pred = timed(lambda: advbench_pass(attack, model, x, y, clean_pred, eps, args.batch_size,
                                                                  device, args.seed, num_classes), device)
                            adv_times.append(t)
                            rob = correct & (pred == y_cpu)
                            if adv_robust is not None and not torch.equal(rob, adv_robust):
                                notes.append(f"advbench {pair.label} {model_name} eps {eps}: not deterministic across repeats")
                            adv_robust = rob if adv_robust is None else adv_robust
                        else:
                            t, pred = timed(lambda: torchattacks_pass(atk, model, x, y, eps, args.batch_size, args.seed),
                                            device)
                            ta_times.append(t)
                            ta_robust = ta_robust if ta_robust is not None else correct & (pred == y_cpu)
                ta_t = median(ta_times)
                adv_t = median(adv_times)
                a_acc = 100 * adv_robust.float().mean().item()
                t_acc = 100 * ta_robust.float().mean().item()
                diff = a_acc - t_acc
                ratio = adv_t / ta_t
                flag = []
                if diff > 0:
                    flag.append("advbench weaker")
                if ratio > 1.0:
                    flag.append("advbench slower")
                row = [model_name, pair.label, format_eps(eps), f"{100 * correct.float().mean().item():.1f}",
                       f"{a_acc:.1f}", f"{t_acc:.1f}", f"{diff:+.1f}",
                       f"{100 * (adv_robust == ta_robust).float().mean().item():.1f}",
                       f"{adv_t:.3f}", f"{ta_t:.3f}", f"{ratio:.2f}", ", ".join(flag)]
                rows.append(row)
                print("  " + " | ".join(row), file=sys.stderr, flush=True)

    title = (f"advbench vs torchattacks {ta.__version__}: robust accuracy (over all {n} samples) and median wall "
             f"time of {args.repeats} runs (batch {args.batch_size}, device {device})")
    print_table(title, headers, rows)
    settings = [f"- {label}: {opts}" for label, opts in options_seen.items()]
    footer = [
        "diff pp = advbench robust accuracy - torchattacks robust accuracy (positive: advbench's attack is weaker).",
        "time ratio = advbench / torchattacks (> 1: advbench slower). advbench time = the harness per batch (oracle, attack, "
        "validation, projection, judging forward); torchattacks time = atk(x, y) + one judging forward.",
        "settings per row:", *settings, *[f"note: {m}" for m in dict.fromkeys(notes)],
    ]
    print("\n".join(footer))
    if args.out:
        header = (f"# advbench vs torchattacks\n\nadvbench {advbench.__version__}, torchattacks {ta.__version__}, "
                  f"torch {torch.__version__}, Python {platform.python_version()}, device {device} "
                  f"({torch.get_num_threads()} threads), {n} mnist-5k test samples, batch {args.batch_size}, "
                  f"{args.repeats} repeats (medians), seed {args.seed}.\n\n")
        Path(args.out).write_text(header + markdown_table(headers, rows) + "\n\n" + "\n".join(footer) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
