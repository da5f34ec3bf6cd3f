"""Parsing of the CLI's compound options (names lists, --attack-opt, --weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..options import parse_nested_options, parse_options


def split_names(text: str | None, what: str) -> tuple[str, ...]:
    """``"a,b, c"`` -> ``("a", "b", "c")``; empty -> ConfigError naming the option."""
    if text is None:
        return ()
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise ConfigError(f"empty --{what}: give at least one name (see `advbench list {what}`)")
    return names


def parse_attack_options(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """``["pgd.steps=40", "pgd.restarts=2"]`` -> ``{"pgd": {"steps": "40", "restarts": "2"}}``.

    Each item is one option, never split at ``;`` (``ensemble.member_options=a.x=1;b.y=2`` is one value).

    Raises:
        ConfigError: a malformed item, or one option given twice.
    """
    return parse_nested_options(items or [], what="--attack-opt", member="ATTACK", example="pgd.steps=40")


def parse_weights(items: list[str] | None, models: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``--weights PATH`` (one model) or ``--weights NAME=PATH`` -> ``{model: {"weights": path}}``."""
    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep:
            if len(models) != 1:
                raise ConfigError("--weights PATH is ambiguous with several models: write --weights MODEL=PATH")
            name, path = models[0], item
        name, path = name.strip(), path.strip()
        if name not in models:
            raise ConfigError(f"--weights names model {name!r}, which is not in --models")
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"weights file not found: {p} (--weights expects a .safetensors or state-dict file)")
        out.setdefault(name, {})["weights"] = str(p)
    return out


def parse_model_options(items: list[str] | None, models: tuple[str, ...], arch: str | None = None) -> dict[str, dict[str, Any]]:
    """``--model-opt KEY=VALUE`` (every model) or ``MODEL.KEY=VALUE`` (one model; option keys have no dots)
    and ``--arch`` (for ``file:`` models) -> ``{model: {key: value}}``."""
    out: dict[str, dict[str, Any]] = {}
    pairs = parse_options(items or [], what="--model-opt", syntax="KEY=VALUE or MODEL.KEY=VALUE", example="in_chans=1")
    for key, value in pairs.items():
        model, dot, option = key.rpartition(".")
        targets = [model] if dot else list(models)
        if dot and model not in models:
            raise ConfigError(f"--model-opt names model {model!r}, which is not in --models")
        for name in targets:
            out.setdefault(name, {})[option if dot else key] = value
    if arch is not None:
        files = [m for m in models if m.startswith("file:")]
        if not files:
            raise ConfigError("--arch is for file:PATH models: add one to --models")
        for name in files:
            out.setdefault(name, {})["arch"] = arch
    return out


def merge_options(*parts: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for part in parts:
        for name, options in part.items():
            merged.setdefault(name, {}).update(options)
    return merged


def expand_model_globs(names: tuple[str, ...], registered: list[str]) -> tuple[str, ...]:
    """``'cnn.*'`` -> every registered model matching the glob (sorted); plain names pass through, and so do
    registered names and names with a source scheme (``file:runs/[1]/*.pt`` is a path, never a glob)."""
    import fnmatch

    out: list[str] = []
    for name in names:
        if any(ch in name for ch in "*?[") and name not in registered and ":" not in name:
            matches = sorted(n for n in registered if fnmatch.fnmatchcase(n, name))
            if not matches:
                raise ConfigError(f"--models pattern {name!r} matches no registered model (see `advbench list models`)")
            out.extend(m for m in matches if m not in out)
        elif name not in out:
            out.append(name)
    return tuple(out)
