"""``advbench publish`` and the several-run ``advbench leaderboard``. Heavy imports happen inside the commands."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer


def show_runs(run_dirs: list[Path], fmt: str, view: str | None) -> None:
    """Print the leaderboard of one run (checked as ``load_rows`` does) or of several merged ones."""
    from ..results import load_flags, load_manifest, load_rows, load_runs, load_transfer
    from .render import check_view, show_results

    check_view(view)
    if len(run_dirs) == 1:
        run_dir = run_dirs[0]
        show_results(load_rows(run_dir), load_flags(run_dir), load_transfer(run_dir), fmt, str(run_dir), view=view,
                     manifest=load_manifest(run_dir))
        return
    runs = load_runs(run_dirs)
    manifest = {"models": {}, "attacks": {}}
    for m in runs.manifests.values():  # what the views read from a manifest: model cards, attack metadata
        manifest["models"].update(m.get("models") or {})
        manifest["attacks"].update(m.get("attacks") or {})
    show_results(runs.rows, runs.flags, runs.transfer, fmt, " + ".join(runs.names), view=view, manifest=manifest)


def publish_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories (--out of `advbench run`); several are merged.")],
    to: Annotated[Path, typer.Option("--to", help="Directory for the site and its tables (created).")],
    saliency: Annotated[bool, typer.Option("--saliency/--no-saliency", help="Draw input-gradient saliency (loads each model once).")] = True,
    zoo: Annotated[Optional[list[Path]], typer.Option("--zoo", help="Extra model zoo directory (saliency loads models), repeatable.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks for errors.")] = False,
) -> None:
    """Publish runs as tables (csv, md, json with provenance) and a static site (index.html, a page per table,
    plots, galleries) that opens from the file system with no server. Runs whose cells were computed on other
    samples or settings are refused, naming the cells; other models on the same samples and settings merge."""
    from ..publish import publish
    from .hosts import host as _host
    from .render import note

    command = " ".join(shlex.quote(a) for a in ["advbench", *sys.argv[1:]])
    index = publish(run_dirs, to, host=_host(zoo) if saliency else None, saliency=saliency, command=command, note=note)
    note(f"site: {index} (open it in a browser; no server needed)")


__all__ = ["publish_cmd", "show_runs"]
