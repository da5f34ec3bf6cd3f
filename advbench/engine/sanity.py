"""Gradient-masking and sanity flags (AutoAttack's checks and more).

A robustness number is only as good as the attack behind it. These checks catch the usual ways an evaluation
reports false robustness; each flag is recorded per (model, attack) in ``flags.json`` and shown under the
leaderboard. Flags are warnings to investigate, not verdicts.

Model probes (a few forward/backward passes on up to ``n_probe`` clean-correct samples):

* ``zero_gradients``: a large fraction of samples whose input gradient of the loss is exactly zero;
* ``randomised``: two identical forward passes give different logits (a randomised defence: attack it with
  Expectation over Transformation, ``--attack-opt pgd.eot=20``);
* ``probability_outputs``: outputs look like probabilities (rows in [0, 1] summing to 1), not logits, which
  flattens the cross-entropy gradient;
* ``large_eps_not_broken``: PGD at linf eps 0.5 (where any image can be turned grey) leaves more than 5% of
  samples robust.

Row checks (over the run's results; a targeted run compares targeted success rates on the attacked samples,
an untargeted one robust accuracy):

* ``robust_rises_with_eps`` (targeted: ``success_falls_with_eps``): an attack does worse as eps grows;
* ``weaker_beats_stronger``: an attack ranked weaker by its spec's ``strength`` (FGSM < BIM < PGD < APGD <
  ensemble for the built-ins; a plugin's attack declares its own) breaks more samples than a stronger one at
  the same eps;
* ``black_box_beats_white_box``: a score- or label-based attack beats every white-box one (a transfer attack
  whose surrogate is the model itself, ``ATTACK@MODEL`` on ``MODEL``, counts as white-box).
"""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from ..schema import attacked
import torch
import torch.nn.functional as F

MARGIN = 0.005  # 0.5 percentage points: differences below this are noise from random starts


def _flag(model: str, attack: str, flag: str, detail: str, eps: float | None = None) -> dict[str, Any]:
    return {"model": model, "attack": attack, "eps": eps, "flag": flag, "detail": detail}


def probe_model(harness, name: str, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                generator: torch.Generator) -> list[dict[str, Any]]:
    """Model-level probes on clean-correct samples x [n, C, H, W] (n small), labels y [n], through the
    model's :class:`~advbench.engine.harness.Harness`."""
    from ..attacks.pgd import PGD
    from ..threat import Norm, ThreatModel

    flags: list[dict[str, Any]] = []
    if x.shape[0] == 0:
        return flags
    x, y = x.to(device), y.to(device)
    oracle = harness.oracle("gradient", x.shape[0], device)
    xg = x.clone().requires_grad_(True)
    with torch.enable_grad():
        logits = oracle(xg)
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), xg)
    zero = (grad.flatten(1).abs().amax(dim=1) == 0).float().mean().item()
    if zero > 0.1:
        flags.append(_flag(name, "*", "zero_gradients", f"{100 * zero:.0f}% of samples have an all-zero input gradient"))
    again = harness.logits(x)
    if not torch.equal(logits.detach().float(), again):
        flags.append(_flag(name, "*", "randomised", "two identical forward passes gave different outputs: a randomised "
                           "model; attack the expectation with EOT, e.g. --attack-opt pgd.eot=20 (any gradient attack "
                           "takes eot=N)"))
    looks_like_probs = bool((again >= 0).all() and (again <= 1).all() and torch.allclose(again.sum(1), torch.ones_like(again[:, 0]), atol=1e-4))
    if looks_like_probs:
        flags.append(_flag(name, "*", "probability_outputs", "the model returns probabilities, not logits"))
    verdict = harness.attack(PGD(steps=20), x, y, ThreatModel(Norm.LINF, 0.5), generator, clean_logits=again)
    robust = (verdict.adv_pred == y).float().mean().item()
    if robust > 0.05:
        flags.append(_flag(name, "pgd", "large_eps_not_broken", f"PGD at linf eps 0.5 leaves {100 * robust:.1f}% robust (expected ~0%)", 0.5))
    return flags


