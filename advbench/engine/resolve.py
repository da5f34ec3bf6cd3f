"""Names -> specs, against *this* host's registry; attacks built with the run's attack context.

Every name of a run (dataset, models, attacks, ``--attack-opt`` targets) is checked here, before any compute.
A name that is not registered may still be claimed by an attack family's ``alias`` (``pgd@cnn.mnist5k_std``
is the transfer attack's), so no attack syntax is known to the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

import torch

from ..attacks.base import Attack
from ..attacks.context import AttackContext, LoadedModel
from ..errors import AdvbenchError, AttackError, ConfigError, RegistryError
from ..specs import AttackSpec, DatasetSpec, ModelSpec
from .config import RunConfig
from .harness import run_member
from .interrupts import InterruptWatch, describe
from .isolate import check_isolatable
from .plan import Plan, make_plan
from .session import load_model


def resolve_attack_spec(host, name: str) -> tuple[AttackSpec, dict[str, Any]]:
    """The spec for an attack name and the options its name implies (an alias claimed by a family)."""
    table = host.registry.attacks
    if name in table:
        return table.get(name), {}
    for spec in table:
        preset = spec.alias(name) if spec.alias is not None else None
        if preset is not None:
            return replace(spec, name=name), dict(preset)
    return table.get(name), {}  # raises RegistryError with did-you-mean


def make_context(host, config: RunConfig, device: torch.device | str) -> AttackContext:
    """The attack context of a run on ``host``: its registry, its model loading, the harness's member runner."""

    def attack_spec(name: str) -> AttackSpec:
        return resolve_attack_spec(host, name)[0]

    def build_attack(name: str, options: Mapping[str, Any]) -> Attack:
        spec, preset = resolve_attack_spec(host, name)
        return spec.build(context=context, **{**preset, **dict(options)})

    def load(name: str, options: Mapping[str, Any] | None = None) -> LoadedModel:
        opts = config.model_options.get(name, {}) if options is None else options
        return load_model(host.model_spec(name, opts), opts, device)

    context = AttackContext(attack_spec=attack_spec, build_attack=build_attack, load_model=load,
                            run_member=run_member, device=str(device))
    return context


@dataclass
class ResolvedRun:
    """Everything a run's names stand for. attacks: name -> built attack (one instance serves every cell)."""

    dataset: DatasetSpec
    models: list[ModelSpec]
    attack_specs: dict[str, AttackSpec]
    attacks: dict[str, Attack]
    plan: Plan
    context: AttackContext


def resolve_run(config: RunConfig, host) -> ResolvedRun:
    """Resolve every name of ``config`` on ``host``, build the attacks, and plan the cells."""
    dataset = host.dataset_spec(config.dataset, config.dataset_options)
    models = [host.model_spec(m, config.model_options.get(m)) for m in config.models]
    context = make_context(host, config, config.device)
    specs: dict[str, AttackSpec] = {}
    attacks: dict[str, Attack] = {}
    for name in config.attacks:  # every attack of the run is built the way the context builds members
        specs[name] = context.attack_spec(name)
        if config.isolate:
            check_isolatable(name, specs[name])
        attacks[name] = _build(context, name, config.attack_options.get(name, {}))
    unknown = sorted(set(config.attack_options) - set(attacks))
    if unknown:
        raise AdvbenchError(f"--attack-opt names attack {unknown[0]!r}, which is not in --attacks")
    if config.targeted is not None and config.targeted.isdigit() and int(config.targeted) >= dataset.num_classes:
        raise ConfigError(f"--targeted {config.targeted}: dataset {dataset.name!r} has classes 0..{dataset.num_classes - 1}")
    plan = make_plan(models, list(specs.values()), config.norm, list(config.eps), dataset,
                     targeted=config.targeted is not None)
    return ResolvedRun(dataset, models, specs, attacks, plan, context)


def _build(context: AttackContext, name: str, options: Mapping[str, Any]) -> Attack:
    """Build one attack of the run; whatever its plugin's code raises (even ``sys.exit`` at the import of a
    lazily named class) is one line naming the attack, before any compute."""
    with InterruptWatch() as watch:
        try:
            return context.build_attack(name, options)
        except AdvbenchError:
            raise
        except BaseException as exc:  # noqa: BLE001
            if watch.is_real(exc):
                raise
            raise AttackError(f"attack {name!r} could not be built: {describe(exc)}") from exc


def pick_transfer_attack(config: RunConfig, specs: Mapping[str, AttackSpec]) -> str | None:
    """The white-box attack whose adversarials feed the transferability matrix: ``--transfer-attack``, or the
    strongest white-box attack of the run by declared ``strength`` (the first white-box one if none is ranked).
    One attack keeps memory and time in check on big runs."""
    white = [n for n, s in specs.items() if s.access == "gradient" and not s.uses_surrogate and not s.needs_fit]
    if config.transfer_attack is not None:
        if config.transfer_attack not in white:
            raise AdvbenchError(f"--transfer-attack {config.transfer_attack!r} is not a white-box attack of this run "
                                f"(white-box attacks here: {', '.join(white) or 'none'})")
        return config.transfer_attack
    if not white:
        return None
    return max(white, key=lambda n: (specs[n].strength, -white.index(n)))


__all__ = ["ResolvedRun", "make_context", "pick_transfer_attack", "resolve_attack_spec", "resolve_run", "RegistryError"]
