"""The pieces adapter plugins share beyond the oracle face: seeded global RNGs and the adapter table."""

import random
from dataclasses import dataclass

import numpy as np
import torch

from advbench.attacks.catalog import spec_drift
from advbench.attacks.foreign import ForeignAttack, library_rng
from advbench.attacks.foreign_catalog import Adapted, adapted, adapter_specs

from .helpers import harness
from .test_foreign import _batch, _model

TABLE = {"test.globalnoise": Adapted("test_foreign_adapters:GlobalNoise", "noise", "noise from the global RNGs",
                                     "none", access="score", targeted=False)}


@adapted(TABLE, "test.globalnoise")
@dataclass
class GlobalNoise(ForeignAttack):
    """A stand-in library attack that draws from torch's, NumPy's and Python's global RNGs."""

    library = "test"

    def craft(self, model, x, goal, threat):
        model(x)
        noise = torch.rand(x.shape) + float(np.random.rand()) + random.random()
        return (x + 0.01 * noise).clamp(0, 1)


def test_library_rng_is_seeded_by_the_generator_and_restores_the_callers_state():
    torch.manual_seed(123)
    np.random.seed(123)
    before = (torch.random.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    draws = []
    for seed in (7, 7, 8):
        with library_rng(torch.Generator().manual_seed(seed), torch.device("cpu")):
            draws.append((torch.rand(3), np.random.rand(), random.random()))
    assert torch.equal(draws[0][0], draws[1][0]) and draws[0][1:] == draws[1][1:]
    assert not torch.equal(draws[0][0], draws[2][0]) and draws[0][1] != draws[2][1]
    assert torch.equal(torch.random.get_rng_state(), before[0])
    assert (np.random.get_state()[1] == before[1]).all() and random.getstate() == before[2]


def test_a_foreign_attack_on_the_global_rngs_is_reproducible_with_the_same_generator():
    model, x = _model(), _batch()
    y = model(x).argmax(1).detach()
    runs = [harness(GlobalNoise(), model, x, y, "linf", 0.05, num_classes=4, seed=s).x_adv for s in (0, 0, 1)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_the_adapter_table_gives_the_class_and_its_lazy_spec_the_same_metadata():
    (spec,) = adapter_specs("tests", TABLE)
    assert GlobalNoise.name == "test.globalnoise" and GlobalNoise.algorithm == "noise"
    assert GlobalNoise.access == "score" and GlobalNoise.supports_targeted is False
    assert spec.factory.target == "tests.test_foreign_adapters:GlobalNoise" and spec_drift(spec) == {}
