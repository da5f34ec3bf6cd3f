"""Cell fingerprints: a digest of everything that produced a cell's rows, so ``--resume`` and ``advbench
leaderboard`` reuse or combine only what belongs together.

A fingerprint has three parts, each a plain JSON dictionary of *components*:

* ``run``: shared by every cell of a run (dataset, split, the digest of the samples, seed, batch size, targeted
  mode, min-confidence, query budget, versions of advbench and torch, device type, the attacks' precision,
  ``--compile`` and the channels-last setting);
* ``model``: the model's name, its options, a digest of its parameters and buffers (whatever file or hub they
  came from), a digest of the inputs it sees (after its preprocessing) and of its target classes, the version
  of the plugin that provides it;
* ``attack``: the attack's name, its full options (defaults included), the version of its plugin;

plus the cell's own (norm, eps; ``carry_from``: the fingerprint of the smaller-eps cell whose broken samples
this cell carried over, see :mod:`advbench.engine.carry`; ``batch_size``: the size a CUDA out-of-memory
back-off ran it with, only where that differs from the run's). The cell fingerprint is the digest of all of it; the run, model and attack
digests are kept beside it so a reader can tell *which* part differs (and :func:`advbench.runcheck.explain`
says how).

Device *type* is part of the run (CPU and CUDA kernels round differently); the thread count is not (it can
reorder CPU reductions in the last bits, which does not move a judged verdict in practice).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping

import torch

#: Bumped when the meaning of a component changes, so old fingerprints never match new ones by accident
#: (2: eps carry-over and the ``carried`` column).
SCHEMA_VERSION = 2


def digest_json(data: Any) -> str:
    """sha256 (hex) of ``data`` as canonical JSON (sorted keys; non-JSON values by ``str``)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def tensor_digest(*tensors: torch.Tensor | None) -> str:
    """sha256 (hex) over the dtype, shape and bytes of each tensor (``None`` counts as a marker)."""
    h = hashlib.sha256()
    for t in tensors:
        if t is None:
            h.update(b"none;")
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)};".encode())
        if t.numel():  # the array's buffer itself: hashing n images makes no copy of them
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def module_digest(module: torch.nn.Module) -> str:
    """sha256 (hex) of a module's parameters and buffers, by name (the weights that actually loaded: the same
    digest whether they came from a zoo file, ``--weights``, a hub cache or a seeded initialisation)."""
    h = hashlib.sha256(type(module).__qualname__.encode())
    for name, value in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor_digest(value).encode() if isinstance(value, torch.Tensor) else repr(value).encode())
    return h.hexdigest()


@dataclass(frozen=True)
class ModelDigests:
    """What a model contributes to its cells' fingerprints, computed where the model is loaded (a Ray worker
    sends these few strings to the driver, which fingerprints and records the cells).

    Attributes:
        weights: :func:`module_digest` of the loaded module. inputs: :func:`tensor_digest` of the inputs it is
            attacked on (after its preprocessing). targets: :func:`tensor_digest` of its target classes (or ``None``).
    """

    weights: str
    inputs: str
    targets: str


def model_digests(module: torch.nn.Module, x: torch.Tensor, targets: torch.Tensor | None) -> ModelDigests:
    """The digests of a loaded ``module`` attacked on x [n, C, H, W] with ``targets`` [n] (or ``None``)."""
    return ModelDigests(module_digest(module), tensor_digest(x), tensor_digest(targets))


@dataclass(frozen=True)
class Fingerprint:
    """The identity of one cell's result.

    Attributes:
        value: the cell's digest (hex). run, model, attack: digests of those parts alone.
        components: ``{"run": {...}, "model": {...}, "attack": {...}, "cell": {...}}`` (what was hashed).
    """

    value: str
    run: str
    model: str
    attack: str
    components: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"fingerprint": self.value, "run": self.run, "model": self.model, "attack": self.attack,
                "components": self.components}


def run_components(config, samples: str, versions: Mapping[str, str]) -> dict[str, Any]:
    """What every cell of a run shares.

    Args:
        config: the :class:`~advbench.engine.config.RunConfig`. samples: :func:`tensor_digest` of the sample ids,
            images and labels. versions: ``{"advbench": ..., "torch": ...}``.
    """
    return {
        "schema": SCHEMA_VERSION, "dataset": config.dataset, "split": config.split, "samples": samples,
        "n_samples": config.n_samples, "seed": config.seed, "batch_size": config.batch_size,
        "targeted": config.targeted, "min_confidence": config.min_confidence, "queries": config.queries,
        "device": torch.device(config.device).type, "precision": config.precision, "compile": config.compile,
        "channels_last": config.channels_last, **{f"{k}_version": v for k, v in versions.items()},
    }


def model_components(name: str, options: Mapping[str, Any], weights: str, inputs: str, targets: str,
                     plugin: str, plugin_version: str) -> dict[str, Any]:
    """A model's part. ``weights``: :func:`module_digest`; ``inputs``/``targets``: :func:`tensor_digest` of what
    it is attacked on. A ``weights`` path option is left out (the digest of what loaded stands for it)."""
    opts = {k: v for k, v in options.items() if k != "weights"}
    return {"name": name, "options": opts, "weights": weights, "inputs": inputs, "targets": targets,
            "plugin": plugin, "plugin_version": plugin_version}


def attack_components(name: str, options: Mapping[str, Any], plugin: str, plugin_version: str) -> dict[str, Any]:
    """An attack's part: its name, every option it ran with (defaults included) and its plugin's version."""
    return {"name": name, "options": dict(options), "plugin": plugin, "plugin_version": plugin_version}


def fingerprint(run: Mapping[str, Any], model: Mapping[str, Any], attack: Mapping[str, Any], norm: str,
                eps: float, carry_from: str | None = None, batch_size: int | None = None) -> Fingerprint:
    """The fingerprint of the cell (``model``, ``attack``, ``norm``, ``eps``) of the run ``run``; ``carry_from``:
    the fingerprint of the cell it carries broken samples over from; ``batch_size``: the size it ran with
    when an out-of-memory back-off made that differ from the run's."""
    cell: dict[str, Any] = {"norm": norm, "eps": repr(float(eps)), "carry_from": carry_from}
    if batch_size is not None:
        cell["batch_size"] = int(batch_size)
    components = {"run": dict(run), "model": dict(model), "attack": dict(attack), "cell": cell}
    components = json.loads(json.dumps(components, default=str))  # what is compared later is what was stored
    return Fingerprint(digest_json(components), digest_json(components["run"]), digest_json(components["model"]),
                       digest_json(components["attack"]), components)


__all__ = ["Fingerprint", "ModelDigests", "SCHEMA_VERSION", "attack_components", "digest_json", "fingerprint",
           "model_components", "model_digests", "module_digest", "run_components", "tensor_digest"]
