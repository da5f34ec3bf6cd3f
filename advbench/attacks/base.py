"""The attack contract.

An :class:`Attack` holds hyperparameters only: the model (as an oracle), the inputs, the goal and the threat
model are arguments of :meth:`Attack.run`, so one instance serves every (model, eps) cell. Subclasses are
dataclasses whose fields are their options (``--attack-opt pgd.steps=40`` sets ``PGD.steps``), declared
with :func:`advbench.options.option` (``steps: int = option(20, ge=1, help="...")``) and checked when the
attack is built.

The harness never trusts what ``run`` returns: it checks the shape and finiteness, projects the result into
the epsilon ball and the input bounds, re-runs the model and decides success itself
(:class:`advbench.engine.harness.Harness`).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import torch

from ..errors import ConfigError
from ..options import check_options, convert_option, option_error, rename_deprecated
from ..specs import AttackSpec

if typing.TYPE_CHECKING:  # pragma: no cover
    from ..oracles import Oracle
    from ..threat import ThreatModel
    from .context import AttackContext


@dataclass(frozen=True)
class Goal:
    """What counts as adversarial for a batch.

    Attributes:
        labels: int64 [B], the true labels (-1 for unlabelled data such as the ``noise`` dataset).
        targets: int64 [B] target classes for a targeted attack, else ``None``.
        min_confidence: if set, success also needs the adversarial (or target) class at probability >= this.
    """

    labels: torch.Tensor
    targets: torch.Tensor | None = None
    min_confidence: float | None = None

    @property
    def targeted(self) -> bool:
        return self.targets is not None

    def is_adversarial(self, logits: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """bool [N]: whether each row of ``logits`` [N, K] meets the goal (rows = ``index`` of the batch).

        Untargeted: the top-1 class differs from the label; targeted: it is the target. With
        ``min_confidence``, the softmax probability of that class must also reach it.
        """
        pred = logits.argmax(dim=1)
        if self.targets is not None:
            tgt = self.targets if index is None else self.targets[index]
            ok = pred == tgt
        else:
            lab = self.labels if index is None else self.labels[index]
            ok = pred != lab
        if self.min_confidence is not None:
            ok = ok & (logits.softmax(dim=1).gather(1, pred[:, None]).squeeze(1) >= self.min_confidence)
        return ok

    def margin(self, logits: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """[N]: how far each row of ``logits`` [N, K] is from the goal, in logits; <= 0 where its top-1 condition
        holds (ties aside; ``min_confidence`` is not part of it). Untargeted: the label's logit minus the largest
        other; targeted: the largest other logit minus the target's."""
        if self.targets is not None:
            cls = self.targets if index is None else self.targets[index]
        else:
            cls = self.labels if index is None else self.labels[index]
        own = logits.gather(1, cls[:, None]).squeeze(1)
        other = logits.scatter(1, cls[:, None], float("-inf")).amax(dim=1)
        return other - own if self.targets is not None else own - other

    def subset(self, index: torch.Tensor) -> "Goal":
        """The goal for rows ``index`` of the batch."""
        return Goal(self.labels[index], None if self.targets is None else self.targets[index], self.min_confidence)


class Passes(NamedTuple):
    """Model passes one sample costs at most in one batch (what its rows' ``n_forward``/``n_backward`` count).

    Attributes:
        forward: forward passes (each gradient query is one forward and one backward).
        backward: backward passes through the model.
    """

    forward: int
    backward: int


