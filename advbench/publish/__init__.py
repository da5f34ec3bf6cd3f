"""``advbench publish``: merged runs -> tables (csv, md, json with provenance) and a static site.

The site is plain files: ``index.html`` (every leaderboard), a page per table, SVG plots, PNG galleries, and
one stylesheet and one script copied from this package. It opens from the file system with no server and
no network. Plots need matplotlib (the ``advbench[publish]`` extra); the rest of advbench never imports it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError

STATIC = Path(__file__).resolve().parent / "static"


def publish(run_dirs: list[str | Path], to: str | Path, *, host: Any = None, saliency: bool = True,
            command: str | None = None, note: Callable[[str], None] | None = None) -> Path:
    """Merge ``run_dirs`` (refusing cells whose samples or settings differ) and write the site to ``to``.

    Args:
        run_dirs: ``--out`` directories of ``advbench run``.
        to: the site directory (created; files advbench writes there are replaced, others left alone).
        host: the plugin host that loads models for the saliency page (default: the process-wide one).
        saliency: draw the input-gradient saliency page (loads each model once on the CPU).
        command: the command line that published, recorded in the provenance.
        note: receives one line per thing left out (a model whose saliency could not be drawn).
    Returns:
        The path of ``index.html``.
    Raises:
        AdvbenchError: runs that cannot be merged (naming the cells), matplotlib missing (with the pip command),
            or a destination that is a file.
    """
    from ..results import load_runs
    from . import pictures, plots, site
    from .export import provenance, write_tables
    from .html import page

    plots.pyplot()  # before any work: a missing matplotlib is the first thing to say
    runs = load_runs(list(run_dirs))
    out = Path(to)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--to {out} is a file: pass a directory for the site")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(STATIC, out / "static", dirs_exist_ok=True)
    prov = provenance(runs, command)
    index, boards = site.leaderboards(runs)
    sections = [index, *boards, site.curves(runs, out), site.transfer(runs, out), site.queries(runs, out),
                site.min_norm(runs), *pictures.galleries(runs, out)]
    if saliency:
        from ..plugins import get_host

        section, notes = pictures.saliency(runs, out, host or get_host())
        sections.append(section)
        for line in notes:
            (note or (lambda _: None))(line)
    sections.append(site.provenance_page(prov, runs))
    sections = [s for s in sections if s is not None]
    write_tables([t for s in sections for t in s.tables], out, prov)
    files = {s.file for s in sections}
    for section in sections:
        (out / section.file).write_text(page(section.title, section.body, files), encoding="utf-8")
    return out / "index.html"


__all__ = ["STATIC", "publish"]
