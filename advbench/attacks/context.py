"""What a composite attack gets from the run that builds it, instead of reaching for the global host.

An :class:`AttackContext` is built by the engine (``advbench.engine.resolve``) for one run: the attack
specs of *this* host's registry, a model loader that goes through exactly the loading, ``--weights``,
``--model-opt`` and preprocessing of the models under test, and the harness itself, so that a cascade
(the ensemble) judges each member by the same contract as the leaderboard. Nothing here imports the
engine, the plugin host or the CLI: the engine hands the callables in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..oracles import Oracle
    from ..specs import AttackSpec
    from ..threat import ThreatModel
    from .base import Attack, Goal


@dataclass
class BatchVerdict:
    """The harness's verdict on one attacked batch (all tensors on the batch's device).

    Attributes:
        x_adv: [B, C, H, W] the attack's output, validated and projected into the ball and [0, 1]
            (x itself for samples that were not attacked).
        logits: [B, K] the model's logits at ``x_adv`` (the clean logits where ``x_adv == x``).
        success: bool [B] whether the goal is met; never true for a sample that was not attacked.
        attacked: bool [B] the samples the attack ran on.
        n_forward, n_backward: int64 [B] queries counted per sample.
        extras: per-sample columns the attack returned beside ``x_adv``.
        budget_exhausted: the attack was stopped at the query budget (its best in-budget points are kept).
        refused: bool [B] for a cascade member whose passes ran in bf16: candidates bf16 calls adversarial and
            the float32 judge does not (never successes); ``None`` in float32.
    """

    x_adv: "torch.Tensor"
    logits: "torch.Tensor"
    success: "torch.Tensor"
    attacked: "torch.Tensor"
    n_forward: "torch.Tensor"
    n_backward: "torch.Tensor"
    extras: dict[str, Any] = field(default_factory=dict)
    budget_exhausted: bool = False
    refused: "torch.Tensor | None" = None

    @property
    def adv_pred(self) -> "torch.Tensor":
        """int64 [B] top-1 predictions at ``x_adv``."""
        return self.logits.argmax(dim=1)


@dataclass(frozen=True)
class LoadedModel:
    """A model as the run loads it: the wrapped module and its preprocessing.

    Attributes:
        name: registry name. module: maps [B, C, H, W] in [0, 1] to logits [B, K] (eval mode, frozen).
        num_classes: K. preprocess: dataset images -> this model's inputs (resize, crop), or ``None``.
    """

    name: str
    module: "torch.nn.Module"
    num_classes: int
    preprocess: "Callable[[torch.Tensor], torch.Tensor] | None" = None


class MemberRunner(Protocol):
    """The harness contract on one batch served by an existing oracle (a cascade's sub-batch view)."""

    def __call__(self, attack: "Attack", oracle: "Oracle", x: "torch.Tensor", goal: "Goal",
                 threat: "ThreatModel", generator: "torch.Generator") -> BatchVerdict: ...


@dataclass(frozen=True)
class AttackContext:
    """The run, as a composite attack may see it.

    Attributes:
        attack_spec: ``name -> AttackSpec`` from this run's registry (an unknown name raises
            :class:`advbench.errors.RegistryError` with did-you-mean).
        build_attack: ``(name, options) -> Attack``: a member or base attack, built with this context.
        load_model: ``(name, options) -> LoadedModel``: a surrogate, loaded as the run loads models under
            test (``options`` default to the run's ``--model-opt``/``--weights`` for that name).
        run_member: the harness contract for a member's batch (validate, project, re-judge, count).
        device: where the run computes.
    """

    attack_spec: Callable[[str], "AttackSpec"]
    build_attack: Callable[[str, Mapping[str, Any]], "Attack"]
    load_model: Callable[[str, "Mapping[str, Any] | None"], LoadedModel]
    run_member: MemberRunner
    device: str = "cpu"
