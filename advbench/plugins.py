"""The plugin host: built-ins first, then entry points one at a time, failures captured.

pluggy's ``load_setuptools_entrypoints`` stops at the first plugin that raises; here each entry point is
loaded on its own so one broken plugin is reported (``advbench plugins``) and skipped while the others load.
A plugin whose hook names are misspelt is rejected with its name, and ``check_pending()`` runs afterwards
so nothing unverified slips through.

A host is built with everything it depends on as arguments (its extra zoo directories); the only
process-wide state is the cached host of the Python API (:func:`get_host`), and the only place the
environment is read for it is :func:`env_zoo_dirs`, once, when that host is built.
"""

from __future__ import annotations

import difflib
import functools
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable

import pluggy

from . import hookspecs
from .engine.interrupts import InterruptWatch
from .errors import AdvbenchError, PluginError, RegistryError
from .registry import Registrar, Registry
from .specs import ModelSpec

ENTRY_POINT_GROUP = "advbench"
#: Set to 1/true to skip entry-point discovery (the test suite does; built-ins still load).
AUTOLOAD_ENV = "ADVBENCH_DISABLE_PLUGIN_AUTOLOAD"
#: Comma-separated names of entry-point plugins not to load (``--disable-plugin NAME`` on the command line).
DISABLE_ENV = "ADVBENCH_DISABLE_PLUGINS"
BUILTIN_NAME = "advbench"

_REGISTER_HOOKS = {
    "attack": "advbench_register_attacks",
    "model": "advbench_register_models",
    "dataset": "advbench_register_datasets",
}


@dataclass
class PluginInfo:
    """What ``advbench plugins`` shows for one plugin."""

    name: str
    source: str  # "builtin", "entry point", or "explicit"
    distribution: str = ""
    version: str = ""
    module: str = ""
    error: str | None = None
    hooks: tuple[str, ...] = ()
    disabled: bool = False  # named in --disable-plugin / $ADVBENCH_DISABLE_PLUGINS: not imported

    @property
    def ok(self) -> bool:
        return self.error is None


def disabled_plugins() -> frozenset[str]:
    """The entry-point plugins ``$ADVBENCH_DISABLE_PLUGINS`` names (comma-separated)."""
    return frozenset(n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip())


