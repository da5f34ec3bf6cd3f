"""The harness contract (advbench/engine/harness.py): the one set of rules every path runs."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

import advbench
from advbench.attacks.base import Attack
from advbench.engine.config import RunConfig
from advbench.engine.executor import execute
from advbench.errors import AttackError
from advbench.plugins import make_host
from advbench.testing import run_batch


@dataclass
class Recording(Attack):
    """Returns x (or a chosen bad value) and records the batch it was handed."""

    name = "recording"
    access = "label"
    output: str = "identity"

    def run(self, oracle, x, goal, threat, generator):
        self.__dict__.setdefault("seen", []).append(x.shape[0])
        oracle(x)  # one counted label query per sample it was handed
        return {"identity": x, "nan": x * float("nan"), "none": None, "shape": x[:, :, :-1]}[self.output]


@pytest.fixture(scope="module")
def batch():
    model = advbench.load_model("linear.mnist5k_std")
    x, y = advbench.load_dataset("mnist-5k", "test")
    x, y = x[::25], y[::25]  # 40 images spread over the class-sorted split
    with torch.no_grad():
        clean = model(x).argmax(1)
    assert (clean != y).any() and (clean == y).any()
    return model, x, y, clean


def test_misclassified_samples_are_never_attacked_nor_counted(batch):
    model, x, y, clean = batch
    attack = Recording()
    verdict = run_batch(attack, model, x, y, "linf", 0.1)
    correct = clean == y
    assert attack.seen == [int(correct.sum())]
    assert torch.equal(verdict.attacked, correct)
    assert verdict.n_forward[~correct].eq(0).all() and verdict.n_forward[correct].eq(1).all()
    assert not verdict.success.any()
    assert torch.equal(verdict.adv_pred, clean)  # unchanged samples keep their clean logits


def test_an_identity_attack_never_succeeds_on_unlabelled_samples(batch):
    """An unlabelled sample (label -1) is broken only once its prediction leaves the clean one."""
    model, x, _, clean = batch
    unlabelled = torch.full_like(clean, -1)
    verdict = run_batch(Recording(), model, x, unlabelled, "linf", 0.1)
    assert verdict.attacked.all() and not verdict.success.any()
    targets = (clean + 1) % 10  # and targeted: only the target counts
    assert not run_batch(Recording(), model, x, unlabelled, "linf", 0.1, targets=targets).success.any()


@pytest.mark.parametrize("output,message", [("nan", "NaN"), ("none", "None"), ("shape", "shape")])
def test_a_bad_output_is_an_error_never_a_success(batch, output, message):
    model, x, y, _ = batch
    with pytest.raises(AttackError, match=message):
        run_batch(Recording(output=output), model, x, y, "linf", 0.1)


class _Plugin:
    @advbench.hookimpl
    def advbench_register_attacks(self, registrar):
        registrar.add(Recording.spec())


def test_the_engine_applies_the_same_rules(tmp_path):
    """Through a whole run (noise dataset: every label -1): identity never succeeds, every sample is attacked."""
    host = make_host(autoload=False, extra=[("recording", _Plugin())])
    config = RunConfig(models=("linear.mnist5k_std",), attacks=("recording",), eps=(0.1,), dataset="noise",
                       n_samples=20, sanity_checks=False)
    rows = execute(config, host).rows
    assert len(rows) == 20 and not rows.success.any() and rows.n_forward.eq(1).all()
    labelled = execute(RunConfig(models=("linear.mnist5k_std",), attacks=("recording",), eps=(0.1,), n_samples=40,
                                 sanity_checks=False), host).rows
    assert (labelled.n_forward == labelled.clean_correct.astype(int)).all() and not labelled.success.any()
