"""The frozen run configuration every step of a run reads, and :func:`build_run_config`, the one function the
CLI and the Python API build it with."""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import ConfigError
from ..threat import Norm

#: The embedded default: ``advbench run`` with no options.
DEFAULT_DATASET = "mnist-5k"
DEFAULT_SPLIT = "test"
DEFAULT_ATTACKS = ("fgsm", "pgd")
DEFAULT_EPS = (0.1, 0.2, 0.3)
#: Largest seed: every generator seeded from it (and from ``seed ^ constant``) takes a signed 64-bit integer.
MAX_SEED = 2**63 - 1
#: Largest --queries budget: counters stay exact integers (float64 holds every integer up to 2**53).
MAX_QUERIES = 2**53
#: The arithmetic attacks run in (``--precision``); the harness always judges in float32.
PRECISIONS = ("fp32", "bf16")
#: ``--batch-size auto``: the first size tried per device type (halved on CUDA out-of-memory until it fits).
AUTO_BATCH = {"cpu": 500, "cuda": 4096}


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's rows (plus where they go).

    Attributes:
        dataset, split: where the samples come from.
        models, attacks: registry names, in order.
        norm: the threat model's norm; eps: the budgets, in [0, 1] pixel space.
        n_samples: how many samples of the split (``None``: all). The subset depends only on
            (dataset, split, n_samples, seed), so every model sees the same samples.
        batch_size: samples per attack batch.
        device: ``cpu``, ``cuda``, ``cuda:1`` ... (already resolved from ``auto``).
        seed: seeds the sample subset and every attack's randomness.
        attack_options: ``{attack: {option: value}}``.
        model_options: ``{model: {option: value}}`` (``weights``: a local checkpoint).
        out: run directory (``None``: keep rows in memory only).
        save_adversarials: write each cell's adversarial images next to the rows.
        resume: reuse the cells in ``out`` whose fingerprints match exactly (others are recomputed, and why is
            recorded); a directory that holds another run (other samples, seed, budget ...) is refused.
        overwrite: delete the run already in ``out`` first. Without ``resume`` or ``overwrite`` a used ``out``
            is refused.
        targeted: ``None`` (untargeted), ``"least-likely"``, ``"random"`` or a class index (as a string).
        min_confidence: success also needs the adversarial/target class at this probability or more.
        sanity_checks: run the gradient-masking probes and flags (cheap; on by default).
        transfer_matrix: with several models, judge each model's white-box adversarials on every other.
        transfer_attack: the white-box attack whose adversarials feed the matrix (default: the strongest of
            the run by known order: ensemble, apgd_t, apgd_ce, pgd, bim, mifgsm, fab_t, fgsm).
        queries: hard per-sample budget of forward queries for every attack (``None``: unlimited).
        dataset_options: passed to the dataset's loader (``data_dir`` from ``--data-dir``).
        isolate: run each cell's attack in a child process that sees only the oracle (``--isolate``).
        cell_timeout: seconds a cell may take before it is stopped and failed (``--cell-timeout``; ``None``:
            no limit). In process it is checked at every query; with ``isolate`` the child is killed.
        carry: eps carry-over (``--no-carry`` turns it off): a sample a fixed-budget attack broke at one eps
            is not attacked again at the larger eps of that (attack, norm); its adversarial is re-judged there
            (:mod:`advbench.engine.carry`).
        precision: ``fp32`` or ``bf16`` (autocast for the attacks' forward and backward passes; every
            success is re-judged in float32).
        compile: ``torch.compile`` the model's forward (falls back, with a warning, where it fails).
        channels_last: channels-last memory format for conv nets (``None``: the whole net on CUDA, where it pays,
            and on the CPU its non-overlapping max pools alone, which is exact: :mod:`advbench.models.pooling`).
        threads: torch's intra-op threads (``None``: ``OMP_NUM_THREADS``, else the cores free now; see
            :mod:`advbench.engine.threads`).
        auto_batch: ``batch_size`` was chosen by ``--batch-size auto`` (recorded; out-of-memory back-off on
            CUDA happens whatever the size).
    """

    models: tuple[str, ...]
    attacks: tuple[str, ...] = DEFAULT_ATTACKS
    eps: tuple[float, ...] = DEFAULT_EPS
    norm: Norm = Norm.LINF
    dataset: str = DEFAULT_DATASET
    split: str = DEFAULT_SPLIT
    n_samples: int | None = None
    batch_size: int = 500
    device: str = "cpu"
    seed: int = 0
    attack_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    out: Path | None = None
    save_adversarials: bool = True
    resume: bool = False
    overwrite: bool = False
    targeted: str | None = None
    min_confidence: float | None = None
    sanity_checks: bool = True
    transfer_matrix: bool = True
    queries: int | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    transfer_attack: str | None = None
    isolate: bool = False
    cell_timeout: float | None = None
    carry: bool = True
    precision: str = "fp32"
    compile: bool = False
    channels_last: bool | None = None
    threads: int | None = None
    auto_batch: bool = False

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("no models given: pass --models NAME[,NAME...] (see `advbench list models`)")
        if not self.attacks:
            raise ConfigError("no attacks given: pass --attacks NAME[,NAME...] (see `advbench list attacks`)")
        if not self.eps:
            raise ConfigError("no epsilons given: pass --eps, e.g. --eps 0.1,0.3 or --eps 8/255")
        for label, names in (("model", self.models), ("attack", self.attacks)):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ConfigError(f"{label} {dupes[0]!r} is listed twice")
        if self.n_samples is not None and self.n_samples < 1:
            raise ConfigError(f"--n-samples must be >= 1, got {self.n_samples}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        if any(e < 0 for e in self.eps):
            raise ConfigError("epsilons must be >= 0")
        if self.targeted is not None and self.targeted not in ("least-likely", "random") and not (
                str(self.targeted).isascii() and str(self.targeted).isdigit()):
            raise ConfigError(f"invalid --targeted {self.targeted!r}: use least-likely, random or a class index")
        if self.queries is not None and self.queries < 1:
            raise ConfigError(f"--queries must be >= 1, got {self.queries}")
        if self.queries is not None and self.queries > MAX_QUERIES:
            raise ConfigError(f"--queries must be at most 2**53, got {self.queries} (omit it for no budget)")
        check_seed(self.seed)
        above = [e for e in self.eps if e > 1] if self.norm is Norm.LINF else []
        if above:  # 8 is the classic 8/255 written in 0..255 units
            hint = f"; did you mean {above[0]:g}/255?" if above[0] <= 255 else ""
            raise ConfigError(f"linf eps {above[0]:g} is above 1: pixel space is [0, 1]{hint}")
        if self.cell_timeout is not None and not self.cell_timeout > 0:
            raise ConfigError(f"--cell-timeout must be a number of seconds > 0, got {self.cell_timeout}")
        if self.min_confidence is not None and not 0 < self.min_confidence <= 1:
            raise ConfigError(f"--min-confidence must be in (0, 1], got {self.min_confidence}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown --precision {self.precision!r}: use {' or '.join(PRECISIONS)}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {self.threads}")

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-compatible data (for manifest.json and the run_started hook)."""
        data = dataclasses.asdict(self)
        data["norm"] = self.norm.value
        data["out"] = str(self.out) if self.out is not None else None
        data["models"], data["attacks"], data["eps"] = list(self.models), list(self.attacks), list(self.eps)
        return data


