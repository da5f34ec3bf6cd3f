"""What every ART adapter shares: ART's ``PyTorchClassifier`` over the harness oracle, NumPy in and out.

ART attacks take float32 NumPy arrays and an ART estimator. The estimator here wraps advbench's
:class:`~advbench.attacks.foreign.OracleModule`, so ART's ``predict``, ``loss_gradient`` and ``class_gradient``
are counted oracle queries at the attack's access level. ART predicts in mini-batches of ``batch_size``: the
adapters set it to the whole batch, so a prediction over the batch arrives in order and is charged row by
row; smaller calls (the samples still robust, candidate points) are charged by the kit's nearest-input rule.

ART's decision-based attacks (and SimBA) walk one sample at a time and start from random images far from
that sample, which the nearest-input rule would charge to the wrong sample. They run per sample here, each
against a face over that one sample (:meth:`ArtAttack.per_sample`), so every query lands on its own sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from advbench.attacks.foreign import ForeignAttack, OracleModule, library_import
from advbench.oracles import QueryBudgetExhausted

from advbench.attacks.foreign_catalog import adapted

from .catalog import ATTACKS

PLUGIN = "advbench-art"
DISTRIBUTION = "adversarial-robustness-toolbox==1.20.1"


def art_module(name: str) -> Any:
    """``art.<name>``, or one line saying how to install ART."""
    return library_import(f"art.{name}", DISTRIBUTION, PLUGIN)


class Probabilities(torch.nn.Module):
    """A score face's probabilities (it gives log-probabilities), for ART attacks that insist on [0, 1] scores."""

    def __init__(self, face: OracleModule) -> None:
        super().__init__()
        self.face = face

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.face(x).exp()


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """float32 NumPy copy of ``x`` (ART's working type)."""
    return x.detach().cpu().numpy().astype(np.float32)


def one_hot(labels: torch.Tensor, num_classes: int) -> np.ndarray:
    """float32 [B, K] one-hot rows of int64 ``labels`` [B] (ART's label format)."""
    return np.eye(num_classes, dtype=np.float32)[labels.detach().cpu().numpy()]


@dataclass
class ArtAttack(ForeignAttack):
    """Base class of the ART adapters: metadata from :mod:`advbench_art.catalog`, an ART estimator per call.

    Subclasses set ``name`` and implement :meth:`craft`, building the ART attack on :meth:`estimator`.
    """

    library: ClassVar[str] = "art"
    #: Cheap settings for advbench's contract kit (advbench.testing), beyond the option names it knows.
    contract_options: ClassVar[dict[str, Any]] = {}
    #: Score faces give log-probabilities (logit margins intact) unless the ART attack wants probabilities.
    wants_probabilities: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in vars(cls):  # an intermediate base (a family of attacks), not a registered attack
            return
        adapted(ATTACKS, cls.name)(cls)

    def estimator(self, face: OracleModule, x: torch.Tensor) -> Any:
        """ART's ``PyTorchClassifier`` over ``face`` for inputs shaped like ``x`` [B, C, H, W] in [0, 1]."""
        classification = art_module("estimators.classification")
        model = Probabilities(face) if face.access == "score" and self.wants_probabilities else face
        return classification.PyTorchClassifier(
            model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
            nb_classes=face.num_classes, clip_values=(0.0, 1.0),
            device_type="gpu" if x.device.type == "cuda" else "cpu")

    @staticmethod
    def labels(goal, num_classes: int) -> np.ndarray:
        """ART's ``y``: one-hot targets for a targeted run, else one-hot true labels (no extra prediction)."""
        return one_hot(goal.targets if goal.targeted else goal.labels, num_classes)

    def per_sample(self, model: OracleModule, x: torch.Tensor, goal,
                   generate: Callable[[Any, np.ndarray, np.ndarray, int], np.ndarray]) -> torch.Tensor:
        """Run ``generate(estimator, x_i, y_i, i)`` for each sample alone, its queries charged to it alone.

        A sample whose budget runs out keeps its best in-budget point; the others still run. When any sample
        ran out, the budget is re-raised at the end, so the harness returns every sample's best in-budget
        adversarial and reports the budget.

        Returns:
            [B, C, H, W] adversarials (x where ART returned nothing better).
        """
        y = self.labels(goal, model.num_classes)
        out, exhausted = x.clone(), False
        for i in range(x.shape[0]):
            face = OracleModule(model.oracle.subset(torch.tensor([i], device=x.device)), x[i:i + 1])
            try:
                adv = generate(self.estimator(face, x), to_numpy(x[i:i + 1]), y[i:i + 1], i)
            except QueryBudgetExhausted:
                exhausted = True
                continue
            out[i] = torch.as_tensor(adv, device=x.device, dtype=x.dtype)[0]
        if exhausted:
            raise QueryBudgetExhausted("a sample reached its query budget inside an ART attack")
        return out


def random_start(estimator: Any, x_i: np.ndarray, y_i: np.ndarray, targeted: bool, attempts: int) -> np.ndarray | None:
    """ART's own start for HSJ and Boundary, drawn from NumPy's global RNG (seeded per cell) instead of the
    unseeded ``np.random.RandomState()`` ART uses, so runs repeat: up to ``attempts`` uniform images, one
    counted query each, the first that meets the goal (``None`` if none did; ART then gives up too).

    Args:
        x_i: [1, C, H, W] the sample. y_i: [1, K] its one-hot label (target when ``targeted``).
    """
    goal = int(np.argmax(y_i[0]))
    for _ in range(attempts):
        candidate = np.random.uniform(0.0, 1.0, size=x_i.shape).astype(np.float32)
        label = int(np.argmax(estimator.predict(candidate, batch_size=1)[0]))
        if (label == goal) if targeted else (label != goal):
            return candidate
    return None


def norm_order(norm) -> float:
    """ART's ``norm`` argument for an advbench norm (``np.inf`` or 2)."""
    return np.inf if norm.value == "linf" else 2
