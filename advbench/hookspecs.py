"""Every hook advbench calls, typed and documented. No logic lives here.

A plugin is any module or object with functions marked ``@advbench.hookimpl`` whose names match these
specs. Third-party plugins are found through the ``advbench`` entry-point group::

    [project.entry-points.advbench]
    myattack = "advbench_myattack"

Registration is explicit: a plugin adds its specs through the registrar passed to a ``register`` hook.
Importing a plugin module registers nothing by side effect. Misspelt hook names are an error naming the
plugin (checked when the plugin is loaded).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .registry import Registrar
    from .specs import AttackSpec, DatasetSpec, ModelSpec

PROJECT = "advbench"
hookspec = pluggy.HookspecMarker(PROJECT)
#: Marker for plugin hook implementations: ``@advbench.hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def advbench_register_attacks(registrar: "Registrar[AttackSpec]") -> None:
    """Register attack families.

    Called once per plugin when the registry is first built. Call ``registrar.add(AttackSpec(...))`` for each
    attack. A name already registered by any plugin is an error naming both plugins. ``MyAttack.spec()`` builds
    the spec from the class, but imports its module (and torch) whenever the registry is built; to keep
    ``advbench list`` fast, register ``advbench.attacks.catalog.lazy_spec(name, "module:Class", ...)`` instead,
    which imports the class on the first build (``spec_drift`` checks that its metadata matches the class).

    Args:
        registrar: collects :class:`advbench.AttackSpec` records and remembers which plugin added them.
    """


@hookspec
def advbench_register_models(registrar: "Registrar[ModelSpec]") -> None:
    """Register models with fixed names (a zoo, a set of checkpoints).

    Call ``registrar.add(ModelSpec(...))`` for each model. Loading must be lazy: put the work in
    ``ModelSpec.load`` so that listing models stays fast. For open-ended name patterns (any timm
    architecture, ``py:module:factory``) implement :func:`advbench_resolve_model` instead.

    Args:
        registrar: collects :class:`advbench.ModelSpec` records.
    """


@hookspec
def advbench_register_datasets(registrar: "Registrar[DatasetSpec]") -> None:
    """Register datasets.

    Call ``registrar.add(DatasetSpec(...))`` for each dataset. ``DatasetSpec.load(split)`` returns images
    as float32 [N, C, H, W] in [0, 1] and int64 labels [N].

    Args:
        registrar: collects :class:`advbench.DatasetSpec` records.
    """


@hookspec(firstresult=True)
def advbench_resolve_model(name: str, options: dict[str, Any]) -> "ModelSpec | None":
    """Turn a model name that no plugin registered into a spec, or return ``None``.

    Asked only for names missing from the registry; the first plugin that returns a spec wins. The
    built-in implementation resolves any timm architecture name (``resnet50``, ``vit_small_patch16_224``).

    Args:
        name: the name the user gave (``--models NAME``).
        options: model options from the command line (``weights`` path and overrides); may be empty.
    Returns:
        A :class:`advbench.ModelSpec`, or ``None`` if this plugin does not know the name.
    """


@hookspec(firstresult=True)
def advbench_resolve_dataset(name: str, options: dict[str, Any]) -> "DatasetSpec | None":
    """Turn a dataset name that no plugin registered into a spec, or return ``None``.

    For parameterised names such as ``imagenet:/path/to/val`` (an image folder). Asked only for names missing
    from the registry; the first plugin that returns a spec wins.

    Args:
        name: the name the user gave (``--dataset NAME``).
        options: dataset options from the command line (``data_dir``); may be empty.
    Returns:
        A :class:`advbench.DatasetSpec`, or ``None``.
    """


@hookspec
def advbench_run_started(config: dict[str, Any], run_dir: Path) -> None:
    """A run is about to execute its plan (observers: loggers, trackers).

    Args:
        config: the run configuration as plain JSON-compatible data (as written to ``manifest.json``).
        run_dir: the directory the run writes into.
    """


@hookspec
def advbench_cell_finished(cell: dict[str, Any], rows: "pd.DataFrame") -> None:
    """One (model, attack, norm, eps) cell finished and its rows are on disk.

    Args:
        cell: ``{"model", "attack", "norm", "eps", "seconds"}``.
        rows: the cell's per-sample rows (the columns of ``results.parquet``).
    """


@hookspec
def advbench_run_finished(run_dir: Path, rows: "pd.DataFrame") -> None:
    """A run finished (also after failed cells); ``rows`` holds every row written.

    Args:
        run_dir: the run directory with ``results.parquet`` and ``manifest.json``.
        rows: all rows of the run.
    """
