"""The run directory: per-cell Parquet rows, adversarial images, the manifest, and reading them back.

Layout::

    RUN_DIR/
      manifest.json            versions, plugins, seed, device, git sha, config, plan, failures
      cells/<cell key>.parquet rows of one finished cell (written as soon as the cell ends: a crash or a
                               failed cell later in the run loses nothing); every row carries the cell's
                               fingerprint (advbench.engine.fingerprint)
      cells/<cell key>.json    the cell's fingerprint and what was hashed (written last: its presence
                               means the cell is complete)
      adversarials/<cell key>.safetensors   x_adv [n, C, H, W] float32 and sample_id [n]
      gallery/<cell key>.safetensors        the few images a published gallery shows (advbench.engine.gallery)
      results.parquet          all rows, written at the end of the run
      flags.json               gradient-masking and sanity flags per (model, attack)
      transfer.parquet         transferability matrix: each source's white-box adversarials on every target
      .lock                    held by the one process writing the directory

A cell key is a readable prefix plus a digest of the cell's identity (model, attack, norm, eps), so two
names that read alike never share a file and every file name stays under 120 characters.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
import json
import os
import platform
import shutil
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from .errors import AdvbenchError, StorageError
from .oserrors import os_error_message
from .runcheck import CELLS_DIR

RESULTS_FILE = "results.parquet"
MANIFEST_FILE = "manifest.json"
FLAGS_FILE = "flags.json"
TRANSFER_FILE = "transfer.parquet"
ADV_DIR = "adversarials"
GALLERY_DIR = "gallery"


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

    def fingerprint_path(self, key: str) -> Path:
        return self.run_dir / CELLS_DIR / f"{key}.json"

    def read_cell(self, key: str) -> pd.DataFrame:
        return pd.read_parquet(self.cell_path(key))

    def read_fingerprint(self, key: str) -> dict[str, Any] | None:
        """The stored fingerprint record of a cell (see :meth:`write_cell`), or ``None`` when absent."""
        path = self.fingerprint_path(key)
        return json.loads(path.read_text()) if path.is_file() else None

    def adversarials_path(self, key: str) -> Path:
        return self.run_dir / ADV_DIR / f"{key}.safetensors"

    def write_cell(self, key: str, rows: pd.DataFrame, x_adv=None, sample_ids=None,
                   fingerprint: dict[str, Any] | None = None) -> None:
        """Write a finished cell: its adversarials, its rows, then (last) its fingerprint record, so a crash
        half-way leaves a cell without a record, which ``--resume`` recomputes.

        Args:
            x_adv: [n, C, H, W] float32 with ``sample_ids`` [n], or the path of a file that already holds both
                in this store's layout (a spill file); ``None``: not saved.
        """
        self.fingerprint_path(key).unlink(missing_ok=True)  # until the new rows are in place, no record
        if isinstance(x_adv, Path):
            # a spill file (advbench.engine.spill): already this file, byte for byte; link it (or copy)
            self._write(self.adversarials_path(key), lambda tmp: _link_or_copy(x_adv, tmp))
        elif x_adv is not None:
            from safetensors.torch import save_file

            self._write(self.adversarials_path(key), lambda tmp: save_file(
                {"x_adv": x_adv.contiguous(), "sample_id": sample_ids.contiguous()}, str(tmp)))
        self._write(self.cell_path(key), _parquet_writer(rows))
        if fingerprint is not None:
            self._write(self.fingerprint_path(key), _json_writer(fingerprint))

    def write_gallery(self, key: str, tensors: dict | None) -> None:
        """A cell's gallery images (see :mod:`advbench.engine.gallery`); ``None`` removes a stale one."""
        from safetensors.torch import save_file

        if tensors is None:
            (self.run_dir / GALLERY_DIR / f"{key}.safetensors").unlink(missing_ok=True)
            return
        self._write(self.run_dir / GALLERY_DIR / f"{key}.safetensors", lambda tmp: save_file(tensors, str(tmp)))

    def write_results(self, rows: pd.DataFrame) -> Path:
        path = self.run_dir / RESULTS_FILE
        self._write(path, _parquet_writer(rows))
        return path

    def write_transfer(self, matrix: pd.DataFrame) -> None:
        self._write(self.run_dir / TRANSFER_FILE, _parquet_writer(matrix))

    def write_flags(self, flags: list[dict[str, Any]]) -> None:
        self._write(self.run_dir / FLAGS_FILE, _json_writer(flags))

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        self._write(self.run_dir / MANIFEST_FILE, _json_writer(manifest))

    def _write(self, path: Path, write: Callable[[Path], Any]) -> None:
        """``write(tmp)`` then rename onto ``path`` (readers never see half a file; a failed write leaves no
        temporary behind). An OS error (full disk, read-only or vanished directory) becomes one
        :class:`StorageError` line that says what to do; files already written are untouched."""
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(tmp)
            os.replace(tmp, path)
        except Exception as exc:  # an OSError, or a writer's own I/O error type (safetensors says "os error 28")
            message = os_error_message(exc, self.run_dir, path)
            if message is None and isinstance(exc, OSError):
                message = f"{exc.strerror or exc} writing {path}: pass another --out; finished cells are in {self.run_dir}"
            if message is None:
                raise
            raise StorageError(message) from exc
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)


def _link_or_copy(source: Path, tmp: Path) -> None:
    """Make ``tmp`` the file ``source`` (a hard link: no bytes copied; a copy across file systems)."""
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)


