"""The run directory: per-cell Parquet rows, adversarial images, the manifest, and reading them back.

Layout::

    RUN_DIR/
      manifest.json            versions, plugins, seed, device, git sha, config, plan, failures
      cells/<cell key>.parquet rows of one finished cell (written as soon as the cell ends: a crash or a
                               failed cell later in the run loses nothing)
      adversarials/<cell key>.safetensors   x_adv [n, C, H, W] float32 and sample_id [n]
      results.parquet          all rows, written at the end of the run
      flags.json               gradient-masking and sanity flags per (model, attack)
      transfer.parquet         transferability matrix: each source's white-box adversarials on every target
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import AdvbenchError

RESULTS_FILE = "results.parquet"
MANIFEST_FILE = "manifest.json"
FLAGS_FILE = "flags.json"
TRANSFER_FILE = "transfer.parquet"
CELLS_DIR = "cells"
ADV_DIR = "adversarials"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git_sha(path: Path | None = None) -> str | None:
    """The commit of the advbench checkout (editable installs), or ``None`` outside a git work tree."""
    path = path or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and len(sha) == 40 else None


def environment() -> dict[str, Any]:
    """Versions that affect numbers."""
    import torch

    from . import __version__

    env: dict[str, Any] = {
        "advbench": __version__,
        "torch": torch.__version__,
        "timm": _version("timm"),
        "torchvision": _version("torchvision"),
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_sha": git_sha(),
    }
    return env


class RunStore:
    """Writes one run directory. Every write is atomic (temp file + rename)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        (self.run_dir / CELLS_DIR).mkdir(parents=True, exist_ok=True)

    def cell_path(self, key: str) -> Path:
        return self.run_dir / CELLS_DIR / f"{key}.parquet"

    def has_cell(self, key: str) -> bool:
        return self.cell_path(key).is_file()

    def read_cell(self, key: str) -> pd.DataFrame:
        return pd.read_parquet(self.cell_path(key))

    def read_adversarials(self, key: str):
        """x_adv [n, C, H, W] of a finished cell, or ``None`` if it was not saved."""
        path = self.run_dir / ADV_DIR / f"{key}.safetensors"
        if not path.is_file():
            return None
        from safetensors.torch import load_file

        return load_file(str(path))["x_adv"]

    def write_cell(self, key: str, rows: pd.DataFrame, x_adv=None, sample_ids=None) -> None:
        if x_adv is not None:
            from safetensors.torch import save_file

            adv_dir = self.run_dir / ADV_DIR
            adv_dir.mkdir(exist_ok=True)
            tmp = adv_dir / f".{key}.tmp"
            save_file({"x_adv": x_adv.contiguous(), "sample_id": sample_ids.contiguous()}, str(tmp))
            os.replace(tmp, adv_dir / f"{key}.safetensors")
        _atomic_parquet(rows, self.cell_path(key))

    def write_results(self, rows: pd.DataFrame) -> Path:
        path = self.run_dir / RESULTS_FILE
        _atomic_parquet(rows, path)
        return path

    def write_transfer(self, matrix: pd.DataFrame) -> None:
        _atomic_parquet(matrix, self.run_dir / TRANSFER_FILE)

    def write_flags(self, flags: list[dict[str, Any]]) -> None:
        path = self.run_dir / FLAGS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(flags, indent=2) + "\n")
        os.replace(tmp, path)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        path = self.run_dir / MANIFEST_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        os.replace(tmp, path)


def _atomic_parquet(rows: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    rows.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def load_rows(run_dir: str | Path) -> pd.DataFrame:
    """All rows of a run: ``results.parquet``, or the finished cells when the run did not complete."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AdvbenchError(f"no run directory at {run_dir}: pass the --out directory of an `advbench run`")
    results = run_dir / RESULTS_FILE
    if results.is_file():
        return pd.read_parquet(results)
    parts = sorted((run_dir / CELLS_DIR).glob("*.parquet"))
    if not parts:
        raise AdvbenchError(f"{run_dir} holds no results ({RESULTS_FILE} or {CELLS_DIR}/*.parquet): is it a run directory?")
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


def load_adversarials(run_dir: str | Path, key: str):
    """(x_adv [n, C, H, W], sample_id [n]) of one cell."""
    from safetensors.torch import load_file

    data = load_file(str(Path(run_dir) / ADV_DIR / f"{key}.safetensors"))
    return data["x_adv"], data["sample_id"]


def load_transfer(run_dir: str | Path) -> pd.DataFrame | None:
    """The transferability matrix (long form) of a multi-model run, or ``None``."""
    path = Path(run_dir) / TRANSFER_FILE
    return pd.read_parquet(path) if path.is_file() else None


def load_flags(run_dir: str | Path) -> list[dict[str, Any]]:
    """The gradient-masking and sanity flags of a run (empty when none were recorded)."""
    path = Path(run_dir) / FLAGS_FILE
    return json.loads(path.read_text()) if path.is_file() else []


def load_manifest(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / MANIFEST_FILE
    if not path.is_file():
        return {}
    return json.loads(path.read_text())
