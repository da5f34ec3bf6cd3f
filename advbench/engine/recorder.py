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

from .._version import __version__
from ..errors import AdvbenchError, ConfigError, StorageError
from ..results import CELLS_DIR, RunStore, environment, load_manifest, now_utc
from ..runcheck import explain
from .config import RunConfig
from .fingerprint import (
    Fingerprint, ModelDigests, attack_components, digest_json, fingerprint, model_components, run_components,
    tensor_digest,
)
from .plan import Cell
from .rundir import RunDirLock, claim_run_dir
from .spill import AdversarialFile, Adversarials


@dataclass
class Failure:
    """A cell (or every cell of a model) that could not run."""

    cells: list[str]
    message: str
    traceback: str = ""


@dataclass
class CellResult:
    """A finished cell: its rows, its projected adversarials [n, C, H, W] (CPU: a tensor, or a spill file of
    :mod:`~advbench.engine.spill`), the attack's wall seconds, and
    the batch size it ran with (``None`` where not known: reused), the few images a published gallery shows
    (:func:`~advbench.engine.gallery.gallery_tensors`; only at the run's largest eps, when the run is stored),
    and what :mod:`~advbench.engine.accel` applied to its model once it finished (``Acceleration.to_json``)."""

    rows: pd.DataFrame
    x_adv: Adversarials | None
    seconds: float
    reused: bool = False
    batch_size: int | None = None
    gallery: dict[str, torch.Tensor] | None = None
    acceleration: dict[str, Any] | None = None


