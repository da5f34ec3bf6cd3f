"""Adversarial-training recipes: batch losses ``loss(model, x, y, options) -> scalar`` for the trainer.

Every perturbation is in [0, 1] pixel space (the model normalises inside). The FGSM and PGD examples are the
``fgsm`` and ``pgd`` attacks' own step code (:func:`advbench.attacks.fgsm.fgsm_step`,
:meth:`advbench.attacks.pgd.PGD.iterate`) run on the raw model, so "PGD-20 linf 0.3" is one algorithm in
training, in a model card and on the board; TRADES and VAT project and normalise with :mod:`advbench.norms`.
Inner maximisations differentiate with respect to the input only (``torch.autograd.grad``), so they never
touch the parameters' ``.grad``; they run with the model in eval mode (as TRADES does: BatchNorm statistics
are not updated by adversarial points) and restore its mode.

Randomness (random starts, VAT's random direction) comes from the global RNG, which the trainer seeds inside
``torch.random.fork_rng``, so a recipe is deterministic for a given seed.

The trainer passes two private keys with each batch: ``_epoch`` (0-based) and ``_epochs``; recipes with an
``eps_warmup_epochs`` option ramp eps linearly from ``eps / warmup`` to ``eps`` over those first epochs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks.base import Goal
from ..attacks.fgsm import fgsm_step
from ..attacks.pgd import PGD
from ..norms import Norm, ascent_direction, normalize, project, projected_step


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _norm(options: Mapping[str, Any]) -> Norm:
    return Norm.parse(str(options.get("norm", "linf")))


def current_eps(options: Mapping[str, Any]) -> float:
    """The recipe's eps for this epoch: ``eps``, ramped linearly over ``eps_warmup_epochs`` when set."""
    eps = float(options["eps"])
    warmup = int(options.get("eps_warmup_epochs", 0) or 0)
    epoch = int(options.get("_epoch", warmup))
    if warmup > 0 and epoch < warmup:
        return eps * (epoch + 1) / (warmup + 1)
    return eps


def _raw_logits(model: nn.Module):
    """The model as the attacks' ``logits_fn(x, index)``: no oracle, no query counting (training only)."""
    return lambda x, index: model(x)


def input_grad(model: nn.Module, x: torch.Tensor, objective) -> torch.Tensor:
    """d sum(objective(model(x))) / dx for x [B, C, H, W], without touching parameter gradients."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(objective(model(x)).sum(), x)
    return grad


def fgsm_example(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: Norm = Norm.LINF, *, targeted: bool = False
) -> torch.Tensor:
    """One fast-gradient step: ``x + eps * sign(grad_x CE(model(x), y))`` (``-`` towards ``y`` when targeted).

    The ``fgsm`` attack's step (:func:`~advbench.attacks.fgsm.fgsm_step`), projected into the ball and [0, 1].
    Returns [B, C, H, W] detached.
    """
    goal = Goal(labels=y, targets=y if targeted else None)
    with _eval_mode(model):
        x_adv = fgsm_step(_raw_logits(model), x.detach(), goal, norm, eps)
    return project(x_adv, x, norm, eps).detach()


def pgd_example(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int,
    step_size: float | None = None,
    norm: Norm = Norm.LINF,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Training-time PGD (Madry et al. 2018): maximise CE(model(x'), y) over the eps ball; last iterate.

    The ``pgd`` attack's loop (:meth:`~advbench.attacks.pgd.PGD.iterate`, without early stop) on the raw
    model: the same random start (uniform in the ball), step (``step_size``, default ``2.5 * eps / steps``)
    and projection. ``generator`` ``None`` draws the start from the global RNG. Returns [B, C, H, W] detached.
    """
    pgd = PGD(steps=steps, step_size=step_size or None, random_start=random_start, early_stop=False)
    with _eval_mode(model):
        run = pgd.iterate(_raw_logits(model), x.detach(), Goal(labels=y), norm, eps, generator)
    return run.last.detach()


def _kl(logits_p: torch.Tensor, logits_q: torch.Tensor, reduction: str = "batchmean") -> torch.Tensor:
    """KL(p || q) for p = softmax(logits_p) (treated as given) and q = softmax(logits_q)."""
    log_q, log_p = F.log_softmax(logits_q, dim=1), F.log_softmax(logits_p, dim=1)
    return F.kl_div(log_q, log_p, reduction=reduction, log_target=True)


def trades_example(
    model: nn.Module, x: torch.Tensor, *, eps: float, steps: int, step_size: float | None = None,
    norm: Norm = Norm.LINF,
) -> torch.Tensor:
    """TRADES's inner maximisation: PGD on KL(f(x) || f(x')) from x + 0.001 N(0, I); labels are not used."""
    alpha = float(step_size) if step_size else 2.5 * eps / steps
    x = x.detach()
    with _eval_mode(model):
        with torch.no_grad():
            clean = model(x)
        x_adv = (x + 0.001 * torch.randn_like(x)).clamp(0.0, 1.0)
        for _ in range(steps):
            grad = input_grad(model, x_adv, lambda z: _kl(clean, z, reduction="none").sum(dim=1))
            x_adv = projected_step(x_adv, x, grad, alpha, norm, eps).detach()
    return x_adv


