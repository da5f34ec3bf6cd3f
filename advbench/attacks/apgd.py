"""APGD (Croce & Hein 2020): step-size-free PGD with momentum, on the CE, DLR and targeted DLR losses.

Auto-PGD replaces PGD's fixed step with a per-sample schedule: it starts at ``2 * eps``, and at checkpoints
``w_j = ceil(p_j * steps)`` (``p_0 = 0``, ``p_1 = 0.22``, ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``;
computed in AutoAttack's integer form, see :func:`checkpoints`) halves the step of every sample whose loss
rose in too few of the steps since the last checkpoint, or whose step was kept last time and whose best loss
has not improved since; a halved sample restarts from its best point. Steps combine the projected gradient
step with the previous displacement (momentum ``alpha = 0.75``).

This follows AutoAttack's ``autopgd_base.py`` (``APGDAttack``, ``APGDAttack_targeted``) for linf and l2,
batched over the whole batch with no host synchronisation per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import AttackError
from ..options import option
from ..norms import per_sample, project, projected_step, random_start
from .active import compaction_due
from .base import Attack, Goal
from .eot import EOTOptions
from .losses import objective_and_grad

#: Momentum weight of the new projected step (AutoAttack's alpha; 1 - alpha goes to the previous displacement).
MOMENTUM = 0.75

#: The objectives APGD ascends (option ``loss``): cross-entropy and the difference of logits ratio.
LOSSES = ("ce", "dlr")


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference of logits ratio (untargeted), to maximise.

    ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12)`` with ``pi`` the logits sorted in decreasing order.
    It is invariant to shifting and rescaling the logits, so a saturated softmax cannot hide the gradient.

    Args:
        logits: [N, K] with K >= 3.
        y: int64 [N] true labels.
    Returns:
        [N] per-sample loss; > 0 exactly where some other class beats ``y``.
    """
    top = logits.sort(dim=1, descending=True).values
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return -(z_y - others.amax(dim=1)) / (top[:, 0] - top[:, 2] + 1e-12)


