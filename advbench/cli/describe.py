"""``advbench list attacks NAME``: one attack in full, from its own declarations (no hand-written docs to drift).

The options come from the attack class's dataclass fields and their :func:`advbench.options.option` metadata
(type, default, constraint, help); access, norms, targeted support and reference from its spec.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from ..specs import AttackSpec


def attack_class(spec: AttackSpec) -> type | None:
    """The :class:`~advbench.attacks.base.Attack` dataclass behind ``spec``, or ``None`` for a plugin whose
    factory is a plain function (its options are then not declared)."""
    cls = getattr(spec.factory, "__self__", None)
    return cls if isinstance(cls, type) and dataclasses.is_dataclass(cls) else None


def attack_record(spec: AttackSpec) -> dict[str, Any]:
    """Everything ``list attacks NAME --json`` prints for one attack."""
    from ..options import describe_options

    cls = attack_class(spec)
    options = describe_options(cls) if cls is not None else None
    return {
        "name": spec.name, "access": spec.access, "norms": list(spec.norms), "targeted": spec.targeted,
        "minimum_norm": spec.minimum_norm, "strength": spec.strength, "needs_fit": spec.needs_fit,
        "uses_surrogate": spec.uses_surrogate, "min_classes": spec.min_classes, "plugin": spec.plugin,
        "description": spec.description, "reference": spec.reference,
        "options": [{**o, "default": _plain(o["default"])} for o in options] if options is not None else None,
    }


def print_attack(spec: AttackSpec, as_json: bool) -> None:
    """Print one attack: a header of facts, then a table of its options (or JSON)."""
    import typer

    from .render import listing_table, out_console

    record = attack_record(spec)
    if as_json:
        typer.echo(json.dumps(record, indent=2))
        return
    console = out_console()
    facts = [
        ("attack", record["name"]), ("description", record["description"]),
        ("access", {"gradient": "gradient (white-box)", "score": "scores (black-box)",
                    "label": "labels only (decision-based)"}[record["access"]]),
        ("norms", ", ".join(record["norms"])), ("targeted", "yes" if record["targeted"] else "no (untargeted only)"),
        ("kind", "minimum-norm (one run per norm; every eps derived)" if record["minimum_norm"] else "fixed budget"),
        ("reference", record["reference"] or "-"), ("plugin", record["plugin"] or "-"),
    ]
    for label, value in facts:
        console.print(f"{label:>12}: {value}", markup=False, highlight=False)
    if record["options"] is None:
        console.print("     options: not declared (the plugin's factory is a function)", markup=False)
        return
    rows = ([o["name"], o["type"], _shown(o["default"]), o["constraint"] or "-", o["help"] or ""]
            for o in record["options"])
    console.print(listing_table(f"options (set with --attack-opt {record['name']}.NAME=VALUE)",
                                ["option", "type", "default", "constraint", "help"], rows))


def _plain(value: Any) -> Any:
    """A default as JSON can hold it (inf and tuples included)."""
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool, type(None), list, dict)):
        return value
    return str(value)


def _shown(value: Any) -> str:
    return "-" if value is None else (",".join(map(str, value)) if isinstance(value, list) else str(value))


__all__ = ["attack_class", "attack_record", "print_attack"]
