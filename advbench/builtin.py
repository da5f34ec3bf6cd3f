"""advbench's own plugin: built-in attacks, datasets, the model zoos and the timm model source.

Registered through exactly the hooks a third-party plugin implements. It is an object, one per host, built with
that host's extra zoo directories (``--zoo``), so nothing reaches it through the environment. Registration is
cheap: attacks are lazy specs (:mod:`advbench.attacks.catalog`), models are read off their cards, and no hook
here imports torch until a spec is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from .hookspecs import hookimpl


class BuiltinPlugin:
    """The built-in plugin of one host.

    Args:
        zoo_dirs: extra model-zoo directories, registered after the shipped zoo and before the user zoo.
    """

    def __init__(self, zoo_dirs: Iterable[str | Path] = ()) -> None:
        self.extra_zoo_dirs: tuple[Path, ...] = tuple(Path(d) for d in zoo_dirs)

    def zoo_dirs(self) -> list[Path]:
        """The zoo directories that exist now: the shipped zoo, the extra ones, then the user zoo."""
        from .models.zoo import zoo_dirs

        return zoo_dirs(self.extra_zoo_dirs)

    @hookimpl
    def advbench_register_attacks(self, registrar) -> None:
        from .attacks.catalog import BUILTIN

        for spec in BUILTIN:
            registrar.add(spec)

    @hookimpl
    def advbench_register_datasets(self, registrar) -> None:
        from .data import builtin_datasets
        from .data.noise import noise_datasets
        from .data.torchvision_sets import torchvision_datasets
        from .gan.dataset import gan_datasets

        gan = gan_datasets(self.zoo_dirs)  # finds its generator in this host's zoos, when it is loaded
        for spec in [*builtin_datasets(), *noise_datasets(), *torchvision_datasets(), *gan]:
            registrar.add(spec)

    @hookimpl
    def advbench_resolve_dataset(self, name: str, options: dict[str, Any]):
        # image folders: imagenet:PATH, imagefolder:PATH, or imagenet with --data-dir (their shape depends on
        # the img_size option, so they are resolved rather than registered)
        from .data.torchvision_sets import resolve_folder

        return resolve_folder(name, options)

    @hookimpl
    def advbench_register_models(self, registrar) -> None:
        from .models.zoo import zoo_specs
        from .specs import ModelSpec

        errors: list = []
        for directory in self.zoo_dirs():
            for spec in zoo_specs(directory, errors=errors):
                registrar.add(spec)
        # A broken card stays visible under its file name: asking for that model reports the real problem
        # (bad card, missing weights) instead of "unknown model".
        for exc in errors:
            name = exc.card_path.stem

            def load(*_, _exc=exc, **__):
                raise _exc

            registrar.add(ModelSpec(name=name, load=load, description=f"BROKEN: {exc}"))

    @hookimpl
    def advbench_resolve_model(self, name: str, options: dict[str, Any]):
        # py:package.module:factory and file:PATH (--arch): custom models
        if name.startswith(("py:", "file:")):
            from .models.custom import resolve as resolve_custom

            return resolve_custom(name, options)
        if "." in name and name.split(".", 1)[0] in {"cnn", "linear"}:
            return None  # a zoo-style name that is not registered: not a timm architecture either
        if ":" in name and not name.startswith(("timm:", "local-dir:", "hf-hub:")):
            return None  # another plugin's scheme (robustbench:...): never a timm name
        # timm: plain architecture names, timm:NAME, local-dir:PATH, hf-hub:org/name
        from .models.timm_source import resolve

        return resolve(name, options)
