"""The plugin host a command uses (shared by the commands of :mod:`.app` and :mod:`.publishing`)."""

from __future__ import annotations

from pathlib import Path


def host(zoo: list[Path] | None = None):
    """The plugin host of this command: the process-wide one, or with ``--zoo`` a new host that also registers
    those directories (before the ``$ADVBENCH_ZOO`` ones). Warns once about plugins that failed to load."""
    from ..plugins import env_zoo_dirs, get_host, make_host, warn_failed
    from .render import note

    if zoo:
        for d in zoo:
            if not d.is_dir():
                from ..errors import ConfigError

                raise ConfigError(f"--zoo {d}: no such directory")
        host = make_host(zoo_dirs=[*zoo, *env_zoo_dirs()])
    else:
        host = get_host()
    warn_failed(host, note)
    return host


__all__ = ["host"]
