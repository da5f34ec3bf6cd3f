"""Speed settings that must never change a verdict: bf16 attacks re-judged in float32, torch.compile's fallback,
channels-last, the batch halved on CUDA out-of-memory, and the intra-op thread count."""

import pandas as pd
import pytest
import torch
from torch import nn

import advbench
from advbench.attacks import PGD
from advbench.engine import accel, threads
from advbench.engine.accel import Acceleration, wants_channels_last
from advbench.engine.config import RunConfig
from advbench.engine.fingerprint import module_digest
from advbench.engine.harness import Harness
from advbench.engine.session import accelerate
from advbench.errors import ConfigError
from advbench.threat import Norm, ThreatModel


# -- bf16 -------------------------------------------------------------------------------------------------

def test_bf16_attacks_run_under_autocast_and_every_success_passes_float32(cnn, mnist_test):
    x, y = mnist_test[0][:64], mnist_test[1][:64]
    seen = []
    handle = cnn.register_forward_pre_hook(lambda m, a: seen.append(torch.is_autocast_enabled("cpu")))
    try:
        verdict = Harness(cnn, 10, precision="bf16").attack(
            PGD(steps=5), x, y, ThreatModel(Norm.LINF, 0.1), torch.Generator().manual_seed(0))
    finally:
        handle.remove()
    assert any(seen) and not all(seen)  # the attack's passes in bf16, the harness's judging not
    with torch.no_grad():
        fp32 = cnn(verdict.x_adv).argmax(dim=1)
    assert verdict.success.any()
    assert (fp32[verdict.success] != y[verdict.success]).all()  # every recorded success holds in float32
    assert len(verdict.extras["bf16_rejected"]) == 64


