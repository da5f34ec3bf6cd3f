"""torchattacks' score-based attacks on the harness's score oracle.

The face returns log-probabilities: their differences are the logit margins and their log-softmax is themselves,
so torchattacks' margin and cross-entropy losses read exactly what they would read from logits, and no gradient
is available (the oracle's output is detached).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from advbench.attacks.foreign_catalog import adapted
from advbench.options import option

from .base import NORMS, TorchattacksAttack, finite_eps
from .catalog import ADAPTERS

_adapter = partial(adapted, ADAPTERS)
PIXEL_MAPPINGS = ("random", "similarity", "similarity_random", "distance", "distance_random")


@_adapter("ta.square")
@dataclass
class Square(TorchattacksAttack):
    """``torchattacks.Square``: random search with square-shaped updates (linf, l2)."""

    max_queries: int = option(5000, ge=1, help="queries per sample and restart (torchattacks' n_queries)")
    n_restarts: int = option(1, ge=1, help="restarts")
    p_init: float = option(0.8, gt=0, le=1, help="initial fraction of pixels changed by a square")
    loss: str = option("margin", choices=("margin", "ce"), help="the loss the search lowers")
    resc_schedule: bool = option(True, help="rescale p's schedule to n_queries")
    seed: int = option(0, ge=0, help="torchattacks' seed")

    def build(self, ta, model, threat):
        return ta.Square(model, norm=NORMS[threat.norm.value], eps=finite_eps(threat), n_queries=self.max_queries,
                         n_restarts=self.n_restarts, p_init=self.p_init, loss=self.loss,
                         resc_schedule=self.resc_schedule, seed=self.seed)


@_adapter("ta.spsa")
@dataclass
class SPSA(TorchattacksAttack):
    """``torchattacks.SPSA``: Adam on a Rademacher finite-difference gradient of the margin loss, linf."""

    delta: float = option(0.01, gt=0, help="finite-difference step")
    lr: float = option(0.01, gt=0, help="Adam's learning rate")
    nb_iter: int = option(1, ge=1, help="iterations")
    nb_sample: int = option(128, ge=1, help="gradient samples per iteration (two queries each)")
    max_batch_size: int = option(64, ge=1, help="samples evaluated per query batch")

    def build(self, ta, model, threat):
        return ta.SPSA(model, eps=finite_eps(threat), delta=self.delta, lr=self.lr, nb_iter=self.nb_iter,
                       nb_sample=self.nb_sample, max_batch_size=self.max_batch_size)


@_adapter("ta.onepixel")
@dataclass
class OnePixel(TorchattacksAttack):
    """``torchattacks.OnePixel``: differential evolution over ``pixels`` (position, value) pairs per image."""

    per_sample = True  # it evolves a population of one image's candidates: charge them to that image

    pixels: int = option(1, ge=1, help="pixels changed")
    steps: int = option(10, ge=1, help="differential-evolution generations")
    popsize: int = option(10, ge=1, help="population multiplier")
    inf_batch: int = option(128, ge=1, help="candidates per query batch")

    def build(self, ta, model, threat):
        return ta.OnePixel(model, pixels=self.pixels, steps=self.steps, popsize=self.popsize, inf_batch=self.inf_batch)


@_adapter("ta.pixle")
@dataclass
class Pixle(TorchattacksAttack):
    """``torchattacks.Pixle``: random search that copies patches of pixels elsewhere in the image."""

    per_sample = True

    x_dimensions: str = option("2,10", help="patch width range MIN,MAX (integers: pixels; floats: image fraction)")
    y_dimensions: str = option("2,10", help="patch height range MIN,MAX")
    pixel_mapping: str = option("random", choices=PIXEL_MAPPINGS, help="how destinations are chosen")
    restarts: int = option(20, ge=0, help="restarts")
    max_iterations: int = option(10, ge=1, help="patches tried per restart")
    update_each_iteration: bool = option(False, help="keep improving patches across iterations")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("x_dimensions", "y_dimensions"):
            try:
                _dimensions(getattr(self, name))
            except ValueError:
                raise self.invalid_option(name, "MIN,MAX (two integers, or two fractions in [0, 1])") from None

    def build(self, ta, model, threat):
        return ta.Pixle(model, x_dimensions=_dimensions(self.x_dimensions), y_dimensions=_dimensions(self.y_dimensions),
                        pixel_mapping=self.pixel_mapping, restarts=self.restarts, max_iterations=self.max_iterations,
                        update_each_iteration=self.update_each_iteration)


def _dimensions(text: str) -> tuple:
    """``"2,10"`` -> ``(2, 10)``; ``"0.1,0.2"`` -> ``(0.1, 0.2)`` (Pixle's patch-size bounds)."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 2:
        raise ValueError(text)
    values = tuple(int(p) if p.lstrip("-").isdigit() else float(p) for p in parts)
    if any(v <= 0 if isinstance(v, int) else not 0 <= v <= 1 for v in values):
        raise ValueError(text)
    return values
