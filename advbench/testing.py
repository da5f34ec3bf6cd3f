"""The contract kit for attack authors: run any attack through the production harness, and check it.

    from advbench.testing import check_attack
    report = check_attack("myattack")          # raises ContractViolation naming the broken rule
    assert report.ok

Everything here goes through :class:`advbench.engine.harness.Harness` (the same code that produces the
leaderboard) and an attack context built as a run builds it, so an attack that passes here behaves the same
under ``advbench run``. The checks use the shipped ``linear.mnist5k_std`` model and a few ``mnist-5k`` images
(no network, a few seconds per attack).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from .attacks.base import Attack
from .attacks.context import AttackContext, BatchVerdict, LoadedModel
from .engine.harness import Harness
from .norms import Norm, flat_norm
from .threat import ThreatModel

#: The model the kit attacks, and the name under which its context serves it as a surrogate.
KIT_MODEL = "linear.mnist5k_std"
#: Options that make composite and learning attacks fast enough for a contract check (never their defaults
#: in a run). Applied only to options the attack actually has.
QUICK_OPTIONS: dict[str, Any] = {
    "surrogate": KIT_MODEL, "steps": 5, "restarts": 1, "max_queries": 200,
    "max_passes": 1, "epochs": 1, "rho": 1, "n_seed": 20, "binary_steps": 2, "n_target_classes": 2,
    "iterations": 5, "max_iter": 5,
    # a composite attack is checked as a cascade of two cheap members of different access levels
    "version": "custom", "members": "fgsm,square", "member_options": "square.max_queries=200",
}


class ContractViolation(AssertionError):
    """An attack broke a rule of the harness contract (the message names the attack and the rule)."""


def make_test_context(host=None, device: str = "cpu", model_options: Mapping[str, Mapping[str, Any]] | None = None) -> AttackContext:
    """An attack context over ``host`` (default: a fresh host with the built-ins and installed plugins) that
    loads models as a run does."""
    from .engine.config import RunConfig
    from .engine.resolve import make_context

    host = context_host(host)
    config = RunConfig(models=(KIT_MODEL,), device=device, model_options={k: dict(v) for k, v in (model_options or {}).items()})
    return make_context(host, config, device)


def build_attack(name: str, host=None, **options: Any) -> Attack:
    """Build a registered attack (or an alias such as ``pgd@MODEL``) with ``options``, bound to a context."""
    context = make_test_context(host)
    return context.build_attack(name, options)


def run_batch(attack: Attack, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, norm: Norm | str,
              eps: float, *, targets: torch.Tensor | None = None, seed: int = 0, num_classes: int | None = None,
              queries: int | None = None, min_confidence: float | None = None) -> BatchVerdict:
    """``attack`` on the batch x [B, C, H, W] (labels y [B]) through the production harness.

    Returns:
        The harness's :class:`~advbench.attacks.context.BatchVerdict`: projected x_adv, logits and adv_pred,
        success, attacked mask, per-sample query counts and extras.
    """
    norm = norm if isinstance(norm, Norm) else Norm.parse(norm)
    if num_classes is None:
        with torch.no_grad():
            num_classes = int(model(x[:1]).shape[1])
    harness = Harness(model, num_classes, queries=queries)
    gen = torch.Generator(device=x.device).manual_seed(seed)
    return harness.attack(attack, x, y, ThreatModel(norm, eps), gen, targets=targets, min_confidence=min_confidence)


@dataclass
class ContractReport:
    """What :func:`check_attack` ran: one line per check that passed."""

    attack: str
    passed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.passed)


def check_attack(name: str, host=None, *, options: Mapping[str, Any] | None = None, n: int = 8,
                 device: str = "cpu", queries: int | None = 3) -> ContractReport:
    """Check a registered attack against the harness contract on a tiny model.

    Per supported norm: it builds with its defaults (quick settings for costly options), runs through the
    harness on ``n`` images untargeted and targeted, returns an in-bounds, in-ball result that the harness
    accepts, is reproducible with the same generator, counts queries the way its access level says (no
    backward pass without gradient access; forward queries for every attacked sample of a black-box attack
    that queries the target), never claims success on a sample it did not attack, and keeps robust <= clean.
    Per norm it also runs under a hard budget of ``queries`` forward queries per sample (``--queries``; ``None``
    skips this): nothing may crash and no sample may be charged more than the budget.

    Raises:
        ContractViolation: naming the attack and the rule it broke.
    """
    host = context_host(host)
    context = make_test_context(host, device)
    spec = context.attack_spec(name)
    report = ContractReport(name)
    loaded = context.load_model(KIT_MODEL, None)
    dataset = context_host(host).dataset_spec("mnist-5k")
    x, y = _kit_images(dataset, n, device)
    attack = _build_quick(context, name, options)
    for norm_name in spec.norms:
        norm = Norm.parse(norm_name)
        eps = math.inf if spec.minimum_norm else (0.3 if norm is Norm.LINF else 2.0)
        if spec.needs_fit:
            _fit(attack, loaded, dataset, ThreatModel(norm, eps), device)
        for targets in (None, (y + 1) % loaded.num_classes) if spec.targeted else (None,):
            label = f"{norm.value} {'targeted' if targets is not None else 'untargeted'}"
            first = _run(attack, loaded, x, y, norm, eps, targets, name, label)
            again = _run(attack, loaded, x, y, norm, eps, targets, name, label)
            _check(torch.equal(first.x_adv, again.x_adv), name, f"{label}: not reproducible with the same generator")
            _check_verdict(first, spec, x, y, norm, eps, name, label)
            report.passed.append(label)
        if queries is not None:
            _check_budget(attack, spec, loaded, x, y, norm, eps, queries, name)
            report.passed.append(f"{norm.value} under a budget of {queries} queries")
    return report


def context_host(host):
    """``host``, or a fresh one with the built-ins and the installed plugins."""
    from .plugins import make_host

    return host if host is not None else make_host()


def _kit_images(dataset, n: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = dataset.load("test")
    picks = torch.linspace(0, x.shape[0] - 1, n).long()  # the split is sorted by class: spread the picks
    return x[picks].to(device), y[picks].to(device)


def _build_quick(context: AttackContext, name: str, options: Mapping[str, Any] | None) -> Attack:
    """The attack with :data:`QUICK_OPTIONS` where it has such options that accept the quick value (an adapter's
    ``version`` of another library has no ``custom``), then the class's own ``contract_options`` (cheap settings
    an attack with other option names declares, e.g. an adapter of another library), then ``options``."""
    spec = context.attack_spec(name)
    known = _option_names(spec)
    quick = {k: v for k, v in QUICK_OPTIONS.items() if k in known and _accepts(spec, k, v)}
    own = dict(getattr(getattr(spec.factory, "__self__", None), "contract_options", None) or {})
    return context.build_attack(name, {**quick, **own, **dict(options or {})})


def _accepts(spec, option: str, value: Any) -> bool:
    """Whether the attack's option ``option`` (declared with :func:`advbench.options.option`) accepts ``value``."""
    import dataclasses

    from .options import option_info

    owner = getattr(spec.factory, "__self__", None)
    fields = {f.name: f for f in dataclasses.fields(owner)} if dataclasses.is_dataclass(owner) else {}
    info = option_info(fields[option]) if option in fields else None
    return info is None or info.satisfied_by(value)