def row_flags(rows: pd.DataFrame, specs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Flags read off the result rows. ``specs`` maps attack name -> its AttackSpec (access, strength).

    An attack's score is what it achieved: ``1 - robust accuracy`` in an untargeted run, its success rate on the
    attacked samples in a targeted run (robust accuracy says nothing there: a sample can be misclassified and
    still miss its target). A stronger attack, a larger eps and a white-box attack should all score at least as
    high; each exception by more than ``MARGIN`` is a flag.
    """
    flags: list[dict[str, Any]] = []
    if rows.empty:
        return flags
    targeted = bool((rows["target"] >= 0).any()) if "target" in rows.columns else False
    scored = rows.assign(_score=rows["success"].astype(float) if targeted else 1.0 - rows["robust"].astype(float))
    if targeted:
        scored = scored[attacked(scored)]
    acc = scored.groupby(["model", "attack", "norm", "eps"])._score.mean().reset_index()
    measure = "targeted success" if targeted else "robust accuracy"

    def shown(score: float) -> str:
        return f"{100 * (score if targeted else 1 - score):.1f}%"

    for (model, attack, norm), group in acc.groupby(["model", "attack", "norm"]):
        group = group.sort_values("eps")
        for eps in group.eps[group._score.diff() < -MARGIN]:
            flag, verb = ("success_falls_with_eps", "falls") if targeted else ("robust_rises_with_eps", "rises")
            flags.append(_flag(model, attack, flag, f"{measure} {verb} at {norm} eps {eps:g}", float(eps)))
    for (model, norm, eps), group in acc.groupby(["model", "norm", "eps"]):
        by_attack = dict(zip(group.attack, group._score))
        ranked = sorted((a for a in by_attack if a in specs and specs[a].strength > 0), key=lambda a: specs[a].strength)
        for i, weak in enumerate(ranked):
            for strong in ranked[i + 1 :]:
                if by_attack[weak] > by_attack[strong] + MARGIN:
                    flags.append(_flag(model, strong, "weaker_beats_stronger",
                                       f"{weak} ({measure} {shown(by_attack[weak])}) beats {strong} "
                                       f"({shown(by_attack[strong])}) at {norm} eps {eps:g}", float(eps)))
        # a transfer attack from the model itself (ATTACK@MODEL on MODEL) used this model's gradients: white-box
        access = {a: "gradient" if a.partition("@")[2] == model else specs[a].access for a in by_attack if a in specs}
        white = [a for a in by_attack if access.get(a) == "gradient"]
        for black in (a for a in by_attack if access.get(a) in ("score", "label")):
            if white and by_attack[black] > max(by_attack[w] for w in white) + MARGIN:
                flags.append(_flag(model, black, "black_box_beats_white_box",
                                   f"{black} ({measure} {shown(by_attack[black])}) beats every white-box attack at "
                                   f"{norm} eps {eps:g}: gradient masking?", float(eps)))
    return flags


def transfer_flags(matrix: pd.DataFrame) -> list[dict[str, Any]]:
    """A target less accurate on another model's adversarials than on its own white-box ones: its gradients
    mislead its own attack (gradient masking), the signature Athalye et al. 2018 describe."""
    flags: list[dict[str, Any]] = []
    if matrix is None or matrix.empty:
        return flags
    for (attack, norm, eps), group in matrix.groupby(["attack", "norm", "eps"]):
        diagonal = {r.target: r.target_accuracy for r in group.itertuples() if r.source == r.target}
        for r in group.itertuples():
            if r.source != r.target and r.target in diagonal and r.target_accuracy < diagonal[r.target] - MARGIN:
                flags.append(_flag(r.target, attack, "transfer_beats_white_box",
                                   f"{attack} adversarials from {r.source} leave {100 * r.target_accuracy:.1f}% accurate, "
                                   f"its own white-box {attack} {100 * diagonal[r.target]:.1f}% at {norm} eps {eps:g}", float(eps)))
    return flags