def vat_direction(model: nn.Module, x: torch.Tensor, *, eps: float, xi: float, power_iterations: int,
                  norm: Norm = Norm.L2) -> torch.Tensor:
    """The virtual adversarial perturbation r_vadv [B, C, H, W] (Miyato et al. 2018); uses no labels.

    Power iteration from a random unit direction d: ``d <- grad_r KL(p(x) || p(x + xi d))`` at ``r = xi d``,
    normalised; then ``r = eps * d`` (l2) or ``eps * sign(d)`` (linf).
    """
    x = x.detach()
    with _eval_mode(model):
        with torch.no_grad():
            clean = model(x)
        d = torch.randn_like(x)
        for _ in range(max(1, power_iterations)):
            d = normalize(d, Norm.L2)
            d = input_grad(model, x + xi * d, lambda z: _kl(clean, z, reduction="none").sum(dim=1))
    return (eps * ascent_direction(d, norm)).detach()


# ---------------------------------------------------------------------------------------------- the losses


def std_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, options: Mapping[str, Any]) -> torch.Tensor:
    """Standard training: cross-entropy on clean inputs."""
    return F.cross_entropy(model(x), y, label_smoothing=float(options.get("label_smoothing", 0.0)))


def fgsm_at_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, options: Mapping[str, Any]) -> torch.Tensor:
    """Goodfellow et al. 2015: ``alpha * J(x, y) + (1 - alpha) * J(x + eps sign(grad_x J(x, y)), y)``."""
    alpha, eps, norm = float(options["alpha"]), current_eps(options), _norm(options)
    x_adv = fgsm_example(model, x, y, eps, norm)
    return alpha * F.cross_entropy(model(x), y) + (1 - alpha) * F.cross_entropy(model(x_adv), y)


def least_likely(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Each sample's least-likely class under the model, [B]."""
    with _eval_mode(model), torch.no_grad():
        return model(x).argmin(dim=1)


def mixed_batch_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, options: Mapping[str, Any]) -> torch.Tensor:
    """Kurakin et al. 2017: k of the m batch examples replaced by step-l.l. adversarials, weight lambda.

    ``loss = (sum_clean CE + lambda * sum_adv CE) / ((m - k) + lambda * k)``, ``k = round(adv_fraction * m)``
    (the first k of the already shuffled batch). The adversarials step *away from* the true label by moving
    towards each sample's least-likely class (``x - eps * sign(grad CE(x, y_LL))``), which avoids label
    leaking; the loss on them is against the true label.
    """
    eps, norm, lam = current_eps(options), _norm(options), float(options["lam"])
    m = x.shape[0]
    k = int(round(float(options["adv_fraction"]) * m))
    if k <= 0:
        return F.cross_entropy(model(x), y)
    targets = least_likely(model, x[:k]) if options.get("targets", "least-likely") == "least-likely" else y[:k]
    targeted = options.get("targets", "least-likely") == "least-likely"
    x_adv = fgsm_example(model, x[:k], targets, eps, norm, targeted=targeted)
    losses = F.cross_entropy(model(torch.cat([x_adv, x[k:]])), y, reduction="none")
    weights = torch.cat([losses.new_full((k,), lam), losses.new_ones(m - k)])
    return (weights * losses).sum() / ((m - k) + lam * k)


def pgd_at_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, options: Mapping[str, Any]) -> torch.Tensor:
    """Madry et al. 2018: minimise CE at the PGD maximiser (``mix`` > 0 adds that weight of clean CE)."""
    x_adv = pgd_example(
        model, x, y, eps=current_eps(options), steps=int(options["steps"]), step_size=options.get("step_size"),
        norm=_norm(options), random_start=bool(options["random_start"]),
    )
    mix = float(options.get("clean_weight", 0.0))
    adv = F.cross_entropy(model(x_adv), y)
    return adv if mix == 0 else mix * F.cross_entropy(model(x), y) + (1 - mix) * adv


def vat_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, options: Mapping[str, Any]) -> torch.Tensor:
    """Miyato et al. 2018: ``CE on labelled samples (y >= 0) + alpha * KL(p(x) || p(x + r_vadv))``.

    The local distributional smoothness term uses no labels, so unlabelled samples (y = -1) count too.
    """
    r = vat_direction(model, x, eps=current_eps(options), xi=float(options["xi"]),
                      power_iterations=int(options["power_iterations"]), norm=_norm(options))
    logits = model(torch.cat([x, x + r]))
    clean, adv = logits[: len(x)], logits[len(x):]
    lds = _kl(clean.detach(), adv)
    labelled = y >= 0
    ce = F.cross_entropy(clean[labelled], y[labelled]) if bool(labelled.any()) else clean.sum() * 0
    return ce + float(options["alpha"]) * lds


def trades_combine(logits_clean: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor, beta: float) -> torch.Tensor:
    """TRADES's outer loss: ``CE(f(x), y) + beta * KL(f(x) || f(x'))`` (batch means)."""
    return F.cross_entropy(logits_clean, y) + beta * _kl(logits_clean, logits_adv)


def trades_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, options: Mapping[str, Any]) -> torch.Tensor:
    """Zhang et al. 2019: ``CE(f(x), y) + beta * max_{x'} KL(f(x) || f(x'))``."""
    x_adv = trades_example(model, x, eps=current_eps(options), steps=int(options["steps"]),
                           step_size=options.get("step_size"), norm=_norm(options))
    logits = model(torch.cat([x, x_adv]))
    return trades_combine(logits[: len(x)], logits[len(x):], y, float(options["beta"]))
