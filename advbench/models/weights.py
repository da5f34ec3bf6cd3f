"""Safe checkpoint loading: checkpoints are untrusted input.

``.safetensors`` files are read with safetensors (no code runs). Anything else goes through
``torch.load(weights_only=True)``, whose restricted unpickler refuses any object that would need arbitrary code
to rebuild (a plain ``torch.load`` of a downloaded checkpoint can run anything). Every failure is a
:class:`~advbench.errors.WeightsError` with one line naming the file and what to do about it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import WeightsError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

#: Keys under which training scripts commonly nest the state dict inside a checkpoint.
_NESTED_KEYS = ("state_dict", "model")
_SHOWN = 3  # how many offending keys an error message lists


def _one_line(text: object, limit: int = 160) -> str:
    """First non-empty line of ``text`` with ANSI escapes removed, shortened to ``limit`` characters."""
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(text)).splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _list(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return shown + (f", ... ({len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else "")


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(str(d) for d in tensor.shape) or "scalar"


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks.

    Raises:
        WeightsError: the file cannot be read.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise WeightsError(f"cannot read weights file {path}: {exc.strerror or type(exc).__name__}") from exc
    return digest.hexdigest()


def _corrupt(path: Path, exc: BaseException) -> WeightsError:
    # First sentence only: torch's messages go on for paragraphs; the type helps with terse ones (KeyError: 101).
    detail = _one_line(exc).split(". ")[0].rstrip(".")
    return WeightsError(f"{path} is truncated or corrupt ({type(exc).__name__}: {detail}); re-download or re-train it")


def _check_file(path: Path) -> None:
    # Own message: FileNotFoundError can come with an empty message (e.g. from overlay filesystems).
    if not path.exists():
        raise WeightsError(f"weights file {path} does not exist; check the path or re-train it with `advbench train`")
    if not path.is_file():
        raise WeightsError(f"weights path {path} is not a file; pass the checkpoint file itself")


def _as_tensor_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """Unnest ``{"state_dict": ...}`` / ``{"model": ...}`` and check that every value is a tensor."""
    import torch

    if isinstance(obj, Mapping):
        for key in _NESTED_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        kind = "an empty mapping" if isinstance(obj, Mapping) else type(obj).__name__
        raise WeightsError(f"{path} holds {kind}, not a state dict (a mapping of names to tensors)")
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"{path} is not a mapping of tensors: entries {_list(bad)} are not tensors")
    return dict(obj)


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict without running code from the file.

    Args:
        path: a ``.safetensors`` file, or a torch checkpoint (``.pt``, ``.pth``, ``.bin`` ...) holding a state
            dict, possibly nested under a ``"state_dict"`` or ``"model"`` key.

    Returns:
        parameter and buffer name -> tensor (on CPU).

    Raises:
        WeightsError: the file is missing, truncated or corrupt, would need arbitrary code to unpickle, or does
            not hold a mapping of tensors.
    """
    import pickle

    import torch

    path = Path(path)
    _check_file(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj: Any = load_file(str(path), device="cpu")
        except Exception as exc:  # SafetensorError, OSError, ...: all mean the file is unusable
            raise _corrupt(path, exc) from exc
        return _as_tensor_dict(obj, path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        message = str(exc)
        if "Weights only load failed" not in message:  # a plain unpickling error: garbage bytes
            raise _corrupt(path, exc) from exc
        found = re.search(r"GLOBAL (\S+)", message) or re.search(r"function (\S+)", message)
        what = f" (it references {found.group(1)})" if found else ""
        raise WeightsError(
            f"refused to load {path}: unpickling it would run arbitrary code{what}; "
            "if you trust it, convert it to .safetensors"
        ) from exc
    except Exception as exc:  # RuntimeError (bad zip), EOFError, KeyError (not a pickle), ...
        raise _corrupt(path, exc) from exc
    return _as_tensor_dict(obj, path)


def load_into(module: nn.Module, state_dict: Mapping[str, torch.Tensor], *, source: str) -> nn.Module:
    """Strictly load ``state_dict`` into ``module`` (in place), with a one-line error on any mismatch.

    Args:
        module: the freshly built network.
        state_dict: name -> tensor, e.g. from :func:`load_state_dict`.
        source: where the weights came from (a path or model name), for the error message.

    Returns:
        ``module``.

    Raises:
        WeightsError: missing or unexpected keys, or shape mismatches (the weights are for another architecture).
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k} {_shape(state_dict[k])} (model {_shape(v)})"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({_list(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({_list(unexpected)})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches ({_list(mismatched)})")
    if problems:
        raise WeightsError(
            f"weights from {source} do not fit {type(module).__name__} (another architecture?): " + "; ".join(problems)
        )
    try:
        module.load_state_dict(dict(state_dict), strict=True)
    except RuntimeError as exc:  # dtype or other copy failures the checks above cannot foresee
        raise WeightsError(f"weights from {source} cannot be loaded: {_one_line(exc)}") from exc
    return module
