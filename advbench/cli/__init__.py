"""The ``advbench`` command line (typer); rendering with rich lives in :mod:`advbench.cli.render`."""
