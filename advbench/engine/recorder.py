"""Where a run's results go: the run store, the manifest, resume, and the observer hooks.

The executor tells the recorder what happened (a cell finished, was reused, failed; the run ended); the
recorder writes it (atomically, as soon as it happens, so a crash loses nothing) and notifies plugins.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..errors import ConfigError
from ..results import RunStore, environment, load_manifest, now_utc
from .config import RunConfig
from .plan import Cell


@dataclass
class Failure:
    """A cell (or every cell of a model) that could not run."""

    cells: list[str]
    message: str
    traceback: str = ""


@dataclass
class CellResult:
    """A finished cell: its rows, its projected adversarials [n, C, H, W] (CPU), the attack's wall seconds."""

    rows: pd.DataFrame
    x_adv: torch.Tensor | None
    seconds: float
    reused: bool = False


@dataclass
class Recorder:
    """Writes one run (``store`` is ``None`` for an in-memory run) and calls the observer hooks."""

    config: RunConfig
    host: Any
    store: RunStore | None
    manifest: dict[str, Any] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)

    @classmethod
    def open(cls, config: RunConfig, host, resolved, sample_ids: torch.Tensor, device: torch.device) -> "Recorder":
        """Check a ``--resume`` is compatible, write the starting manifest, notify ``advbench_run_started``."""
        store = RunStore(config.out) if config.out is not None else None
        if config.resume and store is not None:
            _check_resumable(store.run_dir, config, {n: a.options() for n, a in resolved.attacks.items()})
        recorder = cls(config, host, store)
        recorder.manifest = _manifest(config, host, resolved, sample_ids, device)
        if store is not None:
            store.write_manifest(recorder.manifest)
            host.notify("advbench_run_started", config=config.to_json(), run_dir=store.run_dir)
        return recorder

    @property
    def run_dir(self) -> Path | None:
        return self.store.run_dir if self.store is not None else None

    def reused(self, cell: Cell, want_adversarials: bool) -> CellResult | None:
        """The stored result of ``cell`` when resuming and it is on disk, else ``None``."""
        if not (self.config.resume and self.store is not None and self.store.has_cell(cell.key)):
            return None
        x_adv = self.store.read_adversarials(cell.key) if want_adversarials else None
        return CellResult(self.store.read_cell(cell.key), x_adv, 0.0, reused=True)

    def cell_finished(self, cell: Cell, result: CellResult, sample_ids: torch.Tensor) -> None:
        if self.store is None:
            return
        x_adv = result.x_adv if self.config.save_adversarials else None
        self.store.write_cell(cell.key, result.rows, x_adv, sample_ids)
        self.host.notify(
            "advbench_cell_finished",
            cell={"model": cell.model, "attack": cell.attack, "norm": cell.norm.value, "eps": cell.eps,
                  "seconds": result.seconds},
            rows=result.rows,
        )

    def failed(self, cells: list[Cell], message: str, traceback: str) -> None:
        self.failures.append(Failure([str(c) for c in cells], message, traceback))

    def finish(self, rows: pd.DataFrame, flags: list[dict[str, Any]], transfer: pd.DataFrame | None) -> None:
        """Write the rows, flags, transfer matrix and final manifest; notify ``advbench_run_finished``."""
        self.manifest["flags"] = flags
        self.manifest["failures"] = [{"cells": f.cells, "message": f.message} for f in self.failures]
        self.manifest["finished"] = now_utc()
        if self.store is None:
            return
        if transfer is not None:
            self.store.write_transfer(transfer)
        self.store.write_results(rows)
        self.store.write_flags(flags)
        self.store.write_manifest(self.manifest)
        self.host.notify("advbench_run_finished", run_dir=self.store.run_dir, rows=rows)


def _manifest(config: RunConfig, host, resolved, sample_ids: torch.Tensor, device: torch.device) -> dict[str, Any]:
    plan = resolved.plan
    return {
        "started": now_utc(),
        "environment": environment(),
        "device": _device_name(device),
        "seed": config.seed,
        "config": config.to_json(),
        "attacks": {
            name: {"options": resolved.attacks[name].options(), "plugin": spec.plugin,
                   "access": spec.access, "strength": spec.strength,
                   "reports_fooling_rate": spec.reports_fooling_rate, "minimum_norm": spec.minimum_norm}
            for name, spec in resolved.attack_specs.items()
        },
        "models": {s.name: {"plugin": s.plugin, "card": s.card} for s in resolved.models},
        "plugins": [{"name": p.name, "distribution": p.distribution, "version": p.version, "error": p.error}
                    for p in host.plugins],
        "n_samples": int(sample_ids.numel()),
        "sample_ids_sha256": hashlib.sha256(sample_ids.numpy().astype("<i8").tobytes()).hexdigest(),
        "plan": {
            "cells": [str(c) for c in plan.cells],
            "dropped": [{"model": d.model, "attack": d.attack, "reason": d.reason} for d in plan.dropped],
        },
        "failures": [],
    }


def _check_resumable(run_dir: Path, config: RunConfig, attack_options: dict[str, dict[str, Any]]) -> None:
    """Refuse to mix cells computed under other settings into this run."""
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


__all__ = ["CellResult", "Failure", "Recorder"]