def _option_names(spec) -> set[str]:
    """Option names of the attack a spec builds, without building it (empty for a factory that hides them)."""
    owner = getattr(spec.factory, "__self__", None)  # Attack.from_options, bound to the attack's class
    names = getattr(owner, "option_names", None) or getattr(spec.factory, "option_names", None)
    return set(names()) if callable(names) else set()


def _fit(attack: Attack, loaded: LoadedModel, dataset, threat: ThreatModel, device: str) -> None:
    x, y = dataset.load("train")
    harness = Harness(loaded.module, loaded.num_classes)
    gen = torch.Generator(device=device).manual_seed(0)
    harness.fit(attack, x[:64].to(device), y[:64].to(device), threat, gen)


def _run(attack, loaded: LoadedModel, x, y, norm, eps, targets, name: str, label: str) -> BatchVerdict:
    from .errors import AttackError

    try:
        return run_batch(attack, loaded.module, x, y, norm, eps, targets=targets, num_classes=loaded.num_classes)
    except AttackError as exc:
        raise ContractViolation(f"attack {name!r} ({label}): {exc}") from exc


def _check_budget(attack, spec, loaded: LoadedModel, x, y, norm: Norm, eps: float, queries: int, name: str) -> None:
    """Run untargeted under a hard budget of ``queries`` per sample: no crash, nobody charged more."""
    label = f"{norm.value} under --queries {queries}"
    try:
        verdict = run_batch(attack, loaded.module, x, y, norm, eps, num_classes=loaded.num_classes, queries=queries)
    except Exception as exc:  # noqa: BLE001 - any crash under a budget is the rule this check names
        raise ContractViolation(f"attack {name!r} ({label}) crashed: {type(exc).__name__}: {exc}") from exc
    _check(int(verdict.n_forward.max()) <= queries, name, f"{label}: a sample made {int(verdict.n_forward.max())} queries")
    _check("budget_exhausted" in verdict.extras, name, f"{label}: the harness did not report the budget")
    _check_verdict(verdict, spec, x, y, norm, eps, name, label, budgeted=True)


def _check(ok: bool, name: str, rule: str) -> None:
    if not ok:
        raise ContractViolation(f"attack {name!r} broke the contract: {rule}")


def _check_verdict(v: BatchVerdict, spec, x, y, norm: Norm, eps: float, name: str, label: str,
                   budgeted: bool = False) -> None:
    _check(tuple(v.x_adv.shape) == tuple(x.shape), name, f"{label}: output shape {tuple(v.x_adv.shape)}")
    _check(bool(((v.x_adv >= 0) & (v.x_adv <= 1)).all()), name, f"{label}: output outside [0, 1]")
    if math.isfinite(eps):
        _check(bool((flat_norm(v.x_adv - x, norm) <= eps + 1e-5).all()), name, f"{label}: output outside the eps ball")
    _check(not bool((v.success & ~v.attacked).any()), name, f"{label}: success on a sample that was not attacked")
    robust = (v.adv_pred == y) & v.attacked
    _check(int(robust.sum()) <= int(v.attacked.sum()), name, f"{label}: robust > clean")
    if spec.access != "gradient":
        _check(int(v.n_backward.sum()) == 0, name, f"{label}: backward passes counted for a {spec.access}-based attack")
    # under a budget an attack whose first query asks more than the budget allows is refused it: no query
    if spec.access != "gradient" and not spec.uses_surrogate and not spec.needs_fit and not budgeted:
        _check(bool((v.n_forward[v.attacked] > 0).all()), name, f"{label}: a black-box attack with attacked samples that made no query")
    _check(int(v.n_forward[~v.attacked].sum()) == 0, name, f"{label}: queries counted on samples that were not attacked")


__all__ = ["ContractReport", "ContractViolation", "KIT_MODEL", "build_attack", "check_attack", "make_test_context", "run_batch"]
