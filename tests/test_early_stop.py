"""Early stop's compaction (:mod:`advbench.attacks.active`): broken rows leave an iterative attack's batch,
which saves queries and changes no sample's result."""

import pytest
import torch

import advbench.attacks.active as active
from advbench.attacks import PGD
from advbench.attacks.apgd import APGDCE
from advbench.attacks.bim import BIM
from advbench.attacks.mifgsm import MIFGSM
from advbench.threat import Norm
from tests.helpers import harness


@pytest.mark.parametrize("attack", [
    PGD(steps=12), PGD(steps=12, restarts=2), BIM(steps=12), MIFGSM(steps=12), APGDCE(steps=40),
], ids=["pgd", "pgd-restarts", "bim", "mifgsm", "apgd_ce"])
@pytest.mark.parametrize("norm,eps", [(Norm.LINF, 0.1), (Norm.L2, 1.5)])
def test_dropping_broken_rows_changes_no_result(cnn, mnist_test, monkeypatch, attack, norm, eps):
    x, y = mnist_test[0][:48], mnist_test[1][:48]
    dropped = harness(attack, cnn, x, y, norm, eps)
    monkeypatch.setattr(active, "COMPACT_EVERY", 10**9)  # never compact: every row runs every step
    kept = harness(attack, cnn, x, y, norm, eps)
    # the samples no step broke run every step either way: bit-identical; the others too (row-wise math)
    unbroken = ~kept.success
    assert unbroken.any() and kept.success.any()
    assert torch.equal(dropped.x_adv[unbroken], kept.x_adv[unbroken])
    assert torch.equal(dropped.x_adv, kept.x_adv) and torch.equal(dropped.success, kept.success)
    # and the broken ones stopped costing queries
    assert int(dropped.n_forward.sum()) < int(kept.n_forward.sum())
    assert torch.equal(dropped.n_forward[unbroken], kept.n_forward[unbroken])
