"""Exceptions that carry a one-line, user-facing message.

The CLI turns an :class:`AdvbenchError` into ``error: <message>`` on stderr and exit status 1; any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class AdvbenchError(Exception):
    """A user-facing error: bad input, missing weights, a broken plugin. The message is one line."""


class RegistryError(AdvbenchError):
    """Unknown or duplicate attack, model or dataset name."""


class ConfigError(AdvbenchError):
    """An invalid option value (epsilon, norm, sample count, ...)."""


class WeightsError(AdvbenchError):
    """Weights that are missing, corrupt, truncated, unsafe or for another architecture."""


class PluginError(AdvbenchError):
    """A plugin that failed to load or that implements a hook that does not exist."""


class AttackError(AdvbenchError):
    """An attack returned something the harness cannot accept (None, NaN, a wrong shape)."""


class CellFailed(AdvbenchError):
    """One (model, attack, norm, eps) cell of a run failed; the other cells still ran."""


class StorageError(AdvbenchError):
    """A run directory could not be written (full disk, permissions); what was written before is intact."""


class ModelRefused(AdvbenchError):
    """A model whose clean outputs cannot be scored (NaN or infinite logits, a wrong or batch-dependent number
    of outputs): its cells fail with this message before any attack runs, and the run goes on."""
