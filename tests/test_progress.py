"""Progress per step (issue 12): an iterative attack reports each oracle call against the calls it expects,
so the CLI's bar moves during a batch and shows an ETA."""

from __future__ import annotations

from advbench.engine.config import build_run_config
from advbench.engine.executor import Reporter, execute
from advbench.plugins import get_host


class Recording(Reporter):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def cell_started(self, cell, n_attacked: int) -> None:
        self.events.append(("cell", cell.attack, n_attacked))

    def expect_queries(self, total) -> None:
        self.events.append(("expect", total))

    def query(self) -> None:
        if self.events[-1][0] == "query":
            self.events[-1] = ("query", self.events[-1][1] + 1)
        else:
            self.events.append(("query", 1))

    def batch_done(self, n: int) -> None:
        self.events.append(("batch", n))


def test_iterative_attacks_report_every_step_against_their_expected_count():
    config = build_run_config("cnn.mnist5k_std", "pgd,fgsm,deepfool", [0.1], n_samples=30, batch_size=12,
                              device="cpu", sanity_checks=False, attack_options={"pgd": {"steps": 7, "restarts": 2,
                                                                                          "early_stop": False}})
    reporter = Recording()
    execute(config, get_host(), reporter)
    cells = [i for i, e in enumerate(reporter.events) if e[0] == "cell"]
    pgd = reporter.events[cells[0]: cells[1]]
    attacked = pgd[0][2]
    batches = -(-attacked // 12)
    expected = (7 * 2 + 1) * batches  # steps x restarts, and the first run's check of its last iterate
    assert pgd[1] == ("expect", expected)  # announced before any step runs
    steps = sum(e[1] for e in pgd if e[0] == "query")
    # every step of the first run; restart 2 only where some point is still unbroken
    assert 8 * batches <= steps <= expected
    assert [e for e in pgd if e[0] == "batch"] == [("batch", min(12, attacked - 12 * b)) for b in range(batches)]
    fgsm = reporter.events[cells[1]: cells[2]]
    assert fgsm[1] == ("expect", batches) and sum(e[1] for e in fgsm if e[0] == "query") == batches
    deepfool = reporter.events[cells[2]:]
    assert deepfool[1] == ("expect", None)  # unknown in advance: an indeterminate bar, no invented ETA
