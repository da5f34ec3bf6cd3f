"""advbench vs torchattacks, side by side: robust accuracy and wall time per (model, attack, norm, eps).

Both libraries attack the same samples (``--n-samples`` mnist-5k test images spread evenly over the class-sorted split), in the same
batches, with the same hyperparameters, on the same models (``advbench.load_model``: inputs in [0, 1],
normalisation inside, exactly what torchattacks expects). advbench attacks run through
advbench's production harness (``_common.harness_outcome`` -> ``advbench.engine.harness.Harness``:
validation, projection into the ball and [0, 1], re-judging by the model); torchattacks runs ``atk(x, y)`` followed by one forward pass to judge its adversarials. Each side is
timed over all batches, ``--repeats`` times (``--slow-repeats`` for the slow pairs; in alternating order),
and the median is reported. Robust = clean-correct and still correctly classified; accuracies are over all
samples.

Minimum-norm attacks (CW-L2, DeepFool, FAB): both sides' outputs are projected into the eps ball (and [0, 1])
with ``advbench.threat.project`` before judging, as advbench's harness does. CW-L2 and DeepFool run once per
side, unbounded (as ``advbench run`` does for a minimum-norm attack), and are judged at every ``--l2-eps``;
the median L2 norm of each side's successful (unbounded) adversarials is reported in a second table. FAB-T runs
at each linf eps (torchattacks' FAB needs it).

Adding a pair is one line in ``PAIRS``; a pair whose advbench attack is not registered is skipped.

    python benchmarks/agreement_torchattacks.py [--n-samples 1000] [--out results.md]
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    as_advbench_runs_it, csv_list, harness_outcome, markdown_table, median, print_table, require_torchattacks,
    spread_samples, timed,
)

WEAKER_PP = 1.0  # acceptance: advbench robust accuracy <= torchattacks' + 1 percentage point
CW_NORM_RATIO = 1.10  # acceptance: CW's median L2 norm <= 1.10 x torchattacks'


def pgd_alpha(eps: float, steps: int) -> float:
    return 2.5 * eps / steps  # Madry et al.'s rule, advbench's default step size


@dataclass(frozen=True)
class Pair:
    """One comparison row family.

    Attributes:
        label: the row's attack label.
        advbench: the advbench registry name (the pair is skipped when it is not registered).
        norm: ``linf`` (judged at ``--eps``) or ``l2`` (judged at ``--l2-eps``).
        options: (eps, args) -> advbench attack options (keys the attack does not have are dropped and reported).
        ta_name: the torchattacks attack, for the settings listing.
        torchattacks: (torchattacks module, model, eps, args) -> a torchattacks attack.
        minimum_norm: project torchattacks' output into the ball before judging (advbench's harness does it).
        unbounded: one run per side at eps = inf, judged at every eps after projection; median norms reported.
        slow: timed ``--slow-repeats`` times instead of ``--repeats``.
        cap: name of the args attribute capping this pair's samples (e.g. ``aa_n_samples``), or "".
    """

    label: str
    advbench: str
    norm: str
    options: Callable[[float, argparse.Namespace], dict[str, Any]]
    ta_name: str
    torchattacks: Callable[[Any, torch.nn.Module, float, argparse.Namespace], Any]
    minimum_norm: bool = False
    unbounded: bool = False
    slow: bool = False
    cap: str = ""


def aa_member_options(a: argparse.Namespace) -> str:
    """advbench ensemble ``member_options`` for ``--aa-steps`` / ``--aa-square-queries`` (only where the
    registered member has the option; ``square`` is another module whose option names may differ)."""
    from advbench.plugins import get_host

    registry = get_host().registry.attacks
    try:
        from advbench.attacks.ensemble import VERSIONS
        members = set(VERSIONS[a.aa_version][0])
    except (ImportError, KeyError):
        members = None
    wanted = {"apgd_ce": {"steps": a.aa_steps}, "apgd_t": {"steps": a.aa_steps}, "fab_t": {"steps": a.aa_steps},
              "apgd_dlr": {"steps": a.aa_steps}, "fab": {"steps": a.aa_steps},
              "square": {"max_queries": a.aa_square_queries, "queries": a.aa_square_queries}}
    parts = []
    for member, opts in wanted.items():
        if member not in registry or (members is not None and member not in members):
            continue
        cls = getattr(registry.get(member).factory, "__self__", None)
        known = set(cls.option_names()) if cls is not None and hasattr(cls, "option_names") else set()
        parts += [f"{member}.{k}={v}" for k, v in opts.items() if v is not None and k in known]
    return ";".join(parts)


def ta_autoattack(ta, model, eps: float, a: argparse.Namespace):
    """torchattacks AutoAttack; ``--aa-steps`` / ``--aa-square-queries`` override its members' settings."""
    atk = ta.AutoAttack(model, norm="Linf", eps=eps, version=a.aa_version, n_classes=10, seed=a.seed)
    for member in atk._autoattack.attacks:
        if a.aa_steps is not None and hasattr(member, "steps"):
            member.steps = a.aa_steps
        if a.aa_square_queries is not None and hasattr(member, "n_queries"):
            member.n_queries = a.aa_square_queries
    return atk