@dataclass
class Recorder:
    """Writes one run (``store`` is ``None`` for an in-memory run), keys its cells by fingerprint, and calls the
    observer hooks.

    Attributes:
        run_part: the run's fingerprint components (see :mod:`advbench.engine.fingerprint`).
        resume_log: what ``--resume`` reused and what it recomputed, with the reason (also in the manifest).
    """

    config: RunConfig
    host: Any
    store: RunStore | None
    run_part: dict[str, Any]
    lock: RunDirLock | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    resume_log: dict[str, list] = field(default_factory=lambda: {"reused": [], "recomputed": []})
    _model_plugins: dict[str, str] = field(default_factory=dict)
    _model_parts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def open(cls, config: RunConfig, host, resolved, samples: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
             device: torch.device) -> "Recorder":
        """Claim the run directory (lock; refuse a used one unless resuming or overwriting), check a resumed
        run is the same run, write the starting manifest, notify ``advbench_run_started``.

        Args:
            samples: (sample_ids [n], x [n, C, H, W], y [n]) of the run.
        """
        run_part = run_components(config, tensor_digest(*samples),
                                  {"advbench": __version__, "torch": torch.__version__.split("+")[0]})
        plugins = {s.name: s.plugin for s in resolved.models}
        if config.out is None:
            recorder = cls(config, host, None, run_part, _model_plugins=plugins)
            recorder.manifest = _manifest(config, host, resolved, samples[0], device, run_part)
            return recorder
        lock = claim_run_dir(config.out, resume=config.resume, overwrite=config.overwrite)
        try:
            store = RunStore(config.out)
            if config.resume:
                _check_same_run(store, run_part)
            recorder = cls(config, host, store, run_part, lock, _model_plugins=plugins)
            recorder.manifest = _manifest(config, host, resolved, samples[0], device, run_part)
            store.write_manifest(recorder.manifest)
        except BaseException:
            lock.release()
            raise
        host.notify("advbench_run_started", config=config.to_json(), run_dir=store.run_dir)
        return recorder

    @property
    def run_dir(self) -> Path | None:
        return self.store.run_dir if self.store is not None else None

    def fingerprint(self, cell: Cell, digests: ModelDigests, attack_spec, attack_options: dict[str, Any],
                    carry_from: str | None = None, batch_size: int | None = None) -> Fingerprint:
        """The fingerprint of ``cell`` run on the model that ``digests`` describe (see
        :func:`~advbench.engine.fingerprint.model_digests`), carrying broken samples over from the cell of
        fingerprint (value) ``carry_from``; ``batch_size`` (the size the cell ran with) is named when an
        out-of-memory back-off made it differ from the run's."""
        part = self._model_parts.get(cell.model)
        if part is None:
            plugin = self._model_plugins.get(cell.model, "")
            part = model_components(
                cell.model, self.config.model_options.get(cell.model, {}), digests.weights, digests.inputs,
                digests.targets, plugin, self._plugin_version(plugin))
            self._model_parts[cell.model] = part
        attack_part = attack_components(cell.attack, attack_options, attack_spec.plugin,
                                        self._plugin_version(attack_spec.plugin))
        return fingerprint(self.run_part, part, attack_part, cell.norm.value, cell.eps, carry_from=carry_from,
                           batch_size=batch_size if batch_size not in (None, self.config.batch_size) else None)

    def reused(self, cell: Cell, fp: Fingerprint, want_adversarials: bool) -> CellResult | None:
        """The stored result of ``cell`` when resuming and its stored fingerprint is exactly ``fp``, else
        ``None`` (the reason is kept in :attr:`resume_log`)."""
        if not (self.config.resume and self.store is not None):
            return None
        found, reason = _stored_cell(self.store, cell.key, fp, want_adversarials)
        if found is None:
            if reason:
                self.resume_log["recomputed"].append({"cell": str(cell), "reason": reason})
            return None
        self.resume_log["reused"].append(str(cell))
        return found

    def cell_finished(self, cell: Cell, result: CellResult, sample_ids: torch.Tensor, fp: Fingerprint) -> None:
        """Write a finished cell, and at the run's largest eps its few gallery images (``result.gallery``,
        chosen where the model ran: :mod:`advbench.engine.gallery`)."""
        if self.store is None:
            return
        x_adv = result.x_adv if self.config.save_adversarials else None
        if isinstance(x_adv, AdversarialFile):
            x_adv = x_adv.path  # already the store's file, byte for byte: linked, not rewritten
        record = {"cell": {"model": cell.model, "attack": cell.attack, "norm": cell.norm.value, "eps": cell.eps},
                  "n_rows": len(result.rows), **fp.to_json()}
        if cell.eps == max(self.config.eps):
            # written before the cell record, like the adversarials (None: a recomputed cell drops a stale one)
            self.store.write_gallery(cell.key, result.gallery)
        self.store.write_cell(cell.key, result.rows, x_adv, sample_ids, fingerprint=record)
        self.host.notify(
            "advbench_cell_finished",
            cell={"model": cell.model, "attack": cell.attack, "norm": cell.norm.value, "eps": cell.eps,
                  "seconds": result.seconds, "fingerprint": fp.value},
            rows=result.rows,
        )

    def failed(self, cells: list[Cell], message: str, traceback: str) -> None:
        self.failures.append(Failure([str(c) for c in cells], message, traceback))
        self.manifest["failures"] = [{"cells": f.cells, "message": f.message} for f in self.failures]
        self._save_manifest()  # the manifest says what failed as soon as it fails (a later crash keeps it)

    def stopped(self, reason: str) -> None:
        """The run ends early (Ctrl-C, a storage error): say so in the manifest, as far as the disk allows."""
        self.manifest["stopped"] = {"at": now_utc(), "reason": reason}
        self._save_manifest()

    def _save_manifest(self) -> None:
        if self.store is None:
            return
        try:
            self.store.write_manifest(self.manifest)
        except StorageError:
            pass  # best effort: the error that matters is already being reported

    def finish(self, rows: pd.DataFrame, flags: list[dict[str, Any]], transfer: pd.DataFrame | None) -> None:
        """Write the rows, flags, transfer matrix and final manifest; notify ``advbench_run_finished``."""
        self.manifest["flags"] = flags
        self.manifest["failures"] = [{"cells": f.cells, "message": f.message} for f in self.failures]
        if "bf16_rejected" in rows.columns:  # successes of the bf16 attack that float32 judging refused
            self.manifest["bf16_rejected"] = int(rows["bf16_rejected"].fillna(False).astype(bool).sum())
        if "bf16_recovered" in rows.columns:  # successes taken from the lowest-margin point bf16 passed by
            self.manifest["bf16_recovered"] = int(rows["bf16_recovered"].fillna(False).astype(bool).sum())
        if self.config.resume:
            self.manifest["resume"] = self.resume_log
        self.manifest["finished"] = now_utc()
        if self.store is None:
            return
        if transfer is not None:
            self.store.write_transfer(transfer)
        self.store.write_results(rows)
        self.store.write_flags(flags)
        self.store.write_manifest(self.manifest)
        self.host.notify("advbench_run_finished", run_dir=self.store.run_dir, rows=rows)

    def close(self) -> None:
        """Give the run directory's lock back (idempotent)."""
        if self.lock is not None:
            self.lock.release()

    def _plugin_version(self, plugin: str) -> str:
        info = self.host.info(plugin) if plugin else None
        return info.version if info is not None else ""


