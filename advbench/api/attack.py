"""``advbench.attack``: one attack on the user's batch, judged by the harness (torchattacks' ``PGD(model,
eps=...)(images, labels)`` and Foolbox's ``attack(fmodel, images, labels, epsilons=...)``, with advbench's
verdicts, query counts and norms).

The batch goes through the engine's own path (:func:`advbench.engine.runner.attack_samples`, and for a
minimum-norm attack :func:`~advbench.engine.runner.rejudge`): the same samples are attacked, with the same
projection and verdict, as in a run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ConfigError
from ..threat import ThreatModel, parse_eps


@dataclass
class AttackResult:
    """Per-sample outcome of :func:`attack` (tensors on the CPU).

    Attributes:
        x_adv: [N, C, H, W] adversarials, projected into the eps ball and [0, 1] (x where nothing was attacked).
        success: bool [N]: the harness's verdict (the goal met; never true for a sample that was not attacked).
        attacked: bool [N]: classified correctly (or unlabelled), so attacked at all.
        clean_pred, adv_pred: int64 [N]. targets: int64 [N] of a targeted attack, else ``None``.
        n_forward, n_backward: int64 [N] queries spent per sample. norms: [N] ``||x_adv - x||`` in ``norm``.
        min_norm: [N] the smallest adversarial norm a minimum-norm attack found (inf: none), else ``None``.
        extras: per-sample extra columns the attack returned.
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    attacked: torch.Tensor
    clean_pred: torch.Tensor
    adv_pred: torch.Tensor
    targets: torch.Tensor | None
    n_forward: torch.Tensor
    n_backward: torch.Tensor
    norms: torch.Tensor
    min_norm: torch.Tensor | None = None
    extras: dict[str, list[Any]] = field(default_factory=dict)
    labels: torch.Tensor | None = None

    @property
    def robust_accuracy(self) -> float:
        """Fraction of labelled samples classified correctly before and after the attack."""
        labelled = self.labels >= 0
        robust = (self.clean_pred == self.labels) & (self.adv_pred == self.labels) & labelled
        return float(robust.sum()) / max(int(labelled.sum()), 1)

    @property
    def success_rate(self) -> float:
        """Fraction of attacked samples the attack broke."""
        return float(self.success.sum()) / max(int(self.attacked.sum()), 1)

    def __repr__(self) -> str:
        return (f"AttackResult({self.x_adv.shape[0]} samples, success {100 * self.success_rate:.1f}% of "
                f"{int(self.attacked.sum())} attacked, robust accuracy {100 * self.robust_accuracy:.1f}%)")


def attack(name: str, model: Any, x: torch.Tensor, y: torch.Tensor | None = None, *, eps: float | str | None,
           norm: str = "linf", targeted: str | int | None = None, min_confidence: float | None = None,
           queries: int | None = None, batch_size: int = 500, seed: int = 0, device: str | None = None,
           mean=None, std=None, num_classes: int | None = None, host=None, **options: Any) -> AttackResult:
    """Run attack ``name`` with ``options`` on x [N, C, H, W] in [0, 1] (labels y int64 [N]; ``None``:
    unlabelled, success means leaving the clean prediction), judged by the harness.

    Args:
        model: a registry name or an ``nn.Module`` (with ``mean``/``std``/``num_classes`` as in :func:`evaluate`).
        eps: the budget (``8/255`` or ``"8/255"``); ``None`` only for a minimum-norm attack (unbounded).
        device: where to run (default: the module's device, else ``auto``).
        options: the attack's options (``steps=40``; see ``advbench list attacks NAME``).
    Example:
        >>> out = advbench.attack("pgd", net, x, y, eps=8/255, steps=40)
        >>> out.robust_accuracy, out.x_adv, out.n_forward
    """
    from ..engine.config import build_run_config
    from ..engine.resolve import make_context, resolve_attack_spec
    from ..plugins import get_host
    from .inputs import Normalisation, borrowed, data_tensors

    host = host or get_host()
    x, y = data_tensors((x, y) if y is not None else x)
    modules = [model] if isinstance(model, torch.nn.Module) else []
    with borrowed(modules):
        loaded, dev = _model(model, x, Normalisation(mean, std, num_classes), device, host)
        spec, _ = resolve_attack_spec(host, name)
        bound = math.inf if eps is None else parse_eps(eps)
        if math.isinf(bound) and not spec.minimum_norm:
            raise ConfigError(f"attack {name!r} needs a budget: pass eps=... (only minimum-norm attacks run unbounded)")
        config = build_run_config(("<in-memory>",), (name,), (0.0,), norm=norm, batch_size=batch_size, device=str(dev),
                                  seed=seed, attack_options={name: options}, targeted=targeted,
                                  min_confidence=min_confidence, queries=queries)
        built = make_context(host, config, dev).build_attack(name, options)
        return _run(built, spec, loaded, x, y, ThreatModel(config.norm, bound), config, dev)


def _model(model: Any, x: torch.Tensor, norm, device: str | None, host) -> tuple[Any, torch.device]:
    """(the :class:`~advbench.attacks.context.LoadedModel`, the device) for a registry name or a module."""
    from ..attacks.context import LoadedModel
    from ..engine.config import resolve_device
    from ..engine.session import load_model
    from .inputs import as_model

    if isinstance(model, torch.nn.Module):
        if device is None:
            device = str(next((p.device for p in model.parameters()), torch.device("cpu")))
        dev = torch.device(resolve_device(device))
        wrapped = as_model(model, x[:1], norm).to(dev)
        return LoadedModel("<in-memory>", wrapped, int(wrapped.num_classes), None), dev
    dev = torch.device(resolve_device(device or "auto"))
    return load_model(host.model_spec(str(model)), {}, dev), dev


def _run(built, spec, loaded, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, config, dev) -> AttackResult:
    """The engine's batch path (attack_samples, rejudge) over all of x."""
    from ..engine.harness import Harness
    from ..engine.runner import attack_samples, minimum_norms, rejudge
    from ..engine.session import ModelInputs, choose_targets, predict_logits
    from ..norms import flat_norm

    if loaded.preprocess is not None:
        x = loaded.preprocess(x)
    clean_logits = predict_logits(loaded.module, x, config.batch_size, dev)
    inputs = ModelInputs(torch.arange(x.shape[0]), x, y, clean_logits,
                         choose_targets(config.targeted, y, clean_logits, config.seed), config.min_confidence,
                         loaded.num_classes, "<in-memory>", "test", config.seed)
    harness = Harness(loaded.module, loaded.num_classes, queries=config.queries)
    gen = torch.Generator(device=dev).manual_seed(int(config.seed))
    common = dict(batch_size=config.batch_size, device=dev)
    min_norm = None
    if spec.minimum_norm:
        unbounded = attack_samples(harness, built, inputs, ThreatModel(threat.norm, math.inf), generator=gen, **common)
        min_norm = minimum_norms(inputs, unbounded, threat.norm)
        done = rejudge(harness, inputs, unbounded, threat, **common) if math.isfinite(threat.eps) else unbounded
    else:
        done = attack_samples(harness, built, inputs, threat, generator=gen, **common)
    return AttackResult(
        x_adv=done.x_adv, success=done.success, attacked=inputs.attacked, clean_pred=inputs.clean_pred,
        adv_pred=done.logits.argmax(dim=1), targets=inputs.targets, n_forward=done.n_forward,
        n_backward=done.n_backward, norms=flat_norm((done.x_adv - x).double(), threat.norm), min_norm=min_norm,
        extras=done.extras, labels=y,
    )


__all__ = ["AttackResult", "attack"]
