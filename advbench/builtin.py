"""advbench's own plugin: built-in attacks, datasets, the embedded zoo and the timm model source.

Registered through exactly the hooks a third-party plugin implements.
"""

from __future__ import annotations

from typing import Any

from .hookspecs import hookimpl


@hookimpl
def advbench_register_attacks(registrar) -> None:
    from .attacks import BUILTIN_ATTACKS

    for attack_cls in BUILTIN_ATTACKS:
        registrar.add(attack_cls.spec())


@hookimpl
def advbench_register_datasets(registrar) -> None:
    from .data import builtin_datasets
    from .data.noise import noise_datasets
    from .data.torchvision_sets import torchvision_datasets
    from .gan import gan_datasets

    for spec in [*builtin_datasets(), *noise_datasets(), *torchvision_datasets(), *gan_datasets()]:
        registrar.add(spec)


@hookimpl
def advbench_resolve_dataset(name: str, options: dict[str, Any]):
    # image folders: imagenet:PATH, imagefolder:PATH, or imagenet with --data-dir (their shape depends on
    # the img_size option, so they are resolved rather than registered)
    from .data.torchvision_sets import resolve_folder

    return resolve_folder(name, options)


@hookimpl
def advbench_register_models(registrar) -> None:
    from .models.zoo import zoo_dirs, zoo_specs
    from .specs import ModelSpec

    errors: list = []
    for directory in zoo_dirs():  # the shipped zoo, --zoo / $ADVBENCH_ZOO, the user zoo (~/.cache/advbench/zoo)
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
def advbench_resolve_model(name: str, options: dict[str, Any]):
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