# fmt: off
PAIRS: list[Pair] = [
    Pair("fgsm", "fgsm", "linf", lambda e, a: {}, "FGSM", lambda ta, m, e, a: ta.FGSM(m, eps=e)),
    Pair("bim", "bim", "linf", lambda e, a: dict(steps=a.iter_steps, step_size=e / a.iter_steps, early_stop=False),
         "BIM", lambda ta, m, e, a: ta.BIM(m, eps=e, alpha=e / a.iter_steps, steps=a.iter_steps)),
    Pair("pgd", "pgd", "linf", lambda e, a: dict(steps=a.pgd_steps, step_size=pgd_alpha(e, a.pgd_steps), random_start=True, early_stop=False),
         "PGD", lambda ta, m, e, a: ta.PGD(m, eps=e, alpha=pgd_alpha(e, a.pgd_steps), steps=a.pgd_steps, random_start=True)),
    Pair("pgd early_stop", "pgd", "linf", lambda e, a: dict(steps=a.pgd_steps, step_size=pgd_alpha(e, a.pgd_steps), random_start=True, early_stop=True),
         "PGD", lambda ta, m, e, a: ta.PGD(m, eps=e, alpha=pgd_alpha(e, a.pgd_steps), steps=a.pgd_steps, random_start=True)),
    Pair("mifgsm", "mifgsm", "linf", lambda e, a: dict(steps=a.iter_steps, step_size=e / a.iter_steps, decay=1.0, early_stop=False),
         "MIFGSM", lambda ta, m, e, a: ta.MIFGSM(m, eps=e, alpha=e / a.iter_steps, steps=a.iter_steps, decay=1.0)),
    Pair("apgd_ce", "apgd_ce", "linf", lambda e, a: dict(steps=a.apgd_steps, restarts=1),
         "APGD-CE", lambda ta, m, e, a: ta.APGD(m, eps=e, steps=a.apgd_steps, n_restarts=1, loss="ce", seed=a.seed), slow=True),
    Pair("apgd_dlr", "apgd_dlr", "linf", lambda e, a: dict(steps=a.apgd_steps, restarts=1),
         "APGD-DLR", lambda ta, m, e, a: ta.APGD(m, eps=e, steps=a.apgd_steps, n_restarts=1, loss="dlr", seed=a.seed), slow=True),
    Pair("apgd_t", "apgd_t", "linf", lambda e, a: dict(steps=a.apgd_steps, restarts=1, n_target_classes=9),
         "APGDT", lambda ta, m, e, a: ta.APGDT(m, eps=e, steps=a.apgd_steps, n_restarts=1, n_classes=10, seed=a.seed), slow=True),
    Pair("cw_l2", "cw_l2", "l2", lambda e, a: dict(steps=a.cw_steps, binary_search_steps=a.cw_search_steps, confidence=0.0, lr=0.01),
         "CW", lambda ta, m, e, a: ta.CW(m, c=a.cw_c, kappa=0, steps=a.cw_steps, lr=0.01), minimum_norm=True, unbounded=True, slow=True),
    Pair("deepfool", "deepfool", "l2", lambda e, a: dict(steps=a.deepfool_steps, overshoot=0.02),
         "DeepFool", lambda ta, m, e, a: ta.DeepFool(m, steps=a.deepfool_steps, overshoot=0.02), minimum_norm=True, unbounded=True, slow=True),
    Pair("fab_t", "fab_t", "linf", lambda e, a: dict(steps=a.fab_steps, restarts=1, n_target_classes=9),
         "FAB (multi_targeted)", lambda ta, m, e, a: ta.FAB(m, norm="Linf", eps=e, steps=a.fab_steps, n_restarts=1, multi_targeted=True, n_classes=10, seed=a.seed),
         minimum_norm=True, slow=True),
    Pair("autoattack", "ensemble", "linf", lambda e, a: dict(version=a.aa_version, member_options=aa_member_options(a)),
         "AutoAttack", ta_autoattack, slow=True, cap="aa_n_samples"),
]
# fmt: on

