"""DeepFool (Moosavi-Dezfooli et al. 2016): iterated steps to the nearest linearised decision boundary.

At the current point ``x_i``, for each candidate class ``k != y`` DeepFool linearises ``f'_k = f_k - f_y``
(``w_k = grad f'_k``) and computes the distance to its zero level set, ``|f'_k| / ||w_k||_q`` with ``q`` the
dual norm (``l2``: ``||w||_2``; ``linf``: ``||w||_1``). It steps to the closest one,

* l2: ``r_i = (d + 1e-4) * w / ||w||_2`` (= ``|f'| w / ||w||_2^2`` plus the original's 1e-4 nudge);
* linf: ``r_i = (d + 1e-4) * sign(w)``,

accumulates ``r_tot = sum_i r_i`` and moves to ``x_{i+1} = clip(x + (1 + overshoot) * r_tot, 0, 1)``: the
overshoot scales the whole accumulated perturbation, as in the paper and the authors' code (torchattacks
scales each step instead). Clipping every iterate, as Foolbox does, linearises at points the model will
actually be evaluated at, so the loop stops on a point that is adversarial after the harness's clipping.

With ``clip_accumulated`` (the default) ``r_tot`` then keeps only what survived the clipping,
``r_tot = (x_{i+1} - x) / (1 + overshoot)``, as adv-lib's ``df`` does (it steps from the clipped iterate): the
paper's and Foolbox's unclipped ``r_tot`` carries the part of each step that [0, 1] cut off (on MNIST, the
background pixels a linf ``sign(w)`` step pushes below 0), and a later step must first undo that hidden part
before it moves those pixels at all. On ``cnn.mnist5k_std`` at linf eps 0.1 that leaves 6 of 500 samples more
robust than adv-lib, and none fewer; with ``clip_accumulated`` the two give the same adversarials there.
``clip_accumulated=false`` is the paper's and Foolbox's update (Foolbox's DeepFool then gives the same results).

The first adversarial iterate of each sample is returned (DeepFool's minimum-norm estimate); samples never
fooled within ``steps`` return their last iterate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..errors import AttackError
from ..options import option
from ..norms import Norm, ascent_direction, dual_norm, per_sample
from .base import Attack, Goal
from .eot import EOTOptions
from .cw import fooled, reference_classes

#: Added to the step length so the linearised boundary is crossed, not just reached (the original's 1e-4).
NUDGE = 1e-4


@dataclass
class DeepFool(Attack, EOTOptions):
    """DeepFool, l2 and linf, untargeted, batched over the batch with per-sample stopping.

    A minimum-norm attack: ``run`` ignores ``threat.eps``. Each iteration costs one forward query and
    ``candidates - 1`` backward queries (one vector-Jacobian product per candidate class, each counted)
    for every sample still running; samples that are already adversarial stop and drop out of the batch
    (one host synchronisation per iteration, which pays for itself: most samples finish in 2-4 of the
    ``steps`` iterations).

    Options:
        steps: maximum iterations.
        overshoot: the final perturbation is ``(1 + overshoot)`` times the accumulated one.
        clip_accumulated: carry only the part of the accumulated perturbation that survived clipping to
            [0, 1] (adv-lib; default), else the unclipped sum (the paper, Foolbox).
        candidates: the classes considered: the ``candidates`` classes with the highest clean logits
            (the true class and ``candidates - 1`` others; at least 2, capped at the number of classes).
    """

    name = "deepfool"
    norms = ("l2", "linf")
    minimum_norm: ClassVar[bool] = True
    supports_targeted: ClassVar[bool] = False
    description = "DeepFool: steps to the nearest linearised decision boundary (minimum-norm, l2 and linf)"
    reference = (
        "Moosavi-Dezfooli, Fawzi & Frossard. DeepFool: a simple and accurate method to fool deep neural "
        "networks. CVPR 2016"
    )

    steps: int = option(50, ge=1, help="maximum iterations")
    overshoot: float = option(0.02, ge=0, help="final perturbation is (1 + overshoot) times the accumulated one")
    candidates: int = option(10, ge=2, help="classes considered: the true one and the top others by clean logit")
    clip_accumulated: bool = option(True, help="carry only what survived clipping to [0, 1] (adv-lib), else the "
                                               "unclipped sum (the paper, Foolbox)")

    def run(self, oracle, x: torch.Tensor, goal: Goal, threat, generator: torch.Generator) -> torch.Tensor:
        """DeepFool adversarials for one batch.

        Args:
            oracle: a gradient oracle. x: [B, C, H, W] in [0, 1]. goal: labels [B]; no targets.
            threat: its norm (l2 or linf) picks the geometry; ``eps`` is ignored.
            generator: unused (the attack is deterministic).
        Returns:
            [B, C, H, W]: the first adversarial iterate per sample, else the last iterate.
        Raises:
            AttackError: the goal is targeted.
        """
        if goal.targets is not None:
            raise AttackError(
                "deepfool is untargeted only (it steps to the nearest boundary of any class); "
                "use cw_l2 or lbfgs for targeted runs"
            )
        norm = Norm(threat.norm)
        B = x.shape[0]
        n_cand = min(self.candidates, oracle.num_classes) - 1  # other classes per sample
        result = x.clone()
        r_tot = torch.zeros_like(x)
        idx = torch.arange(B, device=x.device)  # batch positions of the samples still running
        x_cur = x.detach().clone()
        ref = others = None
        for it in range(self.steps + 1):
            x_cur.requires_grad_(True)
            logits = oracle(x_cur, idx)
            if ref is None:
                # The first forward pass is at x: it fixes the reference class and the candidates.
                ref = reference_classes(goal, logits.detach())
                others = logits.detach().scatter(1, ref[:, None], float("-inf")).topk(n_cand, dim=1).indices
            done = fooled(goal, logits.detach(), idx, ref)
            if it == self.steps:
                done = torch.ones_like(done)  # out of steps: keep the last iterate
            if bool(done.any()):  # one host sync per iteration
                result[idx[done]] = x_cur.detach()[done]
                keep = (~done).nonzero().squeeze(1)
                if keep.numel() == 0:
                    break
                idx, ref, others, r_tot = idx[keep], ref[keep], others[keep], r_tot[keep]
                # Rows that finished must not pay for the Jacobian: redo the forward pass on the rest.
                x_cur = x_cur.detach()[keep].requires_grad_(True)
                logits = oracle(x_cur, idx)

            r_tot = r_tot + self._step(logits, x_cur, ref, others, norm)
            x_cur = (x[idx] + (1 + self.overshoot) * r_tot).clamp(0.0, 1.0).detach()
            if self.clip_accumulated:
                r_tot = (x_cur - x[idx]) / (1 + self.overshoot)
        return result

    @staticmethod
    def _step(
        logits: torch.Tensor, x_cur: torch.Tensor, ref: torch.Tensor, others: torch.Tensor, norm: Norm
    ) -> torch.Tensor:
        """One DeepFool step for N samples.

        Args:
            logits: [N, K] differentiable logits at ``x_cur`` [N, C, H, W] (which requires grad).
            ref: int64 [N] the class to leave. others: int64 [N, M] the candidate classes.
        Returns:
            r: [N, C, H, W], the step to the nearest linearised boundary (plus the nudge).
        """
        n_cand = others.shape[1]
        z_ref = logits.gather(1, ref[:, None]).squeeze(1)
        f_prime = logits.gather(1, others).detach() - z_ref.detach()[:, None]  # [N, M], < 0 before the boundary
        grads = []
        for j in range(n_cand):
            # One VJP per candidate gives w_k = grad(f_k - f_y) directly (each counted as a backward query).
            diff = logits.gather(1, others[:, j : j + 1]).squeeze(1) - z_ref
            (g,) = torch.autograd.grad(diff.sum(), x_cur, retain_graph=j < n_cand - 1)
            grads.append(g)
        w = torch.stack(grads, dim=1)  # [N, M, C, H, W]
        dist = f_prime.abs() / dual_norm(w.flatten(2), norm).clamp_min(1e-12)  # [N, M]
        best = dist.argmin(dim=1)  # [N]
        rows = torch.arange(w.shape[0], device=w.device)
        w_best = w[rows, best]  # [N, C, H, W]
        # The unit step that crosses the boundary fastest: w / ||w||_2 (l2) or sign(w) (linf).
        return per_sample(dist[rows, best] + NUDGE, w_best) * ascent_direction(w_best, norm)