def autoload_disabled() -> bool:
    return os.environ.get(AUTOLOAD_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _unknown_hooks(plugin: object) -> list[str]:
    """Names of functions marked as advbench hookimpls that match no hookspec."""
    known = {n for n in dir(hookspecs) if n.startswith("advbench_")}
    bad = []
    for attr in dir(plugin):
        value = getattr(plugin, attr, None)
        if callable(value) and getattr(value, f"{hookspecs.PROJECT}_impl", None) is not None:
            if attr not in known:
                bad.append(attr)
    return bad


class PluginHost:
    """A pluggy manager plus the registry built from its plugins.

    Args:
        zoo_dirs: extra model-zoo directories for the built-in plugin (``--zoo``), registered after the
            shipped zoo and before the user zoo.
    """

    def __init__(self, zoo_dirs: Iterable[str | Path] = ()) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        self._registry: Registry | None = None
        self.extra_zoo_dirs: tuple[Path, ...] = tuple(Path(d) for d in zoo_dirs)
        #: How to build an equal host in another process (a picklable call, set by :func:`make_host`): the Ray
        #: executor's workers rebuild the run's host from it; ``None`` for a host put together by hand.
        self.recipe: Callable[[], PluginHost] | None = None

    def zoo_dirs(self) -> list[Path]:
        """Every zoo directory this host registers models from (those that exist now), in order."""
        from .models.zoo import zoo_dirs

        return zoo_dirs(self.extra_zoo_dirs)

    # -- loading -------------------------------------------------------------------------------------
    def register(self, plugin: object, name: str, *, source: str = "explicit", **info: str) -> PluginInfo:
        """Register one plugin object; a misspelt hook name makes it fail with its name (recorded)."""
        record = PluginInfo(name=name, source=source, **info)
        self.plugins.append(record)
        with InterruptWatch() as watch:
            try:
                self._register(plugin, record)
            except BaseException as exc:  # noqa: BLE001 - a hostile plugin object (its __getattr__) is skipped
                if watch.is_real(exc):
                    raise
                record.error = _one_line(exc)
                if self.pm.get_plugin(name) is not None:
                    self.pm.unregister(name=name)
        return record

    def _register(self, plugin: object, record: PluginInfo) -> None:
        name = record.name
        bad = _unknown_hooks(plugin)
        if bad:
            known = sorted(n for n in dir(hookspecs) if n.startswith("advbench_"))
            hints = "; ".join(
                f"unknown hook {b!r}" + (f" (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(b, known, 1)) else "")
                for b in bad
            )
            record.error = f"plugin {name!r}: {hints}"
            return
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # pluggy validation (bad signature), duplicate plugin name
            record.error = _one_line(exc)
            return
        record.hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or ()))
        self._registry = None
        return record

    def load_builtins(self) -> None:
        from ._version import __version__
        from .builtin import BuiltinPlugin

        self.register(BuiltinPlugin(self.extra_zoo_dirs), BUILTIN_NAME, source="builtin",
                      module=BuiltinPlugin.__module__, distribution="advbench", version=__version__)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP, disabled: Iterable[str] = ()) -> None:
        """Load every entry point of ``group`` except those named in ``disabled``, one at a time, recording
        failures (a disabled plugin is listed with status ``disabled`` and never imported)."""
        disabled = frozenset(disabled)
        for ep in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            info = {
                "distribution": dist.metadata["Name"] if dist is not None else "",
                "version": dist.version if dist is not None else "",
                "module": ep.value,
            }
            if ep.name in disabled:
                self.plugins.append(PluginInfo(ep.name, "entry point", disabled=True, **info))
                continue
            if self.pm.get_plugin(ep.name) is not None or any(p.name == ep.name for p in self.plugins):
                self.plugins.append(
                    PluginInfo(ep.name, "entry point", error=f"a plugin named {ep.name!r} is already loaded", **info)
                )
                continue
            with InterruptWatch() as watch:
                try:
                    plugin = ep.load()
                except BaseException as exc:  # noqa: BLE001 - a plugin's import (even sys.exit) must not stop the host
                    if watch.is_real(exc):
                        raise
                    self.plugins.append(PluginInfo(ep.name, "entry point", error=f"import failed: {_one_line(exc)}", **info))
                    continue
            self.register(plugin, ep.name, source="entry point", **info)
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:  # pragma: no cover - _unknown_hooks catches these first
            raise PluginError(f"plugin {exc.plugin!r}: {_one_line(exc)}") from exc

    # -- registry ------------------------------------------------------------------------------------
    @property
    def failed(self) -> list[PluginInfo]:
        return [p for p in self.plugins if not p.ok]

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = self._build_registry()
        return self._registry

    def _build_registry(self) -> Registry:
        """Every plugin's specs. A plugin whose registration hook raises anything (even ``sys.exit`` or a
        ``KeyboardInterrupt`` that is not a Ctrl-C) is recorded as failed and contributes nothing: what it
        registered before raising is dropped, and it is unregistered, so its resolve and observer hooks
        never run either."""
        registry = Registry()
        for kind, hook_name in _REGISTER_HOOKS.items():
            table = registry.table(kind)
            hook = getattr(self.pm.hook, hook_name)
            # Call each implementation ourselves so every spec is attributed to its plugin. pluggy calls
            # hookimpls last-registered first; reverse that so built-ins register first.
            for impl in reversed(hook.get_hookimpls()):
                self._call_register_hook(impl, hook_name, table)
        for record in self.failed:
            if self.pm.get_plugin(record.name) is not None:
                self.pm.unregister(name=record.name)
            for kind in _REGISTER_HOOKS:
                registry.table(kind).drop_plugin(record.name)
        broken = tuple(p.name for p in self.failed)
        for kind in _REGISTER_HOOKS:
            registry.table(kind).broken_plugins = broken
        return registry

    def _call_register_hook(self, impl, hook_name: str, table) -> None:
        record = self.info(impl.plugin_name)
        if record is not None and record.error is not None:
            return  # failed on an earlier hook: it contributes nothing
        with InterruptWatch() as watch:
            try:
                impl.function(registrar=Registrar(table, impl.plugin_name))
            except BaseException as exc:  # noqa: BLE001 - a failing plugin is skipped, not fatal (even sys.exit)
                if watch.is_real(exc):
                    raise
                if record is not None:
                    record.error = f"{hook_name} failed: {_one_line(exc)}"

    def info(self, name: str) -> PluginInfo | None:
        return next((p for p in self.plugins if p.name == name), None)

    # -- lookups -------------------------------------------------------------------------------------
    def model_spec(self, name: str, options: dict[str, Any] | None = None) -> ModelSpec:
        """A registered model, else the first plugin that resolves the name (timm architectures)."""
        models = self.registry.models
        if name in models:
            return models.get(name)
        spec = self.pm.hook.advbench_resolve_model(name=name, options=dict(options or {}))
        if spec is None:
            raise RegistryError(models.unknown_message(name).replace("; see", " and no timm architecture has that name; see"))
        return spec

    def dataset_spec(self, name: str, options: dict[str, Any] | None = None):
        """A registered dataset, else the first plugin that resolves the name (``imagenet:/path``)."""
        datasets = self.registry.datasets
        if name in datasets:
            return datasets.get(name)
        spec = self.pm.hook.advbench_resolve_dataset(name=name, options=dict(options or {}))
        if spec is None:
            raise RegistryError(datasets.unknown_message(name))
        return spec

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call an observer hook (run started / cell finished / run finished)."""
        getattr(self.pm.hook, hook_name)(**kwargs)


def make_host(
    *, zoo_dirs: Iterable[str | Path] = (), autoload: bool | None = None, extra: Iterable[tuple[str, object]] = (),
    disable: Iterable[str] | None = None,
) -> PluginHost:
    """Build a fresh host: built-ins, ``extra`` (name, plugin) pairs, then entry points unless disabled.

    Args:
        zoo_dirs: extra model-zoo directories (see :class:`PluginHost`); the environment is not read here.
        autoload: load entry-point plugins (default: unless ``$ADVBENCH_DISABLE_PLUGIN_AUTOLOAD`` is set).
        extra: plugins to register after the built-ins, as (name, plugin object) pairs.
        disable: entry-point plugins not to load, by name (default: ``$ADVBENCH_DISABLE_PLUGINS``). The
            built-in plugin cannot be disabled.
    """
    disable = disabled_plugins() if disable is None else frozenset(disable)
    zoo_dirs, extra = tuple(Path(d) for d in zoo_dirs), tuple(extra)  # iterated twice: here and in the recipe
    if BUILTIN_NAME in disable:
        raise PluginError(f"the built-in plugin {BUILTIN_NAME!r} cannot be disabled (it provides the core attacks "
                          "and models); name an installed plugin (see `advbench plugins`)")
    host = PluginHost(zoo_dirs)
    host.load_builtins()
    for name, plugin in extra:
        host.register(plugin, name)
    if autoload is None:
        autoload = not autoload_disabled()
    if autoload:
        host.load_entry_points(disabled=disable)
    host.recipe = functools.partial(make_host, zoo_dirs=zoo_dirs, autoload=autoload, extra=extra,
                                    disable=tuple(sorted(disable)))
    return host


def env_zoo_dirs() -> list[Path]:
    """The directories in ``$ADVBENCH_ZOO`` (``os.pathsep``-separated): the user's default extra zoos.

    Read where the CLI and the Python API build their host, never by a host or a plugin.
    """
    from .models.zoo import ZOO_ENV

    return [Path(p) for p in os.environ.get(ZOO_ENV, "").split(os.pathsep) if p]


_HOST: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide host of the Python API, built on first use (with the ``$ADVBENCH_ZOO`` zoos)."""
    global _HOST
    if _HOST is None:
        _HOST = make_host(zoo_dirs=env_zoo_dirs())
    return _HOST


def set_host(host: PluginHost | None) -> None:
    """Replace (or with ``None`` reset) the cached host; for tests and embedding applications."""
    global _HOST
    _HOST = host


def warn_failed(host: PluginHost, emit: Callable[[str], None]) -> None:
    """Emit one line per plugin that failed to load or to register (the registry is built first, so a
    registration hook that raises is warned about on every command)."""
    registry = host.registry
    for p in host.failed:
        emit(f"warning: plugin {p.name!r} was skipped: {p.error} (see `advbench plugins`)")
    known = {p.name for p in host.plugins}
    for name in sorted(disabled_plugins() - known):
        emit(f"warning: --disable-plugin {name!r}: no installed plugin has that name (see `advbench plugins`)")
    for kind, name, plugins in registry.conflicts():
        emit(f"warning: {kind} {name!r} is registered by plugins {' and '.join(map(repr, plugins))}: it cannot be "
             "used until one is disabled (--disable-plugin NAME) or uninstalled (see `advbench plugins`)")


__all__ = ["PluginHost", "PluginInfo", "make_host", "get_host", "set_host", "env_zoo_dirs", "AdvbenchError"]