DEFAULT_MODELS = "cnn.mnist5k_std,test_resnet.mnist5k_std,linear.mnist5k_std"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=DEFAULT_MODELS, help="comma-separated model names")
    p.add_argument("--attacks", default=None,
                   help="comma-separated pair labels or advbench attack names (default: every pair whose attack is registered)")
    p.add_argument("--eps", default="0.1,0.2,0.3", help="comma-separated linf budgets in [0, 1] pixel space")
    p.add_argument("--l2-eps", default="1.0,1.5,2.0", help="comma-separated l2 budgets (CW-L2, DeepFool)")
    p.add_argument("--n-samples", type=int, default=1000, help="N mnist-5k test images, evenly spread over the (class-sorted) split")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per side; medians are reported")
    p.add_argument("--slow-repeats", type=int, default=1, help="timed runs per side of the slow pairs (APGD, CW, DeepFool, FAB, AutoAttack)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                   help="advbench's side: the attacks' passes in fp32, or under bf16 autocast with every success "
                        "re-judged in float32 (as `advbench run --precision bf16`); torchattacks runs fp32")
    p.add_argument("--plain-model", action="store_true",
                   help="give advbench the plain module too (default: the module as `advbench run` runs it)")
    p.add_argument("--out", default=None, help="also write the tables (and settings) as markdown to this file")
    g = p.add_argument_group("attack settings (both sides get the same)")
    g.add_argument("--pgd-steps", type=int, default=20, help="PGD steps (step 2.5 eps / steps)")
    g.add_argument("--iter-steps", type=int, default=10, help="BIM and MI-FGSM steps (step eps / steps)")
    g.add_argument("--apgd-steps", type=int, default=100, help="APGD-CE / -DLR / -T iterations (AutoAttack: 100)")
    g.add_argument("--cw-steps", type=int, default=1000,
                   help="CW Adam iterations: per binary-search step for advbench, in all for torchattacks (no search)")
    g.add_argument("--cw-search-steps", type=int, default=9, help="advbench CW binary-search steps over c (C&W: 9)")
    g.add_argument("--cw-c", type=float, default=1.0, help="torchattacks CW's fixed c (it has no binary search)")
    g.add_argument("--deepfool-steps", type=int, default=50, help="DeepFool max iterations (overshoot 0.02)")
    g.add_argument("--fab-steps", type=int, default=100, help="FAB-T iterations per target (AutoAttack: 100)")
    g.add_argument("--aa-version", default="standard", help="AutoAttack version on both sides: standard or plus")
    g.add_argument("--aa-steps", type=int, default=None,
                   help="override the AutoAttack members' steps on both sides (default: each library's own version "
                        "settings: advbench 100, torchattacks 10)")
    g.add_argument("--aa-square-queries", type=int, default=None, help="override Square's queries on both sides (default 5000)")
    g.add_argument("--aa-n-samples", type=int, default=None, help="cap the AutoAttack rows to the first N of the chosen samples")
    return p.parse_args(argv)


