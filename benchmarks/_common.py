"""Shared helpers of the advbench benchmarks (not part of the advbench package)."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

TORCHATTACKS_VERSION = "3.5.1"


def require_torchattacks():
    """Import torchattacks or exit 1 with the install command (it is not an advbench dependency)."""
    try:
        import torchattacks
    except ImportError:
        print(
            "error: this benchmark compares advbench with torchattacks, which is not installed "
            "(it is not a dependency of advbench).\n"
            f"Install it with:  python -m pip install --no-deps torchattacks=={TORCHATTACKS_VERSION}\n"
            "(--no-deps is required: torchattacks pins an old `requests` that breaks other packages.)",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    return torchattacks


def sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: torch.device | str) -> tuple[float, object]:
    """(wall seconds, result) of ``fn()``, synchronising the GPU before and after."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def csv_list(text: str) -> list[str]:
    return [p.strip() for p in str(text).split(",") if p.strip()]


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A rich table on stdout when rich is importable, else the markdown table."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is an advbench dependency
        print(title)
        print(markdown_table(headers, rows))
        return
    table = Table(title=title)
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i < 2 else "right")
    for row in rows:
        table.add_row(*[str(c) for c in row])
    Console(width=200).print(table)


def report(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], footer: str, out: str | None,
           heading: str, versions: str) -> None:
    """Print the table and its footer; with ``out``, also write them as markdown under ``# heading`` and a line
    of ``versions`` (library versions, device, threads) with the Python version and the OMP setting added."""
    import os
    import platform

    print_table(title, headers, rows)
    print(footer)
    if out:
        threads = os.environ.get("OMP_NUM_THREADS", "unset")
        header = (f"# {heading}\n\n{versions}, Python {platform.python_version()}, OMP_NUM_THREADS={threads}.\n\n")
        Path(out).write_text(header + markdown_table(headers, rows) + "\n\n" + footer + "\n")
        print(f"wrote {out}", file=sys.stderr)


def spread_samples(n: int, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """(x [n, 1, 28, 28], y [n]): ``n`` mnist-5k test images evenly spread over the split, on ``device``.

    mnist-5k's test split is sorted by class, so its first n images would cover only the first digits.
    """
    import advbench

    x_all, y_all = advbench.load_dataset("mnist-5k", "test")
    n = min(n, x_all.shape[0])
    pick = torch.linspace(0, x_all.shape[0] - 1, n).round().long()
    return x_all[pick].to(device), y_all[pick].to(device)


def as_advbench_runs_it(model: torch.nn.Module, device) -> tuple[torch.nn.Module, dict]:
    """(a copy of ``model`` as ``advbench run`` runs it by default, what was applied): the engine's own
    :func:`advbench.engine.session.accelerate` with the default settings (on the CPU: max pools on a
    channels-last copy with autograd, strided maxima without; identical numbers). The other library keeps the plain module, as its users have it."""
    import copy

    from advbench.engine.config import RunConfig
    from advbench.engine.session import accelerate

    defaults = RunConfig(models=("benchmark",))  # the run's own defaults, not a copy of them
    module, accel = accelerate(copy.deepcopy(model), defaults, torch.device(device), None)
    return module, accel.to_json()


def harness_attack(attack, model, x, y, clean_logits, threat, generator, num_classes) -> torch.Tensor:
    """Adversarial predictions [B] for one batch, through advbench's harness (see ``harness_outcome``)."""
    return harness_outcome(attack, model, x, y, clean_logits, threat, generator, num_classes)[1]


def harness_outcome(attack, model, x, y, clean_logits, threat, generator, num_classes, precision: str = "fp32"):
    """(x_adv [B, C, H, W] projected, adversarial predictions [B], success [B]) for one batch, through
    advbench's production harness (``advbench.engine.harness.Harness``: the same code as ``advbench run``).

    ``clean_logits`` [B, K] are computed once per model by the caller, as ``advbench run`` does. Samples the
    model misclassifies are not attacked, so their prediction is the clean one and they never count as a
    success. ``precision``: the attack's passes (``bf16``: autocast, every success re-judged in float32, as
    ``advbench run --precision bf16`` does).
    """
    from advbench.engine.harness import Harness

    verdict = Harness(model, num_classes, precision=precision).attack(attack, x, y, threat, generator,
                                                                      clean_logits=clean_logits)
    return verdict.x_adv, verdict.adv_pred, verdict.success
