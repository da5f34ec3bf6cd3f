"""``python -m advbench ...``: the same commands as the ``advbench`` script."""

from .cli.app import main

if __name__ == "__main__":
    main()
