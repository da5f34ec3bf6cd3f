"""Run a whole plan on one machine: per model, clean predictions once, then every cell in batches."""

from __future__ import annotations

import json
import math
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..errors import AdvbenchError
from ..plugins import PluginHost
from ..results import RunStore, environment, now_utc
from ..specs import DatasetSpec
from ..threat import ThreatModel
from .config import RunConfig
from .plan import Cell, Plan, make_plan
from .runner import (
    ROW_COLUMNS, CellResult, ModelInputs, cell_rows, cell_seed, choose_targets, judge, minimum_norms,
    predict_logits, run_attack,
)
from .samples import select_samples
from .transfer import AdversarialStore, matrix_frame, transfer_rows


class Reporter:
    """Receives progress events; the CLI renders them with rich, the Python API ignores them."""

    def run_started(self, plan: Plan, n_samples: int) -> None: ...
    def model_started(self, model: str, n_cells: int) -> None: ...
    def cell_started(self, cell: Cell, n_attacked: int) -> None: ...
    def batch_done(self, n: int) -> None: ...
    def cell_finished(self, cell: Cell, rows: pd.DataFrame, seconds: float, reused: bool) -> None: ...
    def cell_failed(self, cell: Cell, message: str) -> None: ...
    def model_finished(self, model: str) -> None: ...
    def run_finished(self) -> None: ...


@dataclass
class Failure:
    """A cell (or every cell of a model) that could not run."""

    cells: list[str]
    message: str
    traceback: str = ""