def build_advbench(spec, options: dict[str, Any]) -> tuple[Any, dict[str, Any], list[str]]:
    """(attack, options used, option names dropped because the attack does not have them)."""
    cls = getattr(spec.factory, "__self__", None)
    accepted = set(cls.option_names()) if cls is not None and hasattr(cls, "option_names") else None
    used = {k: v for k, v in options.items() if accepted is None or k in accepted}
    dropped = sorted(set(options) - set(used))
    # built through a context (what a run does): composite attacks such as the ensemble build their members there
    from advbench.plugins import get_host
    from advbench.testing import build_attack

    return build_attack(spec.name, get_host(), **used), used, dropped


def advbench_pass(attack, model, x, y, clean_logits, threat, batch_size, device, seed, num_classes,
                  precision: str = "fp32"):
    """(x_adv [N] projected into ``threat``, success [N]) through the harness, batch by batch."""
    generator = torch.Generator(device=device).manual_seed(seed)
    advs, succ = [], []
    for i in range(0, x.shape[0], batch_size):
        x_adv, _, success = harness_outcome(attack, model, x[i : i + batch_size], y[i : i + batch_size],
                                            clean_logits[i : i + batch_size], threat, generator, num_classes,
                                            precision)
        advs.append(x_adv)
        succ.append(success)
    return torch.cat(advs), torch.cat(succ).cpu()