@dataclass
class AttackOutput:
    """What :meth:`Attack.run` may return instead of a bare tensor.

    Attributes:
        x_adv: [B, C, H, W] candidate adversarials (checked and projected by the harness like a tensor).
        extras: per-sample values that become extra columns of the rows, each a list or tensor of length B
            (the ensemble records ``broken_by``, the member that broke each sample).
    """

    x_adv: torch.Tensor
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class Attack:
    """Base class of every attack. Subclass as a dataclass and implement :meth:`run`.

    Class attributes describe the family: ``name``, ``access`` (``gradient``, ``score`` or ``label``: the
    oracle the harness hands over), ``norms`` it supports, a one-line ``description`` and the paper in
    ``reference``. Fields are options: declare them with :func:`advbench.options.option` so that their
    constraints are checked by :meth:`__post_init__` (a subclass that needs its own calls
    ``super().__post_init__()`` first, then raises :meth:`invalid_option` for checks across fields).
    """

    name: ClassVar[str] = ""
    access: ClassVar[str] = "gradient"
    norms: ClassVar[tuple[str, ...]] = ("linf", "l2")
    description: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    #: A minimum-norm attack (C&W, DeepFool, FAB, L-BFGS) runs once per (model, norm) with ``threat.eps ==
    #: inf`` and returns each sample's smallest adversarial; the harness derives every eps cell from it.
    minimum_norm: ClassVar[bool] = False
    #: The fewest classes a model must have (DLR: 3; targeted DLR over the top classes: 4).
    min_classes: ClassVar[int] = 2
    #: An attack that learns from the train split first (a universal perturbation) sets this and
    #: implements :meth:`fit`.
    needs_fit: ClassVar[bool] = False
    #: Whether :meth:`fit` depends on eps (a universal perturbation does; a substitute model does not, and is
    #: then trained once per model).
    fit_per_eps: ClassVar[bool] = True
    #: Rank among fixed-budget white-box attacks, higher = stronger (0: unranked); see AttackSpec.strength.
    strength: ClassVar[int] = 0
    #: Crafts on another model (transfer, substitute). Judged by its fooling rate (universal perturbations).
    uses_surrogate: ClassVar[bool] = False
    reports_fooling_rate: ClassVar[bool] = False
    #: Whether the attack can pursue a target class (``--targeted``); the plan drops it from targeted runs if not.
    supports_targeted: ClassVar[bool] = True

    def fit(
        self, oracle: "Oracle", x: torch.Tensor, goal: Goal, threat: "ThreatModel", generator: torch.Generator
    ) -> None:
        """Learn from training data before :meth:`run` (only called when ``needs_fit``).

        Args:
            oracle: this attack's access to the model, over the training batch ``x``.
            x: training images [N, C, H, W] in [0, 1]; goal: their labels.
        """

    def run(
        self,
        oracle: "Oracle",
        x: torch.Tensor,
        goal: Goal,
        threat: "ThreatModel",
        generator: torch.Generator,
    ) -> torch.Tensor:
        """Craft adversarials for one batch.

        Args:
            oracle: the model as this attack's access level allows (counts queries per sample).
            x: clean inputs [B, C, H, W] in [0, 1].
            goal: true labels (and targets, for a targeted run).
            threat: the norm and epsilon; the harness projects the result into it anyway.
            generator: the only source of randomness allowed (seeded per cell, on x's device).
        Returns:
            Candidate adversarials [B, C, H, W].
        """
        raise NotImplementedError(f"{type(self).__name__}.run")

    # -- the run's context (composite attacks) -------------------------------------------------------
    #: Set on attacks whose spec says ``wants_context`` (the ensemble, transfer, substitute): they build
    #: members, base attacks or surrogates through the run's :class:`~advbench.attacks.context.AttackContext`.
    wants_context: ClassVar[bool] = False

    def bind(self, context: "AttackContext | None") -> None:
        """Receive the run's context once, right after the attack is built (not an option, never recorded).

        Composite attacks override this to resolve what they need now, so a bad member or base attack fails
        before any cell runs; they call ``super().bind(context)`` first.
        """
        self.__dict__["_context"] = context

    @property
    def context(self) -> "AttackContext":
        """The context :meth:`bind` received (an :class:`AttackError` when the attack was built without one)."""
        from ..errors import AttackError

        context = self.__dict__.get("_context")
        if context is None:
            raise AttackError(f"attack {self.name!r} needs the run's context: build it with "
                              "advbench.testing.build_attack(name, ...) or through a run, not by calling its class")
        return context

    # -- progress ------------------------------------------------------------------------------------
    def expected_queries(self, threat) -> int | None:
        """Oracle calls one batch makes at most (progress bars and their ETA), or ``None`` when unknown.

        Early stopping ends most runs sooner; the bar then completes at once. Override in iterative attacks.
        """
        return None

    def expected_passes(self, threat) -> Passes | None:
        """Forward and backward passes per sample one batch makes at most (``advbench run --dry-run``), or
        ``None`` when unknown.

        The default reads :meth:`expected_queries`: every query of a gradient attack is taken to be a forward
        and a backward pass (an upper bound), a score or label query a forward pass; with EOT each query costs
        ``eot`` passes, as the oracle counts them. Override where the split is known exactly.
        """
        queries = self.expected_queries(threat)
        if queries is None:
            return None
        passes = queries * int(getattr(self, "eot", 1) or 1)
        return Passes(passes, passes if self.access == "gradient" else 0)

    # -- options -------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        """Check the options declared with :func:`advbench.options.option` (subclasses call this first)."""
        check_options(self, self.option_owner())

    @classmethod
    def option_owner(cls) -> str:
        """How option errors name this attack: ``attack 'pgd'``."""
        return f"attack {cls.name!r}"

    def invalid_option(self, name: str, requirement: str) -> ConfigError:
        """The one-line error for option ``name`` (``requirement``: what it must be), for the checks across
        fields that cannot be declared; raise it from ``__post_init__``."""
        return option_error(self.option_owner(), name, requirement, getattr(self, name))

    def options(self) -> dict[str, Any]:
        """The hyperparameters as plain data (recorded in the run manifest)."""
        return dataclasses.asdict(self)

    @classmethod
    def option_names(cls) -> list[str]:
        """The option names in the order ``advbench list attacks NAME`` shows them (the attack's own, then the
        keyword-only ones a whole family shares, such as EOT's)."""
        return [f.name for f in sorted(dataclasses.fields(cls), key=lambda f: bool(f.kw_only))]

    @classmethod
    def from_options(cls, context: "AttackContext | None" = None, **options: Any) -> "Attack":
        """Build from option values, converting strings (from the command line) to the field types; an attack
        that ``wants_context`` is then bound to ``context``.

        Deprecated option names are renamed (with a FutureWarning); errors are one-line ConfigErrors.
        """
        owner = cls.option_owner()
        options = rename_deprecated(cls, options, owner)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in options.items():
            if key not in fields:
                valid = ", ".join(fields) or "none"
                raise ConfigError(f"{owner} has no option {key!r}; its options are: {valid}")
            kwargs[key] = convert_option(value, hints.get(key, Any), owner, key)
        try:
            attack = cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{owner}: {exc}") from None
        if cls.wants_context:
            attack.bind(context)
        return attack

    @classmethod
    def spec(cls) -> AttackSpec:
        """The registry record for this attack class."""
        return AttackSpec(
            name=cls.name,
            factory=cls.from_options,
            norms=tuple(cls.norms),
            access=cls.access,  # type: ignore[arg-type]
            description=cls.description,
            reference=cls.reference,
            minimum_norm=cls.minimum_norm,
            min_classes=cls.min_classes,
            strength=cls.strength,
            uses_surrogate=cls.uses_surrogate,
            needs_fit=cls.needs_fit,
            fit_per_eps=cls.fit_per_eps,
            reports_fooling_rate=cls.reports_fooling_rate,
            targeted=cls.supports_targeted,
            wants_context=cls.wants_context,
            # only a family that claims names has an alias: the resolver asks every spec that has one
            alias=cls.alias if cls.alias.__func__ is not Attack.alias.__func__ else None,
        )

    @classmethod
    def alias(cls, name: str) -> "dict[str, Any] | None":
        """Options implied by an unregistered attack name this family claims (``pgd@MODEL``), else ``None``."""
        return None