@dataclass
class RunOutcome:
    rows: pd.DataFrame
    plan: Plan
    failures: list[Failure] = field(default_factory=list)
    run_dir: Path | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    flags: list[dict[str, Any]] = field(default_factory=list)
    transfer: pd.DataFrame | None = None


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; an unavailable device is an error."""
    from ..errors import ConfigError

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"invalid --device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device} asked for, but no CUDA device is available: use --device cpu")
    return str(dev)


def execute(config: RunConfig, host: PluginHost, reporter: Reporter | None = None) -> RunOutcome:
    """Resolve every name, plan, and run. Names are all checked before any compute starts."""
    reporter = reporter or Reporter()
    dataset: DatasetSpec = host.dataset_spec(config.dataset, config.dataset_options)
    resolved = [resolve_attack(host, a) for a in config.attacks]
    attack_specs = [spec for spec, _ in resolved]
    model_specs = [host.model_spec(m, config.model_options.get(m)) for m in config.models]
    attacks = {spec.name: spec.build(**{**preset, **config.attack_options.get(spec.name, {})}) for spec, preset in resolved}
    unknown_opts = sorted(set(config.attack_options) - set(attacks))
    if unknown_opts:
        raise AdvbenchError(f"--attack-opt names attack {unknown_opts[0]!r}, which is not in --attacks")
    plan = make_plan(model_specs, attack_specs, config.norm, list(config.eps), dataset)
    device = torch.device(config.device)
    sample_ids, x, y = select_samples(dataset, config.split, config.n_samples, config.seed, config.dataset_options)

    store = RunStore(config.out) if config.out is not None else None
    if config.resume and store is not None:
        _check_resumable(store.run_dir, config, {n: a.options() for n, a in attacks.items()})
    manifest: dict[str, Any] = {
        "started": now_utc(),
        "environment": environment(),
        "device": _device_name(device),
        "seed": config.seed,
        "config": config.to_json(),
        "attacks": {spec.name: {"options": attacks[spec.name].options(), "plugin": spec.plugin} for spec in attack_specs},
        "models": {s.name: {"plugin": s.plugin, "card": s.card} for s in model_specs},
        "plugins": [{"name": p.name, "distribution": p.distribution, "version": p.version, "error": p.error} for p in host.plugins],
        "n_samples": int(sample_ids.numel()),
        "sample_ids_sha256": _ids_digest(sample_ids),
        "plan": {
            "cells": [str(c) for c in plan.cells],
            "dropped": [{"model": d.model, "attack": d.attack, "reason": d.reason} for d in plan.dropped],
        },
        "failures": [],
    }
    if store is not None:
        store.write_manifest(manifest)
        host.notify("advbench_run_started", config=config.to_json(), run_dir=store.run_dir)

    reporter.run_started(plan, int(sample_ids.numel()))
    frames: list[pd.DataFrame] = []
    failures: list[Failure] = []
    flags: list[dict[str, Any]] = []
    # The transferability matrix reuses the white-box adversarials of a multi-model run.
    transfer_attack = pick_transfer_attack(config, attacks)
    keep = config.transfer_matrix and transfer_attack is not None and len({c.model for c in plan.cells}) > 1
    adversarials = AdversarialStore({})
    clean_preds: dict[str, torch.Tensor] = {}
    input_shapes: dict[str, tuple[int, ...]] = {}
    for spec in model_specs:
        cells = plan.cells_for(spec.name)
        if not cells:
            continue
        reporter.model_started(spec.name, len(cells))
        pending = [c for c in cells if not (config.resume and store is not None and store.has_cell(c.key))]
        for c in cells:
            if c not in pending:
                rows = store.read_cell(c.key)  # type: ignore[union-attr]
                frames.append(rows)
                if keep and c.attack == transfer_attack:
                    stored = store.read_adversarials(c.key)  # type: ignore[union-attr]
                    if stored is not None:  # written unless --no-save-adversarials
                        adversarials.cells[(c.model, c.attack, c.norm.value, c.eps)] = stored
                reporter.cell_finished(c, rows, 0.0, reused=True)
        if not pending:
            reporter.model_finished(spec.name)
            continue
        try:
            model = spec.load(device=str(device), **config.model_options.get(spec.name, {}))
            num_classes = int(getattr(model, "num_classes", dataset.num_classes))
            # the model's own preprocessing (resize, crop) happens once, before any attack: eps is measured
            # on the pixels the model sees
            x_model = spec.preprocess(x) if spec.preprocess is not None else x
            clean_logits = predict_logits(model, x_model, config.batch_size, device)
            inputs = ModelInputs(
                sample_ids=sample_ids, x=x_model, y=y, clean_logits=clean_logits,
                targets=choose_targets(config.targeted, y, clean_logits, config.seed),
                min_confidence=config.min_confidence, num_classes=num_classes,
                dataset=dataset.name, split=config.split, seed=config.seed,
            )
        except Exception as exc:  # noqa: BLE001 - a model that cannot load fails its cells, not the run
            message = str(exc) if isinstance(exc, AdvbenchError) else f"model {spec.name!r} failed to load: {type(exc).__name__}: {exc}"
            message = message.splitlines()[0] if message else type(exc).__name__
            failures.append(Failure([str(c) for c in pending], message, traceback.format_exc()))
            for c in pending:
                reporter.cell_failed(c, message)
            reporter.model_finished(spec.name)
            continue
        clean_preds[spec.name] = inputs.clean_pred
        input_shapes[spec.name] = tuple(inputs.x.shape[1:])
        if config.sanity_checks:
            try:
                flags.extend(_probe(model, spec.name, inputs, config, device))
            except Exception as exc:  # noqa: BLE001 - a probe must never cost the run
                flags.append({"model": spec.name, "attack": "*", "eps": None, "flag": "probe_failed",
                              "detail": f"the gradient-masking probes raised {type(exc).__name__}: {exc}"})
        n_attacked = int(inputs.attacked.sum())
        unbounded: dict[str, tuple] = {}  # minimum-norm attacks: one unbounded run serves every eps
        for cell in pending:
            reporter.cell_started(cell, n_attacked)
            try:
                result = _run_cell(cell, attacks[cell.attack], model, inputs, config, device, dataset, unbounded, reporter, spec.preprocess)
            except Exception as exc:  # noqa: BLE001 - one failing cell (often a plugin's bug) must not stop the run
                message = str(exc) if isinstance(exc, AdvbenchError) else f"{type(exc).__name__}: {exc}"
                message = f"cell {cell} failed: {message.splitlines()[0] if message else type(exc).__name__}"
                failures.append(Failure([str(cell)], message, traceback.format_exc()))
                reporter.cell_failed(cell, message)
                continue
            if store is not None:
                store.write_cell(
                    cell.key, result.rows,
                    result.x_adv if config.save_adversarials else None, sample_ids,
                )
                host.notify(
                    "advbench_cell_finished",
                    cell={"model": cell.model, "attack": cell.attack, "norm": cell.norm.value, "eps": cell.eps, "seconds": result.seconds},
                    rows=result.rows,
                )
            frames.append(result.rows)
            if keep and cell.attack == transfer_attack:
                adversarials.cells[(cell.model, cell.attack, cell.norm.value, cell.eps)] = result.x_adv
            reporter.cell_finished(cell, result.rows, result.seconds, reused=False)
        del model
        reporter.model_finished(spec.name)

    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(ROW_COLUMNS))
    transfer = None
    if keep and adversarials.cells:
        transfer = _transfer_matrix(model_specs, clean_preds, input_shapes, adversarials, y, config, device)
        if config.sanity_checks:
            from .sanity import transfer_flags

            flags.extend(transfer_flags(transfer))
        if store is not None:
            store.write_transfer(transfer)
    if config.sanity_checks:
        from .sanity import row_flags

        flags.extend(row_flags(rows, {name: a.access for name, a in attacks.items()}))
    manifest["flags"] = flags
    manifest["failures"] = [{"cells": f.cells, "message": f.message} for f in failures]
    manifest["finished"] = now_utc()
    if store is not None:
        store.write_results(rows)
        store.write_flags(flags)
        store.write_manifest(manifest)
        host.notify("advbench_run_finished", run_dir=store.run_dir, rows=rows)
    reporter.run_finished()
    return RunOutcome(rows, plan, failures, store.run_dir if store else None, manifest, flags, transfer)


#: Known white-box strength, strongest first: the default attack of the transferability matrix.
_TRANSFER_PREFERENCE = ("ensemble", "apgd_t", "apgd_ce", "pgd", "bim", "mifgsm", "fab_t", "fgsm")


def pick_transfer_attack(config: RunConfig, attacks: dict[str, Any]) -> str | None:
    """The white-box attack whose adversarials feed the transferability matrix: ``--transfer-attack``, or the
    strongest white-box attack of the run (one attack keeps memory and time in check on big runs)."""
    white = [n for n, a in attacks.items() if a.access == "gradient" and not getattr(a, "uses_surrogate", False)
             and not a.needs_fit]
    if config.transfer_attack is not None:
        if config.transfer_attack not in white:
            raise AdvbenchError(f"--transfer-attack {config.transfer_attack!r} is not a white-box attack of this run "
                                f"(white-box attacks here: {', '.join(white) or 'none'})")
        return config.transfer_attack
    ranked = [n for n in _TRANSFER_PREFERENCE if n in white]
    return ranked[0] if ranked else (white[0] if white else None)


def resolve_attack(host: PluginHost, name: str) -> tuple[Any, dict[str, Any]]:
    """The spec for an attack name, and options it implies.

    ``ATTACK@MODEL`` is a transfer attack: ``ATTACK`` crafted on the surrogate ``MODEL`` (``transfer@MODEL``
    uses the transfer attack's default base). Both names are checked here, before any compute.
    """
    from dataclasses import replace

    from ..attacks.transfer import split_transfer_name

    parts = split_transfer_name(name)
    if parts is None:
        return host.registry.attacks.get(name), {}
    base, surrogate = parts
    transfer = host.registry.attacks.get("transfer")
    host.model_spec(surrogate)  # an unknown surrogate fails now, with did-you-mean
    preset: dict[str, Any] = {"surrogate": surrogate}
    if base != "transfer":
        base_spec = host.registry.attacks.get(base)
        if base_spec.access != "gradient":
            raise AdvbenchError(f"{name}: a transfer attack crafts with a white-box attack on the surrogate; {base!r} is {base_spec.access}-based")
        preset["base"] = base
    return replace(transfer, name=name), preset


def _transfer_matrix(model_specs, clean_preds: dict[str, torch.Tensor], input_shapes: dict[str, tuple[int, ...]],
                     adversarials: AdversarialStore, y: torch.Tensor, config: RunConfig, device: torch.device) -> pd.DataFrame:
    """Judge every source's stored adversarials on every target model (each target loaded once more).
    Pairs whose models take different input shapes (different preprocessing) are left out."""
    rows: list[dict] = []
    for spec in model_specs:
        if spec.name not in clean_preds:
            continue  # the model failed to load or had no cells
        model = spec.load(device=str(device), **config.model_options.get(spec.name, {}))
        same_shape = AdversarialStore({k: v for k, v in adversarials.cells.items() if tuple(v.shape[1:]) == input_shapes[spec.name]})
        rows += transfer_rows(spec.name, model, y, clean_preds[spec.name], same_shape,
                              batch_size=config.batch_size, device=device)
        del model
    return matrix_frame(rows)


def _probe(model, name: str, inputs: ModelInputs, config: RunConfig, device: torch.device, n_probe: int = 100) -> list[dict[str, Any]]:
    """Gradient-masking probes on up to ``n_probe`` clean-correct samples (skipped for unlabelled data)."""
    from .sanity import probe_model

    correct = ((inputs.clean_pred == inputs.y) & (inputs.y >= 0)).nonzero().squeeze(1)[:n_probe]
    gen = torch.Generator(device=device).manual_seed(config.seed)
    return probe_model(model, name, inputs.x[correct], inputs.y[correct], device, gen)


def _run_cell(cell: Cell, attack, model, inputs: ModelInputs, config: RunConfig, device: torch.device,
              dataset: DatasetSpec, unbounded: dict[str, tuple], reporter: Reporter, preprocess=None) -> CellResult:
    """Attack (or reuse the unbounded run of a minimum-norm attack), then judge at the cell's eps."""
    threat = ThreatModel(cell.norm, cell.eps)
    common = dict(batch_size=config.batch_size, device=device)
    if attack.minimum_norm:
        if cell.attack not in unbounded:
            free = ThreatModel(cell.norm, math.inf)
            gen = torch.Generator(device=device).manual_seed(cell_seed(config.seed, Cell(cell.model, cell.attack, cell.norm, math.inf)))
            attacked = run_attack(attack, model, inputs, free, generator=gen, on_batch=reporter.batch_done, queries=config.queries, **common)
            unbounded[cell.attack] = (attacked, minimum_norms(inputs, attacked, judge(model, inputs, attacked.x_adv, free, **common), cell.norm))
        attacked, min_norm = unbounded[cell.attack]
        judged = judge(model, inputs, attacked.x_adv, threat, **common)
        return CellResult(cell_rows(cell, inputs, attacked, judged, min_norm), judged.x_adv, attacked.wall)
    gen = torch.Generator(device=device).manual_seed(cell_seed(config.seed, cell))
    fit_queries = None
    if attack.needs_fit:
        key = f"fit:{cell.attack}" if not attack.fit_per_eps else f"fit:{cell.attack}:{cell.eps!r}"
        if key not in unbounded:  # the per-model cache also remembers fits
            unbounded[key] = (_fit(attack, model, inputs, dataset, threat, gen, device, preprocess),)
        fit_queries = unbounded[key][0]
    attacked = run_attack(attack, model, inputs, threat, generator=gen, on_batch=reporter.batch_done, queries=config.queries, **common)
    if fit_queries is not None:
        # queries spent learning from the train split count against the target too (one total per cell)
        attacked.extras["fit_queries"] = [fit_queries] * inputs.x.shape[0]
    judged = judge(model, inputs, attacked.x_adv, threat, **common)
    return CellResult(cell_rows(cell, inputs, attacked, judged, None), judged.x_adv, attacked.wall)


def _fit(attack, model, inputs: ModelInputs, dataset: DatasetSpec, threat: ThreatModel, gen: torch.Generator,
         device: torch.device, model_preprocess=None) -> int:
    """Let an attack that learns (a universal perturbation, a substitute model) see the train split first.

    Returns:
        The forward queries it spent on the target.
    """
    from ..attacks.base import Goal
    from ..errors import ConfigError
    from ..oracles import make_oracle

    if "train" not in dataset.splits:
        raise ConfigError(f"attack {attack.name!r} learns from a train split, which dataset {dataset.name!r} lacks")
    x_train, y_train = dataset.load("train")
    if model_preprocess is not None:
        x_train = model_preprocess(x_train)
    oracle = make_oracle(attack.access, model, x_train.shape[0], inputs.num_classes, device)
    goal = Goal(labels=y_train.to(device), min_confidence=inputs.min_confidence)
    with torch.enable_grad():
        attack.fit(oracle, x_train.to(device), goal, threat, gen)
    return int(oracle.n_forward.sum())


def _check_resumable(run_dir: Path, config: RunConfig, attack_options: dict[str, dict[str, Any]]) -> None:
    """Refuse to mix cells computed under other settings into this run."""
    from ..errors import ConfigError
    from ..results import load_manifest

    old = load_manifest(run_dir)
    if not old:
        return
    before = old.get("config", {})
    now = config.to_json()
    for key in ("dataset", "split", "n_samples", "seed", "batch_size", "norm", "model_options"):
        if key in before and before[key] != now[key]:
            raise ConfigError(
                f"cannot --resume {run_dir}: its {key} was {before[key]!r}, now {now[key]!r}; use another --out"
            )
    for name, options in attack_options.items():
        previous = old.get("attacks", {}).get(name, {}).get("options")
        if previous is not None and previous != json.loads(json.dumps(options)):
            raise ConfigError(
                f"cannot --resume {run_dir}: attack {name!r} ran with other options ({previous}); use another --out"
            )


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def _ids_digest(ids: torch.Tensor) -> str:
    import hashlib

    return hashlib.sha256(ids.numpy().astype("<i8").tobytes()).hexdigest()


__all__ = ["execute", "resolve_device", "Reporter", "RunOutcome", "Failure", "cell_seed"]