def names(value: str | Iterable[str]) -> tuple[str, ...]:
    """``"a, b"`` or ``["a", "b"]`` -> ``("a", "b")``; blank entries are dropped (none at all is RunConfig's error)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(v).strip() for v in items if str(v).strip())


def eps_values(eps: str | float | Iterable[str | float]) -> tuple[float, ...]:
    """``"0.1,8/255"``, ``0.3`` or ``[0.1, "8/255"]`` -> budgets in [0, 1] pixel space, duplicates dropped."""
    from ..threat import parse_eps, parse_eps_list

    if isinstance(eps, str):
        return tuple(parse_eps_list(eps))
    values = [parse_eps(e) for e in ((eps,) if isinstance(eps, (int, float)) else eps)]
    return tuple(dict.fromkeys(values))


def expand_surrogates(attacks: tuple[str, ...], surrogates: tuple[str, ...]) -> tuple[str, ...]:
    """``transfer`` with ``--surrogates a,b`` (``surrogates=`` in the API) -> ``transfer@a, transfer@b`` (other attacks unchanged)."""
    if "transfer" in attacks and not surrogates:
        raise ConfigError("attack 'transfer' needs --surrogates MODEL[,MODEL...] (or write ATTACK@MODEL)")
    if surrogates and "transfer" not in attacks:
        raise ConfigError("--surrogates is for the 'transfer' attack: add it to --attacks")
    out: list[str] = []
    for name in attacks:
        out.extend(f"transfer@{s}" for s in surrogates) if name == "transfer" else out.append(name)
    return tuple(out)


def build_run_config(
    models: str | Iterable[str],
    attacks: str | Iterable[str] = DEFAULT_ATTACKS,
    eps: str | float | Iterable[str | float] = DEFAULT_EPS,
    *,
    norm: str | Norm = "linf",
    dataset: str = DEFAULT_DATASET,
    split: str = DEFAULT_SPLIT,
    n_samples: int | None = None,
    batch_size: int | str = 500,
    device: str = "auto",
    seed: int = 0,
    attack_options: Mapping[str, Mapping[str, Any]] | None = None,
    model_options: Mapping[str, Mapping[str, Any]] | None = None,
    dataset_options: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    save_adversarials: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    targeted: str | int | None = None,
    min_confidence: float | None = None,
    sanity_checks: bool = True,
    queries: int | None = None,
    transfer_attack: str | None = None,
    surrogates: str | Iterable[str] = (),
    isolate: bool = False,
    cell_timeout: float | None = None,
    carry: bool = True,
    precision: str = "fp32",
    compile: bool = False,
    channels_last: bool | None = None,
    threads: int | None = None,
) -> RunConfig:
    """The one way to build a :class:`RunConfig`: ``advbench run`` and :func:`advbench.evaluate` both call it.

    Values are taken as a person writes them (comma-separated names and budgets, ``"8/255"``, a norm name,
    ``device="auto"``) and checked with one-line :class:`ConfigError` messages. Where the two entry points
    differ, the caller says so with an argument: the CLI runs the gradient-masking probes by default
    (``sanity_checks=True``, the default here) while the Python API passes ``sanity_checks=False`` unless
    asked; the CLI always has an ``out`` directory (``runs/<timestamp>``) while the API keeps rows in memory
    when ``out`` is ``None``.

    Args:
        models, attacks: registry names, as a comma-separated string or a sequence (already expanded: model
            globs and the default models are the caller's, which knows its host).
        eps: budgets in [0, 1] pixel space: ``"0.1,8/255"``, one number, or a sequence of numbers/strings.
        norm: ``"linf"`` or ``"l2"`` (or a :class:`Norm`).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:N"``; resolved here.
        out: the run directory, or ``None`` to keep rows in memory only.
        save_adversarials: write each cell's adversarial images; only possible with an ``out`` directory.
        targeted: ``"least-likely"``, ``"random"`` or a class index (int or string).
        surrogates: models the ``transfer`` attack crafts on (``transfer`` becomes ``transfer@MODEL`` for each).
        sanity_checks: run the gradient-masking probes and flags.
        batch_size: samples per batch, or ``"auto"`` (:data:`AUTO_BATCH` for the device; halved on CUDA
            out-of-memory).
        The others: as the fields of :class:`RunConfig`.
    """
    device = resolve_device(device)
    size, auto = batch_size_value(batch_size, device)
    return RunConfig(
        models=names(models),
        attacks=expand_surrogates(names(attacks), names(surrogates)),
        eps=eps_values(eps),
        norm=norm if isinstance(norm, Norm) else Norm.parse(norm),
        dataset=dataset,
        split=split,
        n_samples=n_samples,
        batch_size=size,
        device=device,
        seed=seed,
        attack_options={k: dict(v) for k, v in (attack_options or {}).items()},
        model_options={k: dict(v) for k, v in (model_options or {}).items()},
        out=check_out_dir(out) if out is not None else None,
        save_adversarials=save_adversarials and out is not None,
        resume=resume,
        overwrite=overwrite,
        targeted=None if targeted is None else str(targeted),
        min_confidence=min_confidence,
        sanity_checks=sanity_checks,
        queries=queries,
        dataset_options=dict(dataset_options or {}),
        transfer_attack=transfer_attack,
        isolate=isolate,
        cell_timeout=None if cell_timeout is None else float(cell_timeout),
        carry=carry,
        precision=str(precision).lower(),
        compile=compile,
        channels_last=channels_last,
        threads=threads,
        auto_batch=auto,
    )


def batch_size_value(value: int | str, device: str) -> tuple[int, bool]:
    """(the batch size, whether it was ``auto``) for ``--batch-size`` (an int, or ``auto``: the device's
    :data:`AUTO_BATCH`)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return AUTO_BATCH.get(device.split(":")[0], AUTO_BATCH["cpu"]), True
        if not text.isdigit():
            raise ConfigError(f"invalid --batch-size {value!r}: use a number of samples or auto")
        value = int(text)
    return int(value), False


def check_seed(seed: int) -> int:
    """``seed`` if it is an integer every generator takes (0 .. 2**63 - 1), else ConfigError."""
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"--seed must be between 0 and 2**63 - 1 (the generators' range), got {seed}")
    return int(seed)