def dlr_targeted_loss(logits: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Targeted difference of logits ratio, to maximise.

    ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)`` with ``pi`` the logits sorted in decreasing order.

    Args:
        logits: [N, K] with K >= 4.
        y: int64 [N] true labels.
        t: int64 [N] target classes.
    Returns:
        [N] per-sample loss.
    """
    top = logits.sort(dim=1, descending=True).values
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    z_t = logits.gather(1, t[:, None]).squeeze(1)
    return -(z_y - z_t) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)


def checkpoints(steps: int) -> list[int]:
    """The iterations (1-based) after which APGD checks its step sizes.

    AutoAttack's integer form of ``w_j = ceil(p_j * steps)``: the first interval is ``int(0.22 * steps)``,
    each next one ``int(0.03 * steps)`` shorter, never below ``int(0.06 * steps)`` (all at least 1). For
    ``steps = 100``: ``[22, 41, 57, 70, 80, 87, 93, 99]``.
    """
    interval = max(int(0.22 * steps), 1)
    shrink = max(int(0.03 * steps), 1)
    shortest = max(int(0.06 * steps), 1)
    out, at = [], interval
    while at <= steps:
        out.append(at)
        interval = max(interval - shrink, shortest)
        at += interval
    return out


@dataclass
class APGD(Attack, EOTOptions):
    """Auto-PGD on the cross-entropy (the base of the ``apgd_*`` family; ``loss`` picks the objective).

    Each run starts at a random point of the ball and takes ``steps`` momentum steps with per-sample step
    sizes (2 eps at first, halved at the checkpoints of :func:`checkpoints`). The first iterate that meets
    the goal is kept per sample (early stop); a sample never broken returns its highest-loss iterate.
    Restarts rerun only the points not broken yet. A goal with targets (a targeted run) makes the losses
    targeted: minus the CE to the target, or the targeted DLR.

    Rows that are broken leave the batch at the next checkpoint or compaction step of early stop
    (:data:`~advbench.attacks.active.COMPACT_EVERY`; one host sync each, none in the steps between): their
    result cannot change any more, and dropping them saves their queries.

    Options:
        steps: iterations per run (AutoAttack's 100); each costs one forward and one backward pass, plus
            one of each for the starting point.
        restarts: runs from fresh random starts; run r > 0 attacks only the points no earlier run broke.
        rho: step-halving threshold: the fraction of steps since the last checkpoint in which the loss
            must have increased for the step size to be kept.
        loss: ``ce`` or ``dlr``, the objective ascended (its targeted form when the run has targets); each
            member of the family has its own default.
    """

    name = ""
    description = "Auto-PGD with a step-size schedule and momentum (Croce & Hein 2020)"
    reference = (
        "Croce, Hein. Reliable evaluation of adversarial robustness with an ensemble of diverse "
        "parameter-free attacks. ICML 2020"
    )

    steps: int = option(100, ge=1, help="iterations per run")
    restarts: int = option(1, ge=1, help="runs from fresh random starts, each on points not broken yet")
    rho: float = option(0.75, ge=0, le=1, help="step-halving threshold (fraction of steps the loss rose in)")
    loss: str = option("ce", choices=LOSSES, help="objective: ce or dlr (targeted form on a targeted run)")

    # -- what is attacked -----------------------------------------------------------------------------
    def _target_sets(self, oracle, x: torch.Tensor, goal: Goal) -> list[torch.Tensor | None]:
        """The target classes of each pass, int64 [B] each (``None``: untargeted). One pass here."""
        return [goal.targets]

    def _check_classes(self, num_classes: int, targeted: bool) -> None:
        if self.loss != "dlr":
            return
        need = 4 if targeted else 3
        if num_classes < need:
            kind = "the targeted DLR loss" if targeted else "the DLR loss"
            raise AttackError(
                f"attack {self.name!r} needs at least {need} classes ({kind} divides by a gap between "
                f"sorted logits), the model has {num_classes}; use apgd_ce instead"
            )

    def _objective(self, targets: torch.Tensor | None):
        """The per-sample objective ``f(logits [N, K], goal, index [N]) -> [N]`` to maximise."""

        def objective(logits: torch.Tensor, goal: Goal, index: torch.Tensor) -> torch.Tensor:
            y = goal.labels[index]
            if targets is None:
                return dlr_loss(logits, y) if self.loss == "dlr" else F.cross_entropy(logits, y, reduction="none")
            t = targets[index]
            if self.loss == "dlr":
                return dlr_targeted_loss(logits, y, t)
            return -F.cross_entropy(logits, t, reduction="none")

        return objective

    # -- the attack -----------------------------------------------------------------------------------
    def expected_queries(self, threat) -> int:
        targets = getattr(self, "n_target_classes", 1)  # APGD-T runs once per target class
        return (self.steps + 1) * self.restarts * targets

    def run(self, oracle, x: torch.Tensor, goal: Goal, threat, generator: torch.Generator) -> torch.Tensor:
        target_sets = self._target_sets(oracle, x, goal)
        self._check_classes(oracle.num_classes, target_sets[0] is not None)
        best = x.clone()
        found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        index = torch.arange(x.shape[0], device=x.device)
        first = True
        for targets in target_sets:
            objective = self._objective(targets)
            for _ in range(self.restarts):
                if not first:
                    index = (~found).nonzero().squeeze(1)  # one host sync per run, none per step
                    if index.numel() == 0:
                        return best
                first = False
                x_run, found_run = self._run_once(oracle, x[index], goal, threat, generator, index, objective)
                best[index] = x_run
                found[index] = found_run
        return best

    def _run_once(
        self, oracle, x0: torch.Tensor, goal: Goal, threat, generator: torch.Generator, index: torch.Tensor, objective
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One APGD run on rows ``index`` [N] of the batch.

        Args:
            x0: clean inputs [N, C, H, W] (rows ``index`` of the batch).
        Returns:
            (x_adv [N, C, H, W]: the first iterate meeting the goal, else the highest-loss one;
            found: bool [N]).
        """
        norm, eps = threat.norm, threat.eps
        n = x0.shape[0]
        out = x0.clone()
        out_found = torch.zeros(n, dtype=torch.bool, device=x0.device)
        pos = torch.arange(n, device=x0.device)  # rows of this run still iterating (positions in x0)

        # AutoAttack's start: uniform in the linf box, or a uniformly random direction *on* the l2 sphere.
        x_adv = random_start(x0, norm, eps, generator, l2_sphere=True)
        logits, loss, grad = objective_and_grad(oracle, x_adv, goal, objective, index)
        found = goal.is_adversarial(logits, index)
        x_first = x_adv.clone()
        x_best, grad_best, loss_best = x_adv.clone(), grad.clone(), loss.clone()
        x_old = x_adv.clone()
        loss_prev = loss.clone()
        step = torch.full((n,), 2.0 * eps, device=x0.device, dtype=x0.dtype)
        n_up = torch.zeros(n, device=x0.device, dtype=x0.dtype)  # loss increases since the last checkpoint
        reduced_last = torch.ones(n, dtype=torch.bool, device=x0.device)  # no condition 2 at the first one
        loss_best_last = loss_best.clone()

        marks = set(checkpoints(self.steps))
        since = 0
        for i in range(self.steps):
            a = MOMENTUM if i > 0 else 1.0  # the first step has no previous displacement
            z = projected_step(x_adv, x0, grad, step, norm, eps)
            x_new = project(x_adv + a * (z - x_adv) + (1 - a) * (x_adv - x_old), x0, norm, eps)
            x_old, x_adv = x_adv, x_new

            logits, loss, grad = objective_and_grad(oracle, x_adv, goal, objective, index)
            new = goal.is_adversarial(logits, index) & ~found
            x_first = torch.where(per_sample(new, x_adv), x_adv, x_first)
            found = found | new

            n_up = n_up + (loss > loss_prev).to(n_up.dtype)
            loss_prev = loss
            better = loss > loss_best
            x_best = torch.where(per_sample(better, x_adv), x_adv, x_best)
            grad_best = torch.where(per_sample(better, grad), grad, grad_best)
            loss_best = torch.where(better, loss, loss_best)
            since += 1

            if i + 1 in marks:
                # Condition 1: the loss rose in at most a fraction rho of the steps since the last checkpoint
                # (AutoAttack's ``<=``). Condition 2: the step was kept last time and the best loss is stuck.
                halve = (n_up <= self.rho * since) | (~reduced_last & (loss_best_last >= loss_best))
                step = torch.where(halve, step / 2, step)
                x_adv = torch.where(per_sample(halve, x_adv), x_best, x_adv)
                grad = torch.where(per_sample(halve, grad), grad_best, grad)
                reduced_last, loss_best_last = halve, loss_best.clone()
                n_up = torch.zeros_like(n_up)
                since = 0
            elif not compaction_due(i + 1):
                continue

            # Broken rows are final: flush every row's current answer, then keep iterating only the others
            # (at each checkpoint and on early stop's compaction schedule; every update above is row-wise).
            out[pos] = torch.where(per_sample(found, x_adv), x_first, x_best)
            out_found[pos] = found
            keep = (~found).nonzero().squeeze(1)  # the one host sync of a compaction
            if keep.numel() == 0:
                return out, out_found
            if keep.numel() < found.numel():
                pos, index, x0 = pos[keep], index[keep], x0[keep]
                x_adv, x_old, grad, x_first = x_adv[keep], x_old[keep], grad[keep], x_first[keep]
                x_best, grad_best, loss_best = x_best[keep], grad_best[keep], loss_best[keep]
                loss_prev, step, n_up, found = loss_prev[keep], step[keep], n_up[keep], found[keep]
                reduced_last, loss_best_last = reduced_last[keep], loss_best_last[keep]

        out[pos] = torch.where(per_sample(found, x_adv), x_first, x_best)
        out_found[pos] = found
        return out, out_found


@dataclass
class APGDCE(APGD):
    """APGD on the cross-entropy loss (AutoAttack's first attack); targeted runs descend the target's CE.

    Options: ``steps`` (100), ``restarts`` (1), ``rho`` (0.75), ``loss`` (``ce``); see :class:`APGD`.
    """

    name = "apgd_ce"
    strength = 50
    description = "Auto-PGD on the cross-entropy: adaptive step size and momentum, no step to tune (linf, l2)"


@dataclass
class APGDDLR(APGD):
    """APGD on the difference-of-logits-ratio loss (needs >= 3 classes; targeted runs: the targeted DLR, >= 4).

    Options: ``steps`` (100), ``restarts`` (1), ``rho`` (0.75), ``loss`` (``dlr``); see :class:`APGD`.
    """

    name = "apgd_dlr"
    strength = 50
    min_classes = 3  # DLR's denominator needs the third-largest logit
    description = "Auto-PGD on the shift- and scale-invariant DLR loss (linf, l2; >= 3 classes)"

    loss: str = option("dlr", choices=LOSSES, help="objective: dlr or ce (targeted form on a targeted run)")


@dataclass
class APGDT(APGD):
    """APGD-T: APGD on the targeted DLR loss toward each of the most likely wrong classes in turn.

    For target rank r = 1 .. ``n_target_classes`` (the classes with the highest clean logits after the true
    one), it runs ``restarts`` times ``steps`` iterations on the points no earlier run broke. As in
    AutoAttack, success is any misclassification, not only reaching that target. When the goal has targets
    (a targeted run) those targets are used instead, in a single pass. Needs >= 4 classes.

    Options:
        steps: iterations per run (100).
        restarts: runs per target class (1).
        rho: step-halving threshold (0.75).
        n_target_classes: how many target classes to try (9; capped at K - 1).
        loss: ``dlr`` (the targeted DLR) or ``ce`` (minus the CE to each target).
    """

    name = "apgd_t"
    strength = 60
    min_classes = 4  # targeted DLR uses the fourth-largest logit
    description = "Targeted Auto-PGD on the targeted DLR loss over the top wrong classes (linf, l2; >= 4 classes)"

    loss: str = option("dlr", choices=LOSSES, help="objective toward each target: dlr or ce")
    n_target_classes: int = option(9, ge=1, help="runner-up classes tried as targets (capped at K - 1)")

    def _target_sets(self, oracle, x: torch.Tensor, goal: Goal) -> list[torch.Tensor | None]:
        if goal.targets is not None:
            return [goal.targets]
        self._check_classes(oracle.num_classes, True)  # before the clean query, with a clear message
        clean = oracle.logits(x)  # one counted forward query per sample
        # The true class is excluded explicitly, so a sample misclassified at x still gets K - 1 targets.
        clean = clean.scatter(1, goal.labels[:, None], float("-inf"))
        n_targets = min(self.n_target_classes, clean.shape[1] - 1)
        ranked = clean.topk(n_targets, dim=1).indices
        return [ranked[:, r] for r in range(n_targets)]
