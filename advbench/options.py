"""Declarative options: constraints declared on dataclass fields, checked once, described, and parsed.

An attack's options are the fields of its dataclass. Declaring one with :func:`option` records its range,
its allowed values and a one-line help next to the default::

    steps: int = option(20, ge=1, help="iterations per restart")

:func:`check_options` then checks every declared field when the object is built (``Attack.__post_init__``),
with one message shape everywhere: ``attack 'pgd': option steps must be >= 1, got 0``.
:func:`describe_options` lists a class's options for ``advbench list``. :func:`parse_options` and
:func:`parse_nested_options` are the one strict parser of ``KEY=VALUE`` lists (command line, the ensemble's
``member_options``, the ``base_options`` of transfer and substitute, a model's ``kwargs``).

This module imports neither torch nor any attack, so the CLI can use it before loading anything heavy.
"""

from __future__ import annotations

import dataclasses
import typing
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

#: The key of a field's ``metadata`` under which :func:`option` stores its :class:`OptionInfo`.
METADATA_KEY = "advbench.option"


@dataclass(frozen=True)
class OptionInfo:
    """What :func:`option` records about a field.

    Attributes:
        ge, gt, le, lt: bounds (``>=``, ``>``, ``<=``, ``<``); ``None``: no bound.
        choices: the allowed values, or ``None`` for any.
        help: one line for ``advbench list attacks NAME``.
        deprecated: old names of this option, still accepted by ``from_options`` with a warning.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None
    help: str = ""
    deprecated: tuple[str, ...] = ()

    def requirement(self) -> str:
        """The constraint as text: ``>= 1``, ``in (0, 1]``, ``one of ce, dlr`` (empty when unconstrained)."""
        parts = []
        # (operator, interval bracket, bound) of each side, e.g. (">=", "[", 0)
        low = (">=", "[", self.ge) if self.ge is not None else (">", "(", self.gt) if self.gt is not None else None
        high = ("<=", "]", self.le) if self.le is not None else ("<", ")", self.lt) if self.lt is not None else None
        if low and high:
            parts.append(f"in {low[1]}{_num(low[2])}, {_num(high[2])}{high[1]}")
        elif low or high:
            op, _, bound = low or high
            parts.append(f"{op} {_num(bound)}")
        if self.choices is not None:
            parts.append("one of " + ", ".join(map(str, self.choices)))
        return " and ".join(parts)

    def satisfied_by(self, value: Any) -> bool:
        """Whether ``value`` meets every constraint (``None``, an unset optional option, always does)."""
        if value is None:
            return True
        if self.choices is not None and value not in self.choices:
            return False
        bounds = (self.ge, self.gt, self.le, self.lt)
        if all(b is None for b in bounds):
            return True
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        # Written as "not (value >= ge)" so that NaN fails every bound.
        return not (
            (self.ge is not None and not value >= self.ge)
            or (self.gt is not None and not value > self.gt)
            or (self.le is not None and not value <= self.le)
            or (self.lt is not None and not value < self.lt)
        )


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def option(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Iterable[Any] | None = None,
    help: str = "",
    deprecated: Iterable[str] = (),
) -> Any:
    """A dataclass field with a default, constraints and a one-line help.

    Args:
        default: the default value (a scalar or ``None``; it must meet the constraints).
        ge, gt, le, lt: numeric bounds; ``None`` values (an unset optional option) are not checked.
        choices: the allowed values.
        help: one line shown by ``advbench list attacks NAME``.
        deprecated: old names of the option that ``from_options`` still accepts, with a warning.
    Returns:
        A :func:`dataclasses.field` carrying an :class:`OptionInfo` in its metadata.
    """
    if ge is not None and gt is not None or le is not None and lt is not None:
        raise TypeError("option(): give at most one lower bound (ge or gt) and one upper bound (le or lt)")
    info = OptionInfo(ge, gt, le, lt, None if choices is None else tuple(choices), help, tuple(deprecated))
    if not info.satisfied_by(default):
        raise TypeError(f"option(): the default {default!r} is not {info.requirement()}")
    return dataclasses.field(default=default, metadata={METADATA_KEY: info})


def option_info(f: dataclasses.Field) -> OptionInfo | None:
    """The :class:`OptionInfo` of a field declared with :func:`option`, else ``None``."""
    return f.metadata.get(METADATA_KEY)


def option_error(owner: str, name: str, requirement: str, value: Any) -> ConfigError:
    """The one-line error for a bad option value: ``attack 'pgd': option steps must be >= 1, got 0``.

    Cross-field checks that cannot be declared use it too, so every option error reads the same.
    """
    return ConfigError(f"{owner}: option {name} must be {requirement}, got {value!r}")


def check_options(obj: Any, owner: str | None = None) -> None:
    """Check every field of the dataclass instance ``obj`` that was declared with :func:`option`.

    Args:
        owner: how errors name ``obj`` (``"attack 'pgd'"``); default: its class name.
    Raises:
        ConfigError: the first field whose value breaks its constraints.
    """
    owner = owner or type(obj).__name__
    for f in dataclasses.fields(obj):
        info = option_info(f)
        if info is None:
            continue
        value = getattr(obj, f.name)
        if not info.satisfied_by(value):
            requirement = info.requirement()
            if not isinstance(value, (int, float, type(None))) and info.choices is None:
                requirement = f"a number {requirement}"
            raise option_error(owner, f.name, requirement, value)


def describe_options(cls: type) -> list[dict[str, Any]]:
    """One record per field of the dataclass ``cls``, in declaration order.

    Returns:
        ``[{"name", "type", "default", "constraint", "help", "deprecated"}, ...]``: ``type`` is the annotation
        as written (``"int | None"``), ``default`` the default value (``None`` when there is none),
        ``constraint`` the text of :meth:`OptionInfo.requirement` (empty for an undeclared field).
    """
    rows = []
    # keyword-only fields (options mixed in for a whole family, such as EOT's) come after the attack's own
    for f in sorted(dataclasses.fields(cls), key=lambda f: bool(f.kw_only)):
        info = option_info(f) or OptionInfo()
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        rows.append({
            "name": f.name,
            "type": f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type)),
            "default": default,
            "constraint": info.requirement(),
            "help": info.help,
            "deprecated": list(info.deprecated),
        })
    return rows


def rename_deprecated(cls: type, options: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """``options`` with deprecated option names of ``cls`` replaced by the current ones (a FutureWarning each).

    Raises:
        ConfigError: an option given under both its old and its new name.
    """
    renames = {old: f.name for f in dataclasses.fields(cls) for old in (option_info(f) or OptionInfo()).deprecated}
    out: dict[str, Any] = {}
    for key, value in options.items():
        new = renames.get(key)
        if new is None:
            out[key] = value
            continue
        if new in options or new in out:  # both names, or two old names of one option
            raise ConfigError(f"{owner}: option {key} is the old name of {new}; give only {new}")
        warnings.warn(f"{owner}: option {key} is deprecated, use {new}", FutureWarning, stacklevel=3)
        out[new] = value
    return out


# -- converting command-line strings -----------------------------------------------------------------------
def convert_option(value: Any, hint: Any, owner: str, name: str) -> Any:
    """Convert a command-line string to the type ``hint`` of option ``name``; other values pass through.

    Handles ``bool`` (true/false, yes/no, on/off, 1/0), ``int``, ``float`` (also fractions such as ``8/255``),
    ``str``, ``Optional[...]`` (``none``, ``null`` or empty -> ``None``) and ``Literal[...]``.

    Raises:
        ConfigError: a string that is not a value of that type, in :func:`option_error`'s shape.
    """
    if not isinstance(value, str):
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or (origin is not None and type(None) in args):
        inner = [a for a in args if a is not type(None)]
        if value.strip().lower() in {"none", "null", ""}:
            return None
        return convert_option(value, inner[0] if len(inner) == 1 else Any, owner, name)
    if origin is typing.Literal:
        if value not in args:
            raise option_error(owner, name, "one of " + ", ".join(map(str, args)), value)
        return value
    try:
        if hint is bool:
            low = value.strip().lower()
            if low in {"1", "true", "yes", "on"}:
                return True
            if low in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if hint is int:
            return int(value)
        if hint is float:
            return float(value) if "/" not in value else _fraction(value)
    except (ValueError, ConfigError):
        kind = {bool: "true or false", int: "an int", float: "a float"}[hint]
        raise option_error(owner, name, kind, value) from None
    return value


def _fraction(text: str) -> float:
    from .threat import (
        parse_eps,  # imports torch: only needed for a fraction such as 8/255
    )

    return parse_eps(text)


# -- the one parser of KEY=VALUE lists -------------------------------------------------------------------
def _items(text: str | Sequence[str] | None) -> list[str]:
    """A ``;``-separated string -> its items (empty items, e.g. after a trailing ``;``, are ignored);
    a sequence (repeated command-line options) -> its elements, one item each, never split (a value may
    itself hold ``;``: ``--attack-opt ensemble.member_options=a.x=1;b.y=2``)."""
    if text is None:
        return []
    if isinstance(text, str):
        return [item.strip() for item in text.split(";") if item.strip()]
    return [str(item).strip() for item in text]


def _bad(item: str, what: str, problem: str, syntax: str, example: str, listed: bool) -> ConfigError:
    several = ", several separated by ';'" if listed else ""
    return ConfigError(f"invalid {what} {item!r}: {problem}; write {syntax}{several} (e.g. {example})")


def _pairs(
    text: str | Sequence[str] | None, what: str, syntax: str, example: str
) -> list[tuple[str, str, str]]:
    """``(item, key, value)`` per item, keys and values stripped; raises on a missing ``=`` or an empty key."""
    listed = isinstance(text, str)
    out = []
    for item in _items(text):
        key, sep, value = item.partition("=")
        if not sep:
            raise _bad(item, what, "no '='", syntax, example, listed)
        if not key.strip():
            raise _bad(item, what, "empty name before '='", syntax, example, listed)
        out.append((item, key.strip(), value.strip()))
    return out


def parse_options(
    text: str | Sequence[str] | None, *, what: str = "option", syntax: str = "KEY=VALUE", example: str = "steps=40"
) -> dict[str, str]:
    """``"steps=40; restarts=2"`` (or ``["steps=40", "restarts=2"]``) -> ``{"steps": "40", "restarts": "2"}``.

    Keys and values are stripped; values stay strings (``Attack.from_options`` converts them) and may be
    empty or contain ``=``.

    Args:
        text: ``;``-separated items, or a sequence of single items (see :func:`_items`).
        what: names the option in errors (``"--model-opt"``, ``"transfer base_options item"``).
        syntax, example: the correct form shown in errors.
    Raises:
        ConfigError: an item without ``=``, with an empty key, or a key given twice; it names the item.
    """
    out: dict[str, str] = {}
    for item, key, value in _pairs(text, what, syntax, example):
        if key in out:
            raise _bad(item, what, f"{key} is given twice", syntax, example, isinstance(text, str))
        out[key] = value
    return out


def parse_nested_options(
    text: str | Sequence[str] | None,
    *,
    what: str = "option",
    member: str = "MEMBER",
    example: str = "apgd_ce.steps=50;fab_t.steps=50",
) -> dict[str, dict[str, str]]:
    """``"apgd_ce.steps=50;fab_t.steps=50"`` -> ``{"apgd_ce": {"steps": "50"}, "fab_t": {"steps": "50"}}``.

    The option name is what follows the last dot (option names have none; member names may:
    ``pgd@cnn.mnist5k_std.steps=40``).

    Args:
        text: ``;``-separated items, or a sequence of single items (see :func:`_items`).
        what: names the option in errors. member: the placeholder for the member in the syntax shown
            (``ATTACK.OPTION=VALUE``). example: a correct value shown in errors.
    Raises:
        ConfigError: an item without ``=``, without ``MEMBER.`` before the option, with an empty member or
            option name, or a ``MEMBER.OPTION`` given twice; it names the item.
    """
    syntax = f"{member}.OPTION=VALUE"
    listed = isinstance(text, str)
    out: dict[str, dict[str, str]] = {}
    for item, key, value in _pairs(text, what, syntax, example):
        name, dot, opt = key.rpartition(".")
        name, opt = name.strip(), opt.strip()
        if not dot or not name:
            raise _bad(item, what, f"no {member} before the option", syntax, example, listed)
        if not opt:
            raise _bad(item, what, "empty option name", syntax, example, listed)
        if opt in out.setdefault(name, {}):
            raise _bad(item, what, f"{name}.{opt} is given twice", syntax, example, listed)
        out[name][opt] = value
    return out


__all__ = [
    "OptionInfo",
    "check_options",
    "convert_option",
    "describe_options",
    "option",
    "option_error",
    "option_info",
    "parse_nested_options",
    "parse_options",
    "rename_deprecated",
]