def check_out_dir(out: str | Path) -> Path:
    """``out`` as a run directory that can be created and written, else ConfigError saying why (before any compute).

    Refused: an empty path, a NUL byte, an existing file, a path through a file, a name longer than the file
    system allows, a directory (or nearest existing parent) that is not writable.
    """
    import os

    text = os.fspath(out)
    if not str(text).strip():
        raise ConfigError("--out is empty: give a run directory, e.g. --out runs/mnist")
    if "\x00" in str(text):
        raise ConfigError(f"--out {text!r} contains a NUL byte: give a plain directory path")
    path = Path(text)
    # the nearest part of the path that exists (os.path.lexists, unlike Path.exists, never raises: a name too
    # long for the file system is then reported by the check below, not by an OSError)
    existing = next(p for p in (path.absolute(), *path.absolute().parents) if os.path.lexists(p))
    limit = os.pathconf(existing, "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
    too_long = next((part for part in path.parts if len(os.fsencode(part)) > limit), None)
    if too_long is not None:
        raise ConfigError(f"--out: the name {too_long[:20]}...{too_long[-10:]} is longer than {limit} bytes, the "
                          "file system's limit: use a shorter --out")
    if existing == path.absolute() and not existing.is_dir():
        raise ConfigError(f"--out {path} is a file, not a directory: pass a directory path")
    if not existing.is_dir():
        raise ConfigError(f"--out {path}: {existing} is a file, not a directory: pass another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {path}: {existing} is not writable: choose a directory you can write to")
    return path


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; an unavailable device is an error."""
    import torch  # here, not at module level: the CLI builds configs without importing torch up front

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"invalid --device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"invalid --device {device!r}: use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device} asked for, but no CUDA device is available: use --device cpu")
    return str(dev)