def torchattacks_pass(atk, model, x, y, threat, batch_size, seed, check_ball: bool):
    """(x_adv [N] projected into ``threat``, success [N]): ``atk(x, y)`` and one judging forward per batch."""
    from advbench.threat import flat_norm

    torch.manual_seed(seed)
    advs, succ = [], []
    for i in range(0, x.shape[0], batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        adv = atk(xb, yb).detach()
        if check_ball:
            over = flat_norm(adv - xb, threat.norm).amax().item()
            if over > threat.eps + 1e-5 or adv.min().item() < 0 or adv.max().item() > 1:
                raise RuntimeError(f"torchattacks {type(atk).__name__} left the threat model ({threat.norm.value} "
                                   f"{over:.4g} > {threat.eps})")
        adv = threat.project(adv, xb)
        with torch.no_grad():
            pred = model(adv).argmax(dim=1)
        advs.append(adv)
        succ.append((pred != yb) & ~(adv == xb).flatten(1).all(dim=1))
    return torch.cat(advs), torch.cat(succ).cpu()


def judge_at(model, x_adv, x, y, clean_pred, norm, eps, batch_size) -> torch.Tensor:
    """Robust flags [N] (cpu) at ``eps``: project into the ball and [0, 1], re-run the model (the harness's rule:
    a sample left at x keeps its clean prediction)."""
    from advbench.threat import project

    robust = []
    for i in range(0, x.shape[0], batch_size):
        xb, xa = x[i : i + batch_size], project(x_adv[i : i + batch_size], x[i : i + batch_size], norm, eps)
        with torch.no_grad():
            pred = model(xa).argmax(dim=1)
        pred = torch.where((xa == xb).flatten(1).all(dim=1), clean_pred[i : i + batch_size], pred)
        robust.append((clean_pred[i : i + batch_size] == y[i : i + batch_size]) & (pred == y[i : i + batch_size]))
    return torch.cat(robust).cpu()


def fmt_norm(values: torch.Tensor) -> str:
    return f"{median(values.tolist()):.3f}" if values.numel() else "n/a"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ta = require_torchattacks()

    import advbench
    from advbench.engine.config import resolve_device
    from advbench.plugins import get_host
    from advbench.threat import Norm, ThreatModel, flat_norm, format_eps, parse_eps_list

    device = resolve_device(args.device)
    registry = get_host().registry.attacks
    wanted = set(csv_list(args.attacks)) if args.attacks else None
    if wanted:
        unknown = wanted - {p.advbench for p in PAIRS} - {p.label for p in PAIRS}
        if unknown:
            print(f"error: no torchattacks pairing for {', '.join(sorted(unknown))}; paired: "
                  f"{', '.join(dict.fromkeys(p.label for p in PAIRS))}", file=sys.stderr)
            return 1
    pairs, notes = [], []
    for pair in PAIRS:
        if wanted is not None and pair.advbench not in wanted and pair.label not in wanted:
            continue
        if pair.advbench not in registry:
            notes.append(f"skipped {pair.label}: advbench attack {pair.advbench!r} is not registered")
            continue
        pairs.append(pair)
    eps_by_norm = {"linf": parse_eps_list(args.eps), "l2": parse_eps_list(args.l2_eps)}
    models = csv_list(args.models)

    x, y = spread_samples(args.n_samples, device)
    n = x.shape[0]
    torch.manual_seed(args.seed)

    print(f"advbench {advbench.__version__} | torchattacks {ta.__version__} | torch {torch.__version__} | "
          f"device {device} ({torch.get_num_threads()} threads) | {n} samples | batch {args.batch_size} | "
          f"{args.repeats} repeats ({args.slow_repeats} for slow pairs) | seed {args.seed}", file=sys.stderr)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)

    headers = ["model", "attack", "norm", "eps", "n", "clean %", "advbench rob %", "torchattacks rob %", "diff pp",
               "agree %", "advbench s", "torchattacks s", "time ratio", "flag"]
    norm_headers = ["model", "attack", "advbench median L2 (n)", "torchattacks median L2 (n)", "ratio",
                    "ratio on common successes (n)", "median min norm, failure = inf (advbench / torchattacks = ratio)", "flag"]
    rows: list[list[str]] = []
    norm_rows: list[list[str]] = []
    options_seen: dict[str, str] = {}
    for model_name in models:
        model = advbench.load_model(model_name, device=device)
        # advbench's side runs the model as `advbench run` does (--plain-model: exactly torchattacks' module)
        adv_model, applied = (model, {}) if args.plain_model else as_advbench_runs_it(model, device)
        if applied.get("channels_last_pools"):
            notes.append(f"{model_name}: advbench runs it with {applied['channels_last_pools']} max pools on a "
                         "channels-last copy with autograd and strided maxima without (advbench.models.pooling; "
                         "identical numbers), torchattacks the plain module")
        with torch.no_grad():
            clean_logits = torch.cat([model(x[i : i + args.batch_size]) for i in range(0, n, args.batch_size)]).float()
            clean_pred = clean_logits.argmax(1)
            num_classes = int(model(x[:1]).shape[1])
        # warm-up: a few forward + input-gradient passes on one full batch
        for _ in range(3):
            xb = x[: args.batch_size].clone().requires_grad_(True)
            torch.autograd.grad(torch.nn.functional.cross_entropy(model(xb), y[: args.batch_size]), xb)
        for pair in pairs:
            m = min(n, getattr(args, pair.cap) or n) if pair.cap else n
            xs, ys, cps, cls = x[:m], y[:m], clean_pred[:m], clean_logits[:m]
            correct = (cps == ys).cpu()
            norm = Norm(pair.norm)
            eps_list = eps_by_norm[pair.norm]
            # unbounded pairs: one run per side at eps = inf, judged at every eps
            runs = [(math.inf, eps_list)] if pair.unbounded else [(e, [e]) for e in eps_list]
            repeats = args.slow_repeats if pair.slow else args.repeats
            for run_eps, judge_eps in runs:
                attack, used, dropped = build_advbench(registry.get(pair.advbench), pair.options(run_eps, args))
                shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in used.items())
                if pair.label not in options_seen:
                    extra = ""
                    if hasattr(attack, "member_attacks"):
                        extra += f"; members used: {','.join(a.name for a in attack.member_attacks())}"
                        if getattr(attack, "skipped", None):
                            extra += f"; members skipped: {', '.join(f'{k} ({v})' for k, v in attack.skipped.items())}"
                    if dropped:
                        extra += f"; not options of advbench's attack, dropped: {dropped}"
                    at = "unbounded, judged at each eps after projection" if pair.unbounded else f"at {pair.norm} eps {format_eps(run_eps)}"
                    options_seen[pair.label] = (f"advbench {pair.advbench}({shown or 'defaults'}) vs torchattacks "
                                                f"{pair.ta_name} ({at}; {m} samples){extra}")
                atk = pair.torchattacks(ta, model, run_eps, args)
                if pair.label not in options_seen.get("_ta_" + pair.label, "") and pair.ta_name == "AutoAttack":
                    subs = ", ".join(f"{type(s).__name__}(" + (f"steps={s.steps}" if hasattr(s, "steps") else f"n_queries={getattr(s, 'n_queries', '?')}") + ")"
                                     for s in atk._autoattack.attacks)
                    options_seen[pair.label] += f"; torchattacks members: {subs}"
                    options_seen["_ta_" + pair.label] = pair.label
                threat = ThreatModel(norm, run_eps)
                adv_times, ta_times, adv_out, ta_out = [], [], None, None
                for r in range(repeats):
                    for side in (("adv", "ta") if r % 2 == 0 else ("ta", "adv")):
                        if side == "adv":
                            t, out = timed(lambda: advbench_pass(attack, adv_model, xs, ys, cls, threat, args.batch_size,
                                                                 device, args.seed, num_classes, args.precision),
                                      device)
                            adv_times.append(t)
                            if adv_out is not None and not torch.equal(out[0], adv_out[0]):
                                notes.append(f"advbench {pair.label} {model_name}: not deterministic across repeats")
                            adv_out = adv_out if adv_out is not None else out
                        else:
                            t, out = timed(lambda: torchattacks_pass(atk, model, xs, ys, threat, args.batch_size,
                                                                     args.seed, check_ball=not pair.minimum_norm), device)
                            ta_times.append(t)
                            ta_out = ta_out if ta_out is not None else out
                adv_t, ta_t = median(adv_times), median(ta_times)
                ratio = adv_t / ta_t
                for eps in judge_eps:
                    adv_robust = judge_at(model, adv_out[0], xs, ys, cps, norm, eps, args.batch_size)
                    ta_robust = judge_at(model, ta_out[0], xs, ys, cps, norm, eps, args.batch_size)
                    a_acc = 100 * adv_robust.float().mean().item()
                    t_acc = 100 * ta_robust.float().mean().item()
                    diff = a_acc - t_acc
                    flag = []
                    if diff > WEAKER_PP:
                        flag.append(f"ADVBENCH WEAKER > {WEAKER_PP:g}pp")
                    elif diff > 0:
                        flag.append("advbench weaker (within 1pp)")
                    if ratio > 1.0:
                        flag.append("advbench slower")
                    row = [model_name, pair.label, pair.norm, format_eps(eps), str(m),
                           f"{100 * correct.float().mean().item():.1f}", f"{a_acc:.1f}", f"{t_acc:.1f}", f"{diff:+.1f}",
                           f"{100 * (adv_robust == ta_robust).float().mean().item():.1f}",
                           f"{adv_t:.2f}", f"{ta_t:.2f}", f"{ratio:.2f}", ", ".join(flag)]
                    rows.append(row)
                    print("  " + " | ".join(row), file=sys.stderr, flush=True)
                if pair.unbounded:
                    a_ok = adv_out[1] & correct
                    t_ok = ta_out[1] & correct
                    a_norms = flat_norm((adv_out[0] - xs).double(), norm).cpu()
                    t_norms = flat_norm((ta_out[0] - xs).double(), norm).cpu()
                    both = a_ok & t_ok
                    a_med = median(a_norms[a_ok].tolist()) if a_ok.any() else math.nan
                    t_med = median(t_norms[t_ok].tolist()) if t_ok.any() else math.nan
                    r_all = a_med / t_med if t_ok.any() and a_ok.any() else math.nan
                    r_common = (median(a_norms[both].tolist()) / median(t_norms[both].tolist())) if both.any() else math.nan
                    # per-sample minimum norm over the clean-correct samples, inf where the side found none
                    a_inf = median(torch.where(a_ok, a_norms, math.inf)[correct].tolist())
                    t_inf = median(torch.where(t_ok, t_norms, math.inf)[correct].tolist())
                    r_inf = a_inf / t_inf if math.isfinite(t_inf) else (0.0 if math.isfinite(a_inf) else math.nan)
                    nflag = ""
                    # the acceptance compares like with like: the ratio over the samples both broke, and the
                    # median minimum norm with failures counted as inf (the ratio over each side's own successes
                    # favours the side that breaks fewer, easier samples)
                    if pair.advbench == "cw_l2" and (r_common > CW_NORM_RATIO or r_inf > CW_NORM_RATIO):
                        nflag = f"RATIO > {CW_NORM_RATIO:.2f}"
                    nrow = [model_name, pair.label, f"{fmt_norm(a_norms[a_ok])} ({int(a_ok.sum())})",
                            f"{fmt_norm(t_norms[t_ok])} ({int(t_ok.sum())})", f"{r_all:.3f}",
                            f"{r_common:.3f} ({int(both.sum())})", f"{a_inf:.3f} / {t_inf:.3f} = {r_inf:.3f}", nflag]
                    norm_rows.append(nrow)
                    print("  norms: " + " | ".join(nrow), file=sys.stderr, flush=True)

    title = (f"advbench vs torchattacks {ta.__version__}: robust accuracy (over all n samples) and median wall "
             f"time (batch {args.batch_size}, device {device})")
    print_table(title, headers, rows)
    if norm_rows:
        print_table("median L2 norm of successful unbounded adversarials (clean-correct samples)", norm_headers, norm_rows)
    settings = [f"- {label}: {opts}" for label, opts in options_seen.items() if not label.startswith("_ta_")]
    footer = [
        f"diff pp = advbench robust accuracy - torchattacks robust accuracy (positive: advbench's attack is weaker; "
        f"acceptance: <= +{WEAKER_PP:g}).",
        "time ratio = advbench / torchattacks (> 1: advbench slower). advbench time = the harness per batch (oracle, attack, "
        "validation, projection, judging forward); torchattacks time = atk(x, y) + one judging forward. Unbounded pairs "
        "(CW-L2, DeepFool) run once per side: their rows at every eps share that run's times.",
        "Minimum-norm attacks (CW-L2, DeepFool, FAB-T): both sides' outputs are projected into the eps ball and [0, 1] "
        "(advbench.threat.project) before judging.",
        f"Median norms: over clean-correct samples each side broke (unbounded); ratio = advbench / torchattacks "
        f"(CW acceptance: <= {CW_NORM_RATIO:.2f}, judged on the like-for-like ratios: 'common' = the medians over samples "
        f"both sides broke; 'failure = inf' = the median per-sample minimum norm over all clean-correct samples, inf where "
        f"a side found no adversarial). The ratio over each side's own successes favours the side that breaks fewer, "
        f"easier samples.",
        "settings per row:", *settings, *[f"note: {msg}" for msg in dict.fromkeys(notes)],
    ]
    print("\n".join(footer))
    if args.out:
        header = (f"# advbench vs torchattacks\n\nadvbench {advbench.__version__}, torchattacks {ta.__version__}, "
                  f"torch {torch.__version__}, Python {platform.python_version()}, device {device} "
                  f"({torch.get_num_threads()} threads), first {n} mnist-5k test samples, batch {args.batch_size}, "
                  f"{args.repeats} repeats ({args.slow_repeats} for slow pairs; medians), seed {args.seed}, "
                  f"advbench's precision {args.precision}.\n\n"
                  f"Command: `python benchmarks/agreement_torchattacks.py {' '.join(argv if argv is not None else sys.argv[1:])}`\n\n")
        body = markdown_table(headers, rows) + "\n\n"
        if norm_rows:
            body += "Median L2 norm of successful unbounded adversarials:\n\n" + markdown_table(norm_headers, norm_rows) + "\n\n"
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(header + body + "\n".join(footer) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
