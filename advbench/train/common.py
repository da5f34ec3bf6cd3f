"""What every trainer shares (the classifier recipes and the DCGAN): ``--recipe-opt`` values, atomic
safetensors weights, and the package versions recorded in a model card."""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn


def package_version(dist: str, fallback: str) -> str:
    """The installed version of distribution ``dist``, else ``fallback``."""
    try:
        return version(dist)
    except PackageNotFoundError:
        return fallback


def save_state_dict(net: "nn.Module", path: Path) -> None:
    """Write the net's state dict as safetensors, atomically (a crash never leaves a half-written file)."""
    from safetensors.torch import save_file

    # Clones: safetensors refuses non-contiguous or storage-sharing tensors.
    tensors = {k: v.detach().to("cpu").clone().contiguous() for k, v in net.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    # Constant metadata only: the file's bytes, and so its sha256, depend on the weights alone.
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.chmod(tmp, 0o644)  # safetensors creates 0600 files; shipped weights must be readable by every user
    os.replace(tmp, path)


def parse_known_options(pairs: "list[str] | tuple[str, ...]", known: "Iterable[str]", owner: str,
                        example: str) -> dict[str, Any]:
    """``--recipe-opt KEY=VALUE`` items -> ``{key: value}`` (values through :func:`parse_value`), every key one
    of ``known``.

    Raises:
        ConfigError: not ``KEY=VALUE``, a key given twice, or ``{owner} has no option 'k'; it takes: ...``.
    """
    from ..errors import ConfigError
    from ..options import parse_options

    known = list(known)
    parsed: dict[str, Any] = {}
    for key, value in parse_options(list(pairs), what="--recipe-opt", example=example).items():
        if key not in known:
            raise ConfigError(f"{owner} has no option {key!r}; it takes: {', '.join(known)}")
        parsed[key] = parse_value(value)
    return parsed


def parse_arch_options(pairs: "list[str] | tuple[str, ...]") -> dict[str, Any]:
    """``--arch-opt KEY=VALUE`` items -> ``{key: value}`` (values through :func:`parse_value`); the architecture
    builder checks the keys (:func:`advbench.models.archs.build_arch`).

    Raises:
        ConfigError: not ``KEY=VALUE``, or a key given twice.
    """
    from ..options import parse_options

    return {k: parse_value(v) for k, v in parse_options(list(pairs), what="--arch-opt", example="width=32").items()}


def parse_value(text: str) -> Any:
    """A ``KEY=VALUE`` option's value: ``true``/``false``, ``none``, an int, a float, ``8/255``, else the text."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if "/" in text:  # eps written as 8/255
        from ..threat import parse_eps

        try:
            return float(parse_eps(text))
        except Exception:  # noqa: BLE001 - not a fraction: keep the text
            pass
    return text.strip()
