"""Name -> spec tables for attacks, models and datasets.

A name two plugins register is a *conflict*: neither spec is used, and asking for the name is an error naming
both plugins and how to resolve it, while every other name (and ``advbench plugins``, which lists conflicts)
keeps working. A miss suggests close names ("did you mean ..."); ``match("cnn.*")`` filters like timm's
``list_models``.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field, replace
from typing import Generic, Iterator, TypeVar

from .errors import RegistryError
from .specs import AttackSpec, DatasetSpec, ModelSpec

SpecT = TypeVar("SpecT", AttackSpec, ModelSpec, DatasetSpec)


def suggest(name: str, candidates: list[str]) -> str:
    """`` (did you mean 'x' or 'y'?)`` or an empty string."""
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        close = [lowered[name.lower()]] if name.lower() in lowered else []
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


@dataclass
class SpecTable(Generic[SpecT]):
    """The specs of one kind, by name."""

    kind: str
    specs: dict[str, SpecT] = field(default_factory=dict)
    #: names of plugins that failed to load, mentioned on a miss (they may have provided the name)
    broken_plugins: tuple[str, ...] = ()
    #: name -> the specs several plugins registered under it (none is used while more than one remains)
    conflicts: dict[str, list[SpecT]] = field(default_factory=dict)

    def add(self, spec: SpecT, plugin: str) -> None:
        if not spec.name or spec.name != spec.name.strip() or "," in spec.name:
            raise RegistryError(
                f"plugin {plugin!r} registered an invalid {self.kind} name {spec.name!r}: "
                "names must be non-empty, without commas or surrounding spaces"
            )
        spec = replace(spec, plugin=plugin)
        if spec.name in self.conflicts:
            self.conflicts[spec.name].append(spec)
        elif spec.name in self.specs:
            self.conflicts[spec.name] = [self.specs.pop(spec.name), spec]
        else:
            self.specs[spec.name] = spec

    def drop_plugin(self, plugin: str) -> None:
        """Forget everything ``plugin`` registered (it failed); a conflict it was part of resolves to the spec
        that remains, if only one does."""
        self.specs = {n: s for n, s in self.specs.items() if s.plugin != plugin}
        for name in list(self.conflicts):
            left = [s for s in self.conflicts[name] if s.plugin != plugin]
            if len(left) > 1:
                self.conflicts[name] = left
            else:
                del self.conflicts[name]
                self.specs.update({s.name: s for s in left})

    def conflict_plugins(self, name: str) -> tuple[str, ...]:
        """The plugins that all registered ``name``."""
        return tuple(s.plugin for s in self.conflicts[name])

    def conflict_message(self, name: str) -> str:
        plugins = self.conflict_plugins(name)
        return (f"{self.kind} name {name!r} is registered by plugins {' and '.join(map(repr, plugins))}: disable one "
                f"(--disable-plugin NAME or ADVBENCH_DISABLE_PLUGINS=NAME), uninstall it, or rename the {self.kind}")

    def get(self, name: str) -> SpecT:
        if name in self.conflicts:
            raise RegistryError(self.conflict_message(name))
        try:
            return self.specs[name]
        except KeyError:
            raise RegistryError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        msg = f"unknown {self.kind} {name!r}{suggest(name, sorted(self.specs))}"
        msg += f"; see `advbench list {self.kind}s`"
        if self.broken_plugins:
            msg += f" (plugins that failed to load: {', '.join(self.broken_plugins)}; see `advbench plugins`)"
        return msg

    def match(self, pattern: str | None = None) -> list[SpecT]:
        """Specs whose name matches a glob pattern (``*`` when omitted), sorted by name."""
        names = sorted(self.specs)
        if pattern:
            pat = pattern if any(ch in pattern for ch in "*?[") else f"*{pattern}*"
            names = [n for n in names if fnmatch.fnmatchcase(n.lower(), pat.lower())]
        return [self.specs[n] for n in names]

    def __contains__(self, name: object) -> bool:
        return name in self.specs

    def __iter__(self) -> Iterator[SpecT]:
        return iter(self.specs.values())

    def __len__(self) -> int:
        return len(self.specs)


class Registrar(Generic[SpecT]):
    """Handed to a plugin's ``register`` hook; records which plugin added each spec."""

    def __init__(self, table: SpecTable[SpecT], plugin: str) -> None:
        self._table = table
        self.plugin = plugin

    def add(self, spec: SpecT) -> None:
        """Register one spec. Raises :class:`RegistryError` on a duplicate or invalid name."""
        expected = {"attack": AttackSpec, "model": ModelSpec, "dataset": DatasetSpec}[self._table.kind]
        if not isinstance(spec, expected):
            raise RegistryError(
                f"plugin {self.plugin!r} passed a {type(spec).__name__} to the {self._table.kind} registrar; "
                f"expected advbench.{expected.__name__}"
            )
        self._table.add(spec, self.plugin)


@dataclass
class Registry:
    """Everything the loaded plugins registered."""

    attacks: SpecTable[AttackSpec] = field(default_factory=lambda: SpecTable("attack"))
    models: SpecTable[ModelSpec] = field(default_factory=lambda: SpecTable("model"))
    datasets: SpecTable[DatasetSpec] = field(default_factory=lambda: SpecTable("dataset"))

    def table(self, kind: str) -> SpecTable:
        return {"attack": self.attacks, "model": self.models, "dataset": self.datasets}[kind]

    def conflicts(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(kind, name, plugins) for every name more than one plugin registered."""
        return [(kind, name, self.table(kind).conflict_plugins(name)) for kind in ("attack", "model", "dataset")
                for name in sorted(self.table(kind).conflicts)]
