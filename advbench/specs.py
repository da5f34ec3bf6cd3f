"""The specs plugins register: what an attack, a model and a dataset are to the host.

Specs are small frozen records with a loader; nothing heavy happens until the loader is called, so
``advbench list`` stays fast however many plugins are installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from .attacks.base import Attack
    from .attacks.context import AttackContext

#: What an attack may see of the model (enforced by the oracle it is handed).
Access = Literal["gradient", "score", "label"]
ACCESS_LEVELS: tuple[str, ...] = ("gradient", "score", "label")


@dataclass(frozen=True)
class AttackSpec:
    """An attack family.

    Attributes:
        name: registry name, lower case (``"pgd"``).
        factory: called with the attack's options (keyword arguments) to build an :class:`Attack`.
        norms: norms the attack supports (``"linf"``, ``"l2"``); other cells are dropped from the plan.
        access: ``"gradient"``, ``"score"`` or ``"label"``: the oracle the harness hands it.
        description: one line for ``advbench list attacks``.
        reference: the paper, for the docs.
        minimum_norm: the attack finds each sample's smallest adversarial (run once with eps = inf; every
            eps cell is derived from it).
        min_classes: the fewest classes a model needs for this attack (DLR needs 3, targeted DLR 4); cells
            with smaller models are dropped from the plan with the reason.
        strength: rank among fixed-budget white-box attacks, higher = stronger (FGSM 10, PGD 40, the
            ensemble 100); 0 = unranked. The transferability matrix defaults to the strongest attack of a run,
            and the gradient-masking flags report a weaker attack beating a stronger one.
        uses_surrogate: crafts on another model (transfer, substitute): never feeds the transfer matrix.
        needs_fit: learns from the train split before attacking (universal perturbations, substitutes).
        fit_per_eps: whether that fit depends on eps (a universal perturbation does, a substitute does not).
        targeted: supports targeted goals (``--targeted``); the plan drops its cells from a targeted run.
        reports_fooling_rate: judged by its fooling rate (universal perturbations): the success board shows.
        wants_context: ``factory`` takes a ``context`` keyword (:class:`advbench.attacks.context.AttackContext`):
            composite attacks (ensemble, transfer, substitute) get the run's registry and model loader.
        alias: for a name that is not registered, the options it implies if this family claims it
            (``pgd@cnn.mnist5k_std`` is a transfer attack), else ``None``.
    """

    name: str
    factory: Callable[..., "Attack"]
    norms: tuple[str, ...] = ("linf", "l2")
    access: Access = "gradient"
    description: str = ""
    reference: str = ""
    minimum_norm: bool = False
    min_classes: int = 2
    strength: int = 0
    uses_surrogate: bool = False
    needs_fit: bool = False
    fit_per_eps: bool = True
    reports_fooling_rate: bool = False
    targeted: bool = True
    wants_context: bool = False
    alias: Callable[[str], "dict[str, Any] | None"] | None = field(default=None, compare=False)
    plugin: str = field(default="", compare=False)

    def build(self, context: "AttackContext | None" = None, **options: Any) -> "Attack":
        """The attack with ``options``; composite attacks also get the run's ``context``."""
        if self.wants_context:
            return self.factory(context=context, **options)
        return self.factory(**options)


@dataclass(frozen=True)
class ModelSpec:
    """A model source.

    Attributes:
        name: registry name in timm's ``arch.tag`` style (``"cnn.mnist5k_std"``).
        load: ``load(device=..., **options)`` returning an ``nn.Module`` that takes [B, C, H, W] inputs in
            [0, 1] and returns logits [B, num_classes] (normalisation inside, eval mode, frozen); use
            :class:`advbench.models.wrapper.ClassifierWrapper`.
        input_shape: (C, H, W) the model expects, when known without loading it; H and W may be ``None``
            for a model that takes any image size (convolutional nets).
        num_classes: number of output classes, when known without loading it.
        dataset: the dataset it was trained on, when it has one (for the default run and ``list``).
        description: one line for ``advbench list models``.
        card: the model card (recipe, seed, accuracy, sha256 ...), when there is one.
        preprocess: maps dataset images [N, C, H, W] in [0, 1] to this model's input [N, C', H', W'] in
            [0, 1] (resize, crop: never normalisation, which lives inside the model). Applied once before any
            attack, so eps is measured on the pixels the model sees. With it, the plan does not compare
            ``input_shape`` with the dataset's.
    """

    name: str
    load: Callable[..., "nn.Module"]
    input_shape: tuple[int | None, int | None, int | None] | None = None
    num_classes: int | None = None
    dataset: str | None = None
    description: str = ""
    tags: tuple[str, ...] = ()
    card: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    preprocess: Callable[["torch.Tensor"], "torch.Tensor"] | None = field(default=None, compare=False, hash=False)
    plugin: str = field(default="", compare=False)


@dataclass(frozen=True)
class DatasetSpec:
    """An image classification dataset.

    Attributes:
        name: registry name (``"mnist-5k"``).
        load: ``load(split, **options)`` returning ``(x, y)``: x float32 [N, C, H, W] in [0, 1], y int64 [N]
            (-1 for unlabelled images). Options come from the command line (``--data-dir`` gives
            ``data_dir``); a loader that takes none may ignore them by accepting only ``split``.
        num_classes: number of classes.
        input_shape: (C, H, W).
        splits: the split names ``load`` accepts.
        class_names: optional names of the classes.
    """

    name: str
    load: Callable[[str], "tuple[torch.Tensor, torch.Tensor]"]
    num_classes: int
    input_shape: tuple[int, int, int]
    splits: tuple[str, ...] = ("train", "test")
    description: str = ""
    class_names: tuple[str, ...] | None = None
    plugin: str = field(default="", compare=False)