class _LiesUnderAutocast(torch.nn.Module):
    """The model in float32; under autocast "class 0" whatever the input (a tiny input gradient that brightens
    every pixel), so a bf16 attack reports successes that float32 mostly refuses."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled("cpu"):
            zero = torch.nn.functional.one_hot(torch.zeros(x.shape[0], dtype=torch.long), 10).float()
            return zero * (10 + 1e-3 * x.flatten(1).sum(1, keepdim=True))
        return self.model(x)


def test_a_bf16_success_float32_refuses_is_attacked_again_in_float32(cnn, mnist_test):
    from advbench.attacks.fgsm import FGSM

    keep = (mnist_test[1] != 0).nonzero().squeeze(1)  # class 0 is the lie's answer: not adversarial for those
    x, y = mnist_test[0][keep], mnist_test[1][keep]
    model = _LiesUnderAutocast(cnn)
    threat = ThreatModel(Norm.LINF, 0.2)
    low = Harness(model, 10, precision="bf16").attack(FGSM(), x, y, threat, torch.Generator().manual_seed(0))
    ref = Harness(model, 10).attack(FGSM(), x, y, threat, torch.Generator().manual_seed(0))
    rejected = torch.tensor(low.extras["bf16_rejected"])
    kept = low.attacked & ~rejected
    assert rejected.any()
    # refused samples: attacked again in float32, so their verdict is float32 FGSM's, both tries counted
    assert torch.allclose(low.x_adv[rejected], ref.x_adv[rejected]) and low.success[rejected].equal(ref.success[rejected])
    assert (low.n_backward[rejected] == 2 * ref.n_backward[rejected]).all()
    # the others: the bf16 step's success, which float32 confirmed, one try
    assert low.success[kept].all() and (low.n_backward[kept] == ref.n_backward[kept]).all()


def test_a_bf16_ensemble_judges_members_in_float32_and_passes_refused_samples_on(cnn, mnist_test, monkeypatch):
    # Under autocast the lying model says "class 0" for everything, so FGSM's bf16 candidates look adversarial
    # in bf16 and float32 refuses most. They must not leave the cascade: PGD (the next member, still in bf16)
    # attacks them, and what no member breaks in float32 is attacked again in float32 by the harness.
    from advbench.engine import harness as harness_module, resolve
    from advbench.plugins import make_host
    from advbench.testing import build_attack

    keep = (mnist_test[1] != 0).nonzero().squeeze(1)[:48]
    x, y = mnist_test[0][keep], mnist_test[1][keep]
    model = _LiesUnderAutocast(cnn)
    calls = []
    member = harness_module.run_member

    def spy(attack, oracle, xs, goal, threat, generator):
        verdict = member(attack, oracle, xs, goal, threat, generator)
        calls.append((attack.name, xs.shape[0], oracle._judge is not None, verdict))
        return verdict

    monkeypatch.setattr(resolve, "run_member", spy)  # what the run's attack context hands the ensemble
    options = dict(members="fgsm,pgd", member_options="pgd.steps=3;pgd.random_start=false")  # deterministic
    ens = build_attack("ensemble", make_host(autoload=False), **options)
    threat = ThreatModel(Norm.LINF, 0.2)
    low = Harness(model, 10, precision="bf16").attack(ens, x, y, threat, torch.Generator().manual_seed(0))
    bf16_calls = [c for c in calls if c[2]]
    assert [c[0] for c in bf16_calls] == ["fgsm", "pgd"]
    fgsm_verdict = bf16_calls[0][3]
    assert fgsm_verdict.refused.any()  # float32 refused some bf16 "successes"...
    assert not (fgsm_verdict.refused & fgsm_verdict.success).any()
    assert bf16_calls[1][1] == int((~fgsm_verdict.success).sum())  # ...and they went on to PGD in bf16
    with torch.no_grad():
        fp32_adv = cnn(low.x_adv).argmax(1) != y
    assert torch.equal(low.success, fp32_adv & low.attacked)  # every verdict holds in float32
    broken_by = low.extras["broken_by"]
    assert all(b != "" for b, s in zip(broken_by, low.success.tolist()) if s)
    # the cascade's float32 judge and the harness agree: what it broke in bf16 is not attacked again
    rejected = torch.tensor(low.extras["bf16_rejected"])
    first_round = [c for c in calls if c[2]]
    broke = int(sum(int(c[3].success.sum()) for c in first_round))
    assert int((low.attacked & ~rejected & low.success).sum()) == broke
    # the samples no bf16 member broke kept a refused candidate, so the harness attacked them again in float32:
    # their verdicts are float32's ensemble's (deterministic members; one borderline flip allowed)
    ref = Harness(model, 10).attack(build_attack("ensemble", make_host(autoload=False), **options), x, y, threat,
                                    torch.Generator().manual_seed(0))
    assert rejected.sum() > 0 and ref.success[rejected].any()
    assert int((low.success[rejected] != ref.success[rejected]).sum()) <= 1


class _FavoursTheLabelUnderAutocast(torch.nn.Module):
    """The model in float32; under autocast the same logits plus 3 on class ``label`` (every sample's label here):
    margins keep their order, but bf16 calls far fewer points adversarial than float32 does."""

    def __init__(self, model: torch.nn.Module, label: int) -> None:
        super().__init__()
        self.model, self.label = model, label

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        if torch.is_autocast_enabled("cpu"):
            logits = logits + 3.0 * torch.nn.functional.one_hot(torch.tensor(self.label), logits.shape[1])
        return logits


def test_a_bf16_run_takes_a_queried_point_float32_calls_adversarial_that_the_output_passed_by(cnn, mnist_test):
    # The attack queries known adversarials (found by float32 PGD), then returns x itself: bf16 never called the
    # queried points adversarial, so only the lowest-margin point, judged in float32, can record the success.
    from dataclasses import dataclass

    from advbench.attacks.base import Attack

    label = int(mnist_test[1].mode().values)
    keep = (mnist_test[1] == label).nonzero().squeeze(1)[:40]
    x, y = mnist_test[0][keep], mnist_test[1][keep]
    threat = ThreatModel(Norm.LINF, 0.2)
    found = Harness(cnn, 10).attack(PGD(steps=20), x, y, threat, torch.Generator().manual_seed(0))
    assert found.success.sum() >= 5

    @dataclass
    class QueriesThenGivesUp(Attack):
        name = "queries_then_gives_up"

        def run(self, oracle, xs, goal, threat, generator):
            oracle(found.x_adv[: xs.shape[0]])  # every row in order: the known adversarials
            oracle(xs)  # and the clean points, of higher margin
            return xs.clone()

    model = _FavoursTheLabelUnderAutocast(cnn, label)
    fp32 = Harness(model, 10).attack(QueriesThenGivesUp(), x, y, threat, torch.Generator())
    low = Harness(model, 10, precision="bf16").attack(QueriesThenGivesUp(), x, y, threat, torch.Generator())
    assert not fp32.success.any()  # float32 takes only what the attack returns
    recovered = torch.tensor(low.extras["bf16_recovered"])
    assert torch.equal(low.success, found.success & low.attacked) and torch.equal(recovered, low.success)
    assert torch.equal(low.x_adv[low.success], found.x_adv[low.success])
    with torch.no_grad():
        assert (cnn(low.x_adv[low.success]).argmax(1) != label).all()  # each holds in float32
    assert not any(low.extras["bf16_rejected"])


def test_bf16_is_part_of_the_fingerprint_and_counted_in_the_manifest():
    kw = dict(attack_options={"pgd": {"steps": 3}}, n_samples=30)
    fp32 = advbench.evaluate("cnn.mnist5k_std", "pgd", "0.1", **kw)
    bf16 = advbench.evaluate("cnn.mnist5k_std", "pgd", "0.1", precision="bf16", **kw)
    assert set(fp32.rows["fingerprint"]) != set(bf16.rows["fingerprint"])
    assert "bf16_rejected" in bf16.rows.columns and "bf16_rejected" not in fp32.rows.columns
    assert bf16.manifest["bf16_rejected"] == int(bf16.rows["bf16_rejected"].sum())
    with pytest.raises(ConfigError, match="precision"):
        advbench.evaluate("cnn.mnist5k_std", "pgd", "0.1", precision="fp16", **kw)


# -- compile and channels-last ------------------------------------------------------------------------------

def test_a_failing_compile_falls_back_with_one_warning(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here\nsecond line")

    monkeypatch.setattr(torch, "compile", broken)
    kw = dict(attack_options={"pgd": {"steps": 2}}, n_samples=20)
    with pytest.warns(RuntimeWarning, match=r"torch.compile failed .* \(RuntimeError: no compiler here\)$"):
        run = advbench.evaluate("cnn.mnist5k_std", "pgd", "0.1", compile=True, **kw)
    plain = advbench.evaluate("cnn.mnist5k_std", "pgd", "0.1", **kw)
    info = run.manifest["acceleration"]["cnn.mnist5k_std"]
    assert not info["compiled"] and info["compile_error"].startswith("RuntimeError")
    cols = ["sample_id", "adv_pred", "robust", "perturbation_norm"]
    pd.testing.assert_frame_equal(run.rows[cols], plain.rows[cols])


def test_channels_last_only_where_it_pays_and_never_changes_the_weights(cnn):
    linear = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    assert wants_channels_last(None, cnn, torch.device("cuda")) and not wants_channels_last(None, cnn, torch.device("cpu"))
    assert not wants_channels_last(None, linear, torch.device("cuda")) and not wants_channels_last(True, linear, torch.device("cpu"))
    import copy

    model = copy.deepcopy(cnn)
    before = module_digest(model)
    fast, info = accelerate(model, RunConfig(models=("m",), channels_last=True), torch.device("cpu"), torch.zeros(2, 1, 28, 28))
    conv = next(m for m in fast.modules() if isinstance(m, nn.Conv2d))
    assert info.channels_last and conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert module_digest(fast) == before  # same values: the cell fingerprint's weight digest is unchanged


# -- out-of-memory back-off ---------------------------------------------------------------------------------

class Tight(nn.Module):
    """A model that runs out of (simulated) CUDA memory on batches above ``limit`` (with gradients only, or always)."""

    def __init__(self, inner: nn.Module, limit: int, grad_only: bool) -> None:
        super().__init__()
        self.inner, self.limit, self.grad_only = inner, limit, grad_only

    def forward(self, x):
        if x.shape[0] > self.limit and (torch.is_grad_enabled() or not self.grad_only):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.inner(x)


@pytest.mark.parametrize("grad_only", [True, False], ids=["in-attack", "at-clean-logits"])
def test_out_of_memory_halves_the_batch_and_gives_that_batch_sizes_rows(cnn, grad_only):
    kw = dict(dataset="mnist-5k", n_samples=40, attack_options={"pgd": {"steps": 3}}, sanity_checks=False)
    tight = advbench.evaluate({"m": Tight(cnn, 10, grad_only)}, "pgd", "0.1,0.2", batch_size=32, **kw)
    small = advbench.evaluate({"m": Tight(cnn, 10**9, grad_only)}, "pgd", "0.1,0.2", batch_size=8, **kw)
    info = tight.manifest["acceleration"]["m"]
    assert info["batch_size"] == 8 and info["oom_backoffs"] == [16, 8]
    cols = [c for c in small.rows.columns if c not in ("seconds", "fingerprint")]
    pd.testing.assert_frame_equal(tight.rows[cols], small.rows[cols])
    assert set(tight.rows["fingerprint"]).isdisjoint(small.rows["fingerprint"])  # the cell names its size


def test_out_of_memory_at_batch_one_is_raised():
    def step(size):
        raise torch.cuda.OutOfMemoryError("simulated")

    seen = []
    with pytest.raises(torch.cuda.OutOfMemoryError):
        accel.halving(step, 4, seen.append)
    assert seen == [2, 1]
    assert Acceleration().to_json()["oom_backoffs"] == []


# -- threads ------------------------------------------------------------------------------------------------

def test_thread_choice_respects_the_user_then_the_free_cores(monkeypatch):
    assert threads.choose_threads(environ={"OMP_NUM_THREADS": "1"}).threads == 1
    assert threads.choose_threads(3, environ={"OMP_NUM_THREADS": "1"}).source == "--threads"
    with pytest.raises(ConfigError, match="OMP_NUM_THREADS"):
        threads.choose_threads(environ={"OMP_NUM_THREADS": "two"})
    monkeypatch.setattr(threads, "affinity_cores", lambda: 4)
    monkeypatch.setattr(threads, "cgroup_quota", lambda: None)
    for idle, want in ((0.2, 1), (1.1, 1), (1.6, 2), (3.9, 4)):
        monkeypatch.setattr(threads, "idle_cores", lambda idle=idle: idle)
        choice = threads.choose_threads(environ={})
        assert (choice.threads, choice.source) == (want, "auto")
    monkeypatch.setattr(threads, "cgroup_quota", lambda: 1.5)  # a quota of 1.5 cores: at most 2 threads
    assert threads.choose_threads(environ={}).threads == 2


def test_cgroup_quota_and_proc_stat_parsing(tmp_path):
    (tmp_path / "max").write_text("max 100000\n")
    (tmp_path / "q").write_text("150000 100000\n")
    assert threads.cgroup_quota(tmp_path / "max") is None and threads.cgroup_quota(tmp_path / "q") == 1.5
    assert threads.cgroup_quota(tmp_path / "missing") is None
    idle = threads.idle_cores(0.01)
    assert idle is None or 0 <= idle <= threads.affinity_cores() + 0.01


def test_a_run_records_its_threads_and_gives_torch_its_count_back(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    seen = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n, real=torch.set_num_threads: (seen.append(n), real(n)))
    run = advbench.evaluate("cnn.mnist5k_std", "fgsm", "0.1", n_samples=10, threads=2)
    assert run.manifest["threads"]["threads"] == 2 and run.manifest["threads"]["source"] == "--threads"
    assert seen == [2, before] and torch.get_num_threads() == before