def _manifest(config: RunConfig, host, resolved, sample_ids: torch.Tensor, device: torch.device,
              run_part: dict[str, Any]) -> dict[str, Any]:
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
        "run_fingerprint": digest_json(run_part),
        "run_components": run_part,
        "cell_files": {str(c): c.key for c in plan.cells},
        "plan": {
            "cells": [str(c) for c in plan.cells],
            "dropped": [{"model": d.model, "attack": d.attack, "reason": d.reason} for d in plan.dropped],
        },
        "failures": [],
    }


def _check_same_run(store: RunStore, run_part: dict[str, Any]) -> None:
    """Refuse to ``--resume`` a directory that holds another run (other samples, seed, budget, ...): no cell of
    it could be reused, and recomputing them all would silently replace it."""
    try:
        old = load_manifest(store.run_dir).get("run_components")
    except AdvbenchError:  # a corrupt manifest is rewritten by this run; the cell records still say whose they are
        old = None
    source = "its manifest"
    if old is None:  # manifest deleted: the cells' own records say which run they belong to
        for path in sorted((store.run_dir / CELLS_DIR).glob("*.json")):
            try:
                old = json.loads(path.read_text())["components"]["run"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            source = f"cell {path.stem}"
            break
    if old is not None and old != json.loads(json.dumps(run_part, default=str)):
        raise ConfigError(f"cannot --resume {store.run_dir}: {source} records another run ({explain(old, run_part)}); "
                          "pass --overwrite to replace it, or another --out")


def _stored_cell(store: RunStore, key: str, fp: Fingerprint, want_adversarials: bool) -> tuple[CellResult | None, str]:
    """(the stored result when its fingerprint is exactly ``fp``, else ``None``; why it cannot be reused, ''
    when nothing was stored)."""
    if not store.cell_path(key).is_file():
        return None, ""
    try:
        record = store.read_fingerprint(key)
        if record is None:
            return None, "no fingerprint record (an interrupted write, or written by an older advbench)"
        if record.get("fingerprint") != fp.value:
            return None, explain(record.get("components", {}), fp.components)
        rows = store.read_cell(key)
        if "fingerprint" not in rows.columns or set(rows["fingerprint"].astype(str)) != {fp.value}:
            return None, "its rows do not carry its fingerprint (the file was replaced)"
        x_adv = _open_adversarials(store, key) if want_adversarials else None
    except Exception as exc:  # noqa: BLE001 - a corrupt file is recomputed, never trusted
        return None, f"its files are unreadable ({type(exc).__name__})"
    if want_adversarials and x_adv is None:
        return None, ("its adversarials, needed for the transferability matrix or for eps carry-over to the next "
                      "eps, were not saved")
    return CellResult(rows, x_adv, 0.0, reused=True), ""


def _open_adversarials(store: RunStore, key: str) -> AdversarialFile | None:
    """A stored cell's adversarials, read a batch at a time where they are used (``None``: not saved); a file
    shorter than its header says raises (the cell is recomputed, never trusted)."""
    path = store.adversarials_path(key)
    return AdversarialFile.open(path) if path.is_file() else None


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


__all__ = ["CellResult", "Failure", "Recorder"]
