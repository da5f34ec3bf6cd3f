"""An AutoAttack-style ensemble: a per-sample worst-case cascade of registered attacks (Croce & Hein 2020).

Member 1 attacks the whole batch; the ensemble judges its output exactly as the harness does (project into
the threat ball and [0, 1], one counted forward query, ``goal.is_adversarial``); member 2 attacks only the
samples that are still robust, and so on. Each sample keeps the first adversarial found and records the
member that found it (the ``broken_by`` column of the rows).

Members see ``oracle.subset(still_robust)``: a view of the ensemble's oracle over the still-robust rows, at
the member's own access level, so that every query a member makes is counted against the right sample of the
harness's batch. Members are resolved and run through the run's attack context: the registry of the run's
host (a plugin's attack can be a member) and the harness's own member contract (validate, project, judge).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..errors import AttackError, ConfigError, RegistryError
from ..options import option, parse_nested_options
from ..norms import Norm
from .base import Attack, AttackOutput, Goal, Passes

#: The member lists (and the options they get) of each ``version``, after AutoAttack's ``set_version``.
#: Options are applied only where the member has an option of that name (``square`` is a third party's
#: attack whose option names may differ); the user's ``member_options`` always win.
VERSIONS: dict[str, tuple[tuple[str, ...], dict[str, dict[str, Any]]]] = {
    # AutoAttack "standard": APGD-CE (100 steps, no restarts), APGD-T (9 target classes), FAB-T (9 target
    # classes) and Square (5000 queries), in that order.
    "standard": (
        ("apgd_ce", "apgd_t", "fab_t", "square"),
        {
            "apgd_ce": {"steps": 100, "restarts": 1},
            "apgd_t": {"steps": 100, "restarts": 1, "n_target_classes": 9},
            "fab_t": {"steps": 100, "restarts": 1, "n_target_classes": 9},
            "square": {"max_queries": 5000, "restarts": 1},
        },
    ),
    # AutoAttack "plus": the untargeted attacks with 5 restarts each, then the targeted ones.
    "plus": (
        ("apgd_ce", "apgd_dlr", "fab", "square", "apgd_t", "fab_t"),
        {
            "apgd_ce": {"steps": 100, "restarts": 5},
            "apgd_dlr": {"steps": 100, "restarts": 5},
            "fab": {"steps": 100, "restarts": 5},
            "square": {"max_queries": 5000, "restarts": 5},
            "apgd_t": {"steps": 100, "restarts": 1, "n_target_classes": 9},
            "fab_t": {"steps": 100, "restarts": 1, "n_target_classes": 9},
        },
    ),
    # AutoAttack "rand", for randomised defences: APGD-CE and APGD-DLR with 20 EOT draws per gradient query.
    "rand": (
        ("apgd_ce", "apgd_dlr"),
        {
            "apgd_ce": {"steps": 100, "restarts": 1, "eot": 20},
            "apgd_dlr": {"steps": 100, "restarts": 1, "eot": 20},
        },
    ),
    # Exactly the members given, with their own defaults.
    "custom": ((), {}),
}


def parse_member_options(text: str) -> dict[str, dict[str, str]]:
    """``"apgd_ce.steps=50;fab_t.steps=50"`` -> ``{"apgd_ce": {"steps": "50"}, "fab_t": {"steps": "50"}}``.

    Entries are separated by ``;`` (a comma would clash with ``--attacks``-style lists); values stay strings
    and are converted by each member's :meth:`Attack.from_options`. Malformed items are an error.
    """
    return parse_nested_options(text, what="ensemble member option", member="MEMBER",
                                example="apgd_ce.steps=50;fab_t.steps=50")


@dataclass
class Ensemble(Attack):
    """A per-sample worst-case cascade of attacks, AutoAttack style (linf, l2).

    Member 1 runs on the whole batch. After each member the ensemble judges its candidates exactly like the
    harness (projection into the eps ball and [0, 1], one counted forward query per sample,
    ``goal.is_adversarial``); the next member runs only on the samples still robust, with
    ``oracle.restricted(member.access)`` seen through a :class:`SubBatchOracle`, so its queries are counted
    against those samples only. Minimum-norm members (``fab_t``) run with the ensemble's finite budget.
    Each member gets its own generator, seeded from the ensemble's, so one member's consumption of random
    numbers does not shift the next member's draws.

    Returns each broken sample's first adversarial and x itself for a sample no member broke (AutoAttack's
    convention), with the per-sample extra ``broken_by``: the member that broke it, or ``""``. The
    harness re-judges what is returned and has the final word; ``broken_by`` is the ensemble's own verdict
    and agrees with it except, in principle, for a candidate within float rounding of the decision boundary.

    With ``--precision bf16`` the members' passes run in bf16 and their candidates are judged in float32: a
    candidate only bf16 calls adversarial does not take its sample out of the cascade (the next member attacks
    it, in the same batch as the rest), and if no later member breaks the sample that candidate is its output,
    so the harness attacks it again in float32 as it does for any attack's refused success.

    Options:
        members: comma-separated registry names, run in order. Unset: the ``version``'s list, where a
            member the current host does not register is skipped (the reason is in ``skipped`` and a
            warning). Set explicitly: an unknown name is a :class:`ConfigError` (with did-you-mean), and a
            member that does not support the norm fails the cell.
        member_options: per-member options, ``MEMBER.OPTION=VALUE`` separated by ``;`` (e.g.
            ``apgd_ce.steps=50;fab_t.steps=50``); they override the version's settings.
        version: ``standard`` (AutoAttack's standard evaluation: ``apgd_ce`` 100 steps; ``apgd_t`` with 9
            target classes; ``fab_t`` with 9 target classes; ``square`` with 5000 queries), ``plus``
            (``apgd_ce``, ``apgd_dlr``, ``fab``, ``square`` with 5 restarts each, then ``apgd_t`` and
            ``fab_t``), ``rand`` (for randomised defences: ``apgd_ce`` and ``apgd_dlr`` with 20 EOT draws per
            gradient query) or ``custom`` (only ``members``, with their own defaults; ``members`` is then
            required). The version's settings are applied only to options a member actually has.

    Attributes:
        skipped: ``{member: reason}`` for default members left out (not registered in the current host).
    """

    name = "ensemble"
    strength = 100
    access = "gradient"
    norms = ("linf", "l2")
    description = "AutoAttack-style cascade: each member attacks only the samples still robust (per-sample worst case)"
    reference = (
        "Croce, Hein. Reliable evaluation of adversarial robustness with an ensemble of diverse "
        "parameter-free attacks. ICML 2020"
    )
    #: The members of the default ``standard`` version (documentation; the version table is the source).
    DEFAULT_MEMBERS: ClassVar[str] = ",".join(VERSIONS["standard"][0])

    members: str | None = option(None, help="comma-separated member attacks, run in order (unset: the version's)")
    member_options: str = option("", help="per-member options, MEMBER.OPTION=VALUE;... (override the version's)")
    version: str = option("standard", choices=tuple(VERSIONS), help="standard, plus, rand (AutoAttack's) or custom")
    wants_context = True
    strength = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        explicit = self.members is not None and self.members.strip() != ""
        if self.version == "custom" and not explicit:
            raise self.invalid_option("version", "used with members (version 'custom' needs members, e.g. members=apgd_ce,square)")
        names = (
            [m.strip() for m in self.members.split(",") if m.strip()] if explicit else list(VERSIONS[self.version][0])
        )
        if len(set(names)) != len(names):
            raise self.invalid_option("members", "a list without repeats")
        if self.name in names:
            raise self.invalid_option("members", "a list without the ensemble itself (an ensemble cannot be a member of itself)")
        per_member = parse_member_options(self.member_options)
        stray = sorted(set(per_member) - set(names))
        if stray:
            raise ConfigError(
                f"ensemble member_options name {', '.join(map(repr, stray))}, which "
                f"{'is' if len(stray) == 1 else 'are'} not among the members ({','.join(names)})"
            )
        self._explicit = explicit
        self._names = names
        self._per_member = per_member
        self.skipped: dict[str, str] = {}
        self._resolved: list[tuple[str, Any, Attack]] | None = None

    # -- members --------------------------------------------------------------------------------------
    def bind(self, context) -> None:
        """Resolve the members against the run's registry now: an unknown explicit member fails before any
        cell runs, and skipped default members are known (and warned about) up front."""
        super().bind(context)
        self._resolved = None
        if context is not None:
            self._resolve()

    def _resolve(self) -> list[tuple[str, Any, Attack]]:
        """(name, spec, built attack) per member that runs, in order, from the run's registry."""
        if self._resolved is not None:
            return self._resolved
        context = self.context
        version_options = VERSIONS[self.version][1]
        resolved = []
        for name in self._names:
            try:
                spec = context.attack_spec(name)
            except RegistryError as exc:
                if self._explicit:
                    raise ConfigError(f"ensemble member: {exc}") from None
                self.skipped[name] = f"not registered in this advbench host ({exc})"
                warnings.warn(f"ensemble: skipping member {name!r}: not registered", stacklevel=2)
                continue
            if spec.name == self.name:
                raise ConfigError("an ensemble cannot be a member of itself")
            user = self._per_member.get(name, {})
            attack = context.build_attack(name, user)  # unknown user options: a ConfigError naming the member's
            preset = version_options.get(name, {})
            known = set(attack.option_names()) if isinstance(attack, Attack) else set()
            merged = {k: v for k, v in preset.items() if k in known and k not in user}
            if merged:
                attack = context.build_attack(name, {**merged, **user})
            resolved.append((name, spec, attack))
        if not resolved:
            raise ConfigError(
                f"no member of the ensemble is registered ({', '.join(self._names)}); set members to attacks "
                "that `advbench list attacks` shows"
            )
        self._resolved = resolved
        return resolved

    def expected_queries(self, threat) -> int | None:
        """Every member's calls on the whole batch (later members see fewer samples, not fewer calls), plus
        the one judging query after each member."""
        counts = [m.expected_queries(threat) for m in self.member_attacks()]
        return None if any(c is None for c in counts) else sum(c + 1 for c in counts)

    def expected_passes(self, threat) -> Passes | None:
        """Every member's passes, plus the forward pass judging each member's output."""
        passes = [m.expected_passes(threat) for m in self.member_attacks()]
        if any(p is None for p in passes):
            return None
        return Passes(sum(p.forward + 1 for p in passes), sum(p.backward for p in passes))

    def member_attacks(self) -> list[Attack]:
        """The attacks that run, in order (resolved against the run's registry)."""
        return [attack for _, _, attack in self._resolve()]

    # -- the cascade ----------------------------------------------------------------------------------
    def run(self, oracle, x: torch.Tensor, goal: Goal, threat, generator: torch.Generator) -> AttackOutput:
        """Run the cascade on one batch.

        Args:
            oracle: a gradient oracle over the batch ``x`` (members get restricted views of it).
            x: [B, C, H, W] clean inputs in [0, 1]. goal: labels (and targets) [B].
            threat: the norm and a finite eps (every member, minimum-norm ones included, runs at it).
            generator: seeds one generator per member.
        Returns:
            AttackOutput with x_adv [B, C, H, W] (x where no member succeeded; in bf16, a refused candidate
            where one was made) and extras
            ``{"broken_by": list of B member names or ""}``.
        """
        if not math.isfinite(threat.eps):
            raise AttackError("the ensemble needs a finite eps (it is not a minimum-norm attack)")
        norm = threat.norm.value if isinstance(threat.norm, Norm) else str(threat.norm)
        members = self._resolve()
        for name, spec, _ in members:
            if norm not in spec.norms:
                raise AttackError(f"ensemble member {name!r} does not support the {norm} norm")
        x_adv = x.clone()
        broken_by = [""] * x.shape[0]
        todo = torch.arange(x.shape[0], device=x.device)
        for name, _, attack in members:
            if todo.numel() == 0:
                break
            seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
            member_gen = torch.Generator(device=generator.device).manual_seed(seed)
            try:  # the harness's member contract: validate, project, one counted judging query per row
                verdict = self.context.run_member(attack, oracle.subset(todo), x[todo], goal.subset(todo), threat,
                                                  member_gen)
            except AttackError as exc:
                raise AttackError(f"ensemble member {name!r}: {exc}") from exc
            broken = verdict.success
            x_adv[todo[broken]] = verdict.x_adv[broken]
            if verdict.refused is not None:
                # bf16 passes: a candidate float32 refuses stays as the sample's output unless a later member
                # breaks it, so that the harness, which attacks such samples again in float32, still sees it
                # (one that did not move is no candidate: the sample keeps an earlier one)
                moved = (verdict.x_adv != x[todo]).flatten(1).any(dim=1)
                keep = verdict.refused & moved
                x_adv[todo[keep]] = verdict.x_adv[keep]
            for i in todo[broken].tolist():  # one host sync per member
                broken_by[i] = name
            todo = todo[~broken]
        return AttackOutput(x_adv, extras={"broken_by": broken_by})