def _parquet_writer(frame: pd.DataFrame) -> Callable[[Path], Any]:
    return lambda tmp: frame.to_parquet(tmp, index=False)


def _json_writer(data: Any) -> Callable[[Path], Any]:
    return lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def load_rows(run_dir: str | Path, *, check: bool = True) -> pd.DataFrame:
    """All rows of a run: ``results.parquet``, or the finished cells when the run did not complete.

    Args:
        check: refuse rows that do not belong together (cells of different runs or seeds, a stale
            ``results.parquet``); see :mod:`advbench.runcheck`.
    Raises:
        AdvbenchError: no run there, an unreadable file (named), or (``check``) rows of mixed runs.
    """
    from .runcheck import check_rows

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AdvbenchError(f"no run directory at {run_dir}: pass the --out directory of an `advbench run`")
    results = run_dir / RESULTS_FILE
    if results.is_file():
        rows, source = _read_parquet(results), str(results)
    else:
        parts = sorted((run_dir / CELLS_DIR).glob("*.parquet"))
        if not parts:
            raise AdvbenchError(f"{run_dir} holds no results ({RESULTS_FILE} or {CELLS_DIR}/*.parquet): is it a run directory?")
        rows, source = pd.concat([_read_parquet(p) for p in parts], ignore_index=True), str(run_dir / CELLS_DIR)
    if check:
        check_rows(rows, run_dir, source)
    return rows


@dataclass
class Runs:
    """Several run directories read together (:func:`load_runs`).

    Attributes:
        rows: the merged per-sample rows; a ``run`` column names each row's run.
        flags: every run's flags. transfer: the runs' transferability matrices, concatenated (a matrix pairs
            models of one run only), or ``None``. manifests: run name -> its manifest. names: run name -> path.
    """

    rows: pd.DataFrame
    flags: list[dict[str, Any]]
    transfer: pd.DataFrame | None
    manifests: dict[str, dict[str, Any]]
    names: dict[str, Path]


def load_runs(run_dirs: list[str | Path]) -> Runs:
    """Read and merge several runs (each checked as by :func:`load_rows`, then together by
    :func:`advbench.runcheck.check_merged`): different models on the same samples and settings merge; a cell
    whose samples or settings differ between runs is refused, named.

    Raises:
        AdvbenchError: no run directories, or what :func:`load_rows` and ``check_merged`` refuse.
    """
    from .runcheck import cell_records, check_merged

    if not run_dirs:
        raise AdvbenchError("no run directory given: pass one or more --out directories of `advbench run`")
    paths = [Path(d) for d in run_dirs]
    short = [p.name or str(p) for p in paths]
    names = {(s if short.count(s) == 1 else str(p)): p for s, p in zip(short, paths)}
    if len(names) < len(paths):
        raise AdvbenchError("the same run directory is given twice: pass each run once")
    parts = [(name, load_rows(path), cell_records(path)) for name, path in names.items()]
    rows = check_merged(parts)
    flags = [dict(f, run=name) for name, path in names.items() for f in load_flags(path)]
    matrices = [m.assign(run=name) for name, path in names.items() if (m := load_transfer(path)) is not None]
    transfer = pd.concat(matrices, ignore_index=True) if matrices else None
    return Runs(rows, flags, transfer, {name: load_manifest(path) for name, path in names.items()}, names)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a damaged file
        raise AdvbenchError(f"{path} is unreadable ({type(exc).__name__}: corrupt or truncated): delete it and rerun "
                            "with --resume to recompute it") from None


def load_adversarials(run_dir: str | Path, key: str):
    """(x_adv [n, C, H, W], sample_id [n]) of one cell."""
    from safetensors.torch import load_file

    data = load_file(str(Path(run_dir) / ADV_DIR / f"{key}.safetensors"))
    return data["x_adv"], data["sample_id"]


def load_gallery(run_dir: str | Path) -> list[tuple[dict[str, Any], dict]]:
    """(cell identity ``{model, attack, norm, eps}``, its gallery tensors) per stored gallery, sorted by cell;
    a gallery whose cell record is missing is skipped (the cell was being recomputed)."""
    from safetensors.torch import load_file

    out = []
    for path in sorted((Path(run_dir) / GALLERY_DIR).glob("*.safetensors")):
        record = _read_json(Path(run_dir) / CELLS_DIR / f"{path.stem}.json", None)
        if isinstance(record, dict) and isinstance(record.get("cell"), dict):
            out.append((record["cell"], load_file(str(path))))
    return sorted(out, key=lambda item: (str(item[0]["model"]), str(item[0]["attack"]), str(item[0]["norm"])))


def load_transfer(run_dir: str | Path) -> pd.DataFrame | None:
    """The transferability matrix (long form) of a multi-model run, or ``None``."""
    path = Path(run_dir) / TRANSFER_FILE
    return _read_parquet(path) if path.is_file() else None


def load_flags(run_dir: str | Path) -> list[dict[str, Any]]:
    """The gradient-masking and sanity flags of a run (empty when none were recorded)."""
    return _read_json(Path(run_dir) / FLAGS_FILE, [])


def load_manifest(run_dir: str | Path) -> dict[str, Any]:
    """The run's manifest (empty when there is none)."""
    return _read_json(Path(run_dir) / MANIFEST_FILE, {})


def _read_json(path: Path, default: Any) -> Any:
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise AdvbenchError(f"{path} is unreadable ({type(exc).__name__}: corrupt or truncated): delete it; "
                            "`advbench run --resume` writes it again") from None
