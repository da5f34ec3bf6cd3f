"""The template a third-party plugin copies: run advbench's contract kit on your own attack.

``check_attack`` runs the attack through advbench's production harness on a tiny shipped model, for every
norm it declares, untargeted and targeted and under a small ``--queries`` budget, and raises ``ContractViolation`` naming the rule it broke.
"""

import pytest

from advbench.plugins import make_host
from advbench.testing import check_attack, run_batch


@pytest.fixture(scope="module")
def host():
    """A host with this plugin loaded through its real entry point (as `advbench` finds it when installed)."""
    host = make_host(autoload=True)
    if "noise" not in host.registry.attacks:
        pytest.skip("advbench-noise is not installed (pip install -e plugins/advbench-noise)")
    return host


def test_noise_passes_the_contract_kit(host):
    report = check_attack("noise", host)
    assert report.passed == ["linf untargeted", "linf targeted", "linf under a budget of 3 queries",
                             "l2 untargeted", "l2 targeted", "l2 under a budget of 3 queries"]


def test_noise_respects_its_query_cap(host):
    import advbench
    from advbench.testing import build_attack

    model = advbench.load_model("linear.mnist5k_std")
    x, y = advbench.load_dataset("mnist-5k", "test")
    verdict = run_batch(build_attack("noise", host, max_queries=3), model, x[::100], y[::100], "linf", 0.1)
    assert int(verdict.n_forward.max()) <= 3 and int(verdict.n_backward.sum()) == 0
