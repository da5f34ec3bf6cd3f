"""The Python API on the user's own objects: an nn.Module and tensors (or a DataLoader) through ``evaluate``,
``attack`` and ``benchmark`` (issue 12), checked against the registry path they must agree with."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

import advbench
from advbench.errors import ConfigError
from advbench.leaderboard.intervals import wilson_interval

N = 40
VERDICT = ["clean_pred", "adv_pred", "clean_correct", "robust", "success", "n_forward", "n_backward"]


@pytest.fixture(scope="module")
def data():
    x, y = advbench.load_dataset("mnist-5k", "test")
    ids = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))[:N].sort().values
    return ids, x[ids], y[ids]


def _verdicts(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.sort_values(["attack", "eps", "sample_id"])[VERDICT].reset_index(drop=True)


def test_an_in_memory_module_on_tensors_gives_the_registry_runs_verdicts(data):
    """The same network and samples, once by name through the registry and once as the user's objects, give
    identical per-sample verdicts (same name, so the same per-cell seeds for PGD's random start)."""
    _, x, y = data
    by_name = advbench.evaluate("cnn.mnist5k_std", "fgsm,pgd", "0.1,0.2", n_samples=N, device="cpu",
                                attack_options={"pgd": {"steps": 5}})
    module = advbench.load_model("cnn.mnist5k_std")
    mine = advbench.evaluate({"cnn.mnist5k_std": module}, "fgsm,pgd", "0.1,0.2", dataset=(x, y), device="cpu",
                             attack_options={"pgd": {"steps": 5}})
    assert set(mine.rows.dataset) == {"tensors"} and mine.run_dir is None
    assert _verdicts(mine.rows).equals(_verdicts(by_name.rows))
    board = mine.leaderboard()
    assert board.loc["cnn.mnist5k_std", "linf 0.2 worst"] <= board.loc["cnn.mnist5k_std", "clean"]


def test_a_bare_network_with_its_normalisation_equals_its_wrapped_self(data):
    """A network that expects normalised inputs, given with mean/std, is attacked in [0, 1] pixel space: the
    same rows as the wrapper that has the normalisation inside."""
    _, x, y = data
    wrapped = advbench.load_model("cnn.mnist5k_std")
    inner = wrapped.net
    inner.train().requires_grad_(True)  # a module mid-training: evaluate must not leave it frozen or in eval mode
    mean, std = wrapped.mean.flatten().tolist(), wrapped.std.flatten().tolist()
    bare = advbench.evaluate({"m": inner}, "fgsm", 0.2, dataset=(x, y), mean=mean, std=std, device="cpu")
    assert inner.training and all(m.training for m in inner.modules())
    assert all(p.requires_grad for p in inner.parameters())
    ref = advbench.evaluate({"m": advbench.load_model("cnn.mnist5k_std")}, "fgsm", 0.2, dataset=(x, y), device="cpu")
    assert _verdicts(bare.rows).equals(_verdicts(ref.rows))


def test_a_dataloader_gives_the_rows_of_its_tensors(data):
    _, x, y = data
    net = advbench.load_model("linear.mnist5k_std")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=7)
    a = advbench.evaluate([net], "fgsm", 0.1, dataset=loader, device="cpu").rows
    b = advbench.evaluate([net], "fgsm", 0.1, dataset=(x, y), device="cpu").rows
    assert a.drop(columns="seconds").equals(b.drop(columns="seconds"))


def test_attack_on_a_batch_matches_the_run_and_keeps_the_contract(data):
    _, x, y = data
    net = advbench.load_model("cnn.mnist5k_std")
    out = advbench.attack("fgsm", net, x, y, eps=0.2)
    rows = advbench.evaluate({"n": net}, "fgsm", 0.2, dataset=(x, y), device="cpu").rows.sort_values("sample_id")
    assert torch.equal(out.success, torch.as_tensor(rows.success.to_numpy().copy()))
    assert torch.equal(out.adv_pred, torch.as_tensor(rows.adv_pred.to_numpy().copy()))
    assert (out.norms <= 0.2 + 1e-6).all() and out.x_adv.min() >= 0 and out.x_adv.max() <= 1
    assert not out.success[~out.attacked].any()
    assert out.robust_accuracy == pytest.approx(rows.robust.mean())
    # a minimum-norm attack runs unbounded without eps, and its verdict at a finite eps is the projected one
    free = advbench.attack("deepfool", net, x[:16], y[:16], eps=None)
    assert free.min_norm is not None and torch.isfinite(free.min_norm[free.success]).all()
    tight = advbench.attack("deepfool", net, x[:16], y[:16], eps=0.05)
    assert (tight.success <= free.success).all() and (tight.norms <= 0.05 + 1e-6).all()


def test_attack_options_budget_and_errors(data):
    _, x, y = data
    net = advbench.load_model("cnn.mnist5k_std")
    out = advbench.attack("square", net, x[:8], y[:8], eps=0.2, queries=30, max_queries=100)
    assert (out.n_forward <= 30).all() and (out.n_backward == 0).all()
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        advbench.attack("pgd", net, x, y, eps=0.1, steps=0)
    with pytest.raises(ConfigError, match="needs a budget"):
        advbench.attack("pgd", net, x, y, eps=None)
    with pytest.raises(ConfigError, match="images must be a tensor"):
        advbench.attack("pgd", net, x[0], y[:1], eps=0.1)
    with pytest.raises(ConfigError, match="pass models"):
        advbench.evaluate(None, "fgsm", 0.1, dataset=(x, y))
    three = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 3))
    with pytest.raises(ConfigError, match="nothing to run: model 'Sequential' has 3 classes but dataset 'mnist-5k' has 10"):
        advbench.evaluate(three, "fgsm", 0.1, n_samples=5, device="cpu")  # never an empty result without a word


def test_benchmark_reports_worst_case_accuracy_with_wilson_intervals(data):
    result = advbench.benchmark("cnn.mnist5k_std", "mnist-5k", eps=0.2, n=N, attacks=("fgsm", "pgd"), device="cpu")
    per_sample = result.rows.groupby("sample_id").robust.all()
    assert result.n == N and result.robust_accuracy == pytest.approx(per_sample.mean())
    assert result.robust_accuracy <= result.clean_accuracy
    for value, (low, high) in ((result.clean_accuracy, result.clean_interval),
                               (result.robust_accuracy, result.robust_interval)):
        assert low <= value <= high
    assert "under fgsm+pgd" in repr(result)


def test_wilson_interval_matches_its_closed_form():
    low, high = wilson_interval(0, 10)
    assert low == 0 and high == pytest.approx(0.2775, abs=1e-4)  # Wilson (1927); the normal interval gives (0, 0)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    for n in (7, 100, 200, 1000):  # the ends are exact: 0% and 100% lie inside their own intervals
        assert wilson_interval(0, n)[0] == 0.0 and wilson_interval(n, n)[1] == 1.0


def test_a_timm_models_pretrained_config_gives_the_normalisation(data):
    from advbench._compat import import_timm
    from advbench.api.inputs import Normalisation, as_model

    timm = import_timm()
    net = timm.create_model("test_resnet", num_classes=10, in_chans=1, pretrained=False)
    net.pretrained_cfg = {**net.pretrained_cfg, "mean": (0.5,), "std": (0.25,)}
    wrapped = as_model(net, data[1][:1], Normalisation())
    assert wrapped.mean.flatten().tolist() == [0.5] and wrapped.std.flatten().tolist() == [0.25]
    assert wrapped.num_classes == 10
