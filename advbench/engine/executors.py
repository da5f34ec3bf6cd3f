"""Which executor runs a plan: ``--executor local`` (:func:`~.executor.run_locally`) or ``ray``
(:class:`~.ray_executor.RayExecutor`, imported only when asked for: Ray is an optional extra)."""

from __future__ import annotations

from ..errors import ConfigError
from .executor import Executor

EXECUTORS = ("local", "ray")


def choose_executor(name: str = "local", address: str | None = None, workers: int | None = None) -> Executor | None:
    """The executor ``--executor NAME`` names (``None``: the local one), checked before any compute.

    Raises:
        ConfigError: an unknown name; ``--address``/``--workers`` without ``--executor ray``; ``ray`` without
            Ray installed (one line with the install command).
    """
    if name not in EXECUTORS:
        raise ConfigError(f"unknown --executor {name!r}: use local or ray")
    if name == "local":
        if address is not None or workers is not None:
            raise ConfigError(f"{'--address' if address is not None else '--workers'} is for --executor ray")
        return None
    from .ray_executor import RayExecutor, import_ray

    import_ray()
    return RayExecutor(address=address, workers=workers)


__all__ = ["EXECUTORS", "choose_executor"]
