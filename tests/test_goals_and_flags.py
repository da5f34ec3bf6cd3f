"""Targeted runs, the confidence criterion, minimum-norm cells, the noise dataset and gradient-masking flags."""

import math
from dataclasses import dataclass

import torch
from torch import nn

import advbench
from advbench import Attack
from advbench.engine.session import choose_targets
from advbench.models.wrapper import ClassifierWrapper
from advbench.specs import ModelSpec

KW = dict(n_samples=60, device="cpu")


def _success(rows, attack):
    sel = rows[(rows.attack == attack) & (rows.clean_correct | (rows.label < 0))]
    return sel.groupby("eps").success.mean()


def test_choose_targets():
    y = torch.tensor([0, 1, 2, -1])
    logits = torch.tensor([[3.0, 2, 1], [1, 3, 2], [2, 1, 3], [0, 5, 1]])
    assert choose_targets("least-likely", y, logits, 0).tolist() == [2, 0, 1, 0]
    random = choose_targets("random", y, logits, 0)
    assert (random != torch.tensor([0, 1, 2, 1])).all()  # never the label (or the clean prediction if unlabelled)
    assert choose_targets("1", y, logits, 0).tolist() == [1, 1, 1, 1]


def test_targeted_success_means_the_target_and_rows_record_it():
    rows = advbench.evaluate(models="cnn.mnist5k_std", attacks="pgd", eps=[0.3], targeted="random", **KW).rows
    attacked = rows[rows.clean_correct]
    assert (attacked.target != attacked.label).all() and (attacked.target >= 0).all()
    assert (attacked.success == (attacked.adv_pred == attacked.target)).all()
    assert attacked.success.mean() > 0.5


def test_least_likely_targeted_is_harder_than_untargeted():
    for model in ("cnn.mnist5k_std", "linear.mnist5k_std"):
        untargeted = advbench.evaluate(models=model, attacks="fgsm", eps=[0.1, 0.2], **KW).rows
        targeted = advbench.evaluate(models=model, attacks="fgsm", eps=[0.1, 0.2], targeted="least-likely", **KW).rows
        assert (_success(targeted, "fgsm") < _success(untargeted, "fgsm")).all()


def test_min_confidence_only_removes_successes():
    plain = advbench.evaluate(models="linear.mnist5k_std", attacks="fgsm", eps=[0.1], **KW).rows
    strict = advbench.evaluate(models="linear.mnist5k_std", attacks="fgsm", eps=[0.1], min_confidence=0.9, **KW).rows
    assert (strict.success <= plain.success).all()
    assert (strict[strict.success].adv_confidence >= 0.9).all()
    assert strict.robust.equals(plain.robust)  # accuracy is about predictions, not confidence


def test_noise_dataset_fooling_rate():
    rows = advbench.evaluate(models="linear.mnist5k_std", attacks="fgsm", eps=[0.2], dataset="noise",
                             targeted="random", min_confidence=0.5, **KW).rows
    assert (rows.label == -1).all() and not rows.robust.any()
    assert rows.success.mean() > 0.9  # one gradient step gives a confident class of our choosing


@dataclass
class ToyMinNorm(Attack):
    """A minimum-norm attack with a known answer: scale towards 1 - x until the label flips (by bisection)."""

    name = "toy_min_norm"
    norms = ("linf",)
    minimum_norm = True

    def run(self, oracle, x, goal, threat, generator):
        assert math.isinf(threat.eps)
        lo = torch.zeros(x.shape[0], 1, 1, 1)
        hi = torch.ones(x.shape[0], 1, 1, 1)
        for _ in range(12):
            mid = (lo + hi) / 2
            broken = goal.is_adversarial(oracle.logits(x + mid * (1 - 2 * x)))
            hi = torch.where(broken.view(-1, 1, 1, 1), mid, hi)
            lo = torch.where(broken.view(-1, 1, 1, 1), lo, mid)
        return x + hi * (1 - 2 * x)


def test_minimum_norm_attack_runs_once_and_derives_every_eps(tmp_path):
    from advbench.plugins import make_host, set_host

    class Plugin:
        @advbench.hookimpl
        def advbench_register_attacks(self, registrar):
            registrar.add(ToyMinNorm.spec())

    set_host(make_host(autoload=False, extra=[("toy", Plugin())]))
    rows = advbench.evaluate(models="linear.mnist5k_std", attacks="toy_min_norm", eps=[0.05, 0.1, 0.2, 0.4], **KW).rows
    attacked = rows[rows.clean_correct]
    # one unbounded run: identical min_norm and query counts in every eps cell
    per_sample = attacked.groupby("sample_id")
    assert (per_sample.min_norm.nunique() == 1).all() and (per_sample.n_forward.nunique() == 1).all()
    assert (attacked.n_forward == 12).all()
    # robust at eps exactly when the smallest adversarial is farther than eps (judged again by the model)
    found_within = attacked.min_norm <= attacked.eps
    assert (attacked.success[found_within]).all()
    assert (attacked.robust == ~attacked.success).all()
    curve = attacked.groupby("eps").robust.mean()
    assert curve.is_monotonic_decreasing


class RoundingCNN(nn.Module):
    """Rounds its input to 8 levels before a real classifier: gradients are zero almost everywhere."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x * 7) / 7)


def test_a_gradient_masking_model_is_flagged(tmp_path):
    from advbench.plugins import make_host, set_host

    cnn = advbench.load_model("cnn.mnist5k_std")

    class Plugin:
        @advbench.hookimpl
        def advbench_register_models(self, registrar):
            def load(device="cpu"):
                return ClassifierWrapper(RoundingCNN(cnn), input_shape=(1, 28, 28), num_classes=10).to(device)

            registrar.add(ModelSpec("masked.cnn", load, (1, 28, 28), 10, "mnist-5k"))

    set_host(make_host(autoload=False, extra=[("masked", Plugin())]))
    from advbench.plugins import get_host
    from advbench.engine.config import RunConfig
    from advbench.engine.executor import execute

    outcome = execute(RunConfig(models=("masked.cnn", "cnn.mnist5k_std"), attacks=("fgsm", "pgd"),
                                eps=(0.1, 0.2), n_samples=60, out=tmp_path), get_host())
    flags = {(f["model"], f["flag"]) for f in outcome.flags}
    assert ("masked.cnn", "zero_gradients") in flags
    assert not any(model == "cnn.mnist5k_std" for model, _ in flags)
    assert (tmp_path / "flags.json").is_file()


def _flag_rows(targeted: bool, outcomes: dict[tuple[str, float], list[tuple[bool, bool]]]):
    """Rows of one model: per (attack, eps) a list of (robust, success) per sample (all clean-correct)."""
    import pandas as pd

    rows = []
    for (attack, eps), samples in outcomes.items():
        for i, (robust, success) in enumerate(samples):
            rows.append({"model": "m", "attack": attack, "norm": "linf", "eps": eps, "sample_id": i, "label": 1,
                         "target": 3 if targeted else -1, "clean_correct": True, "robust": robust,
                         "success": success})
    return pd.DataFrame(rows)


def test_targeted_flags_compare_success_not_robust_accuracy():
    """In a targeted run, PGD that misclassifies fewer samples than FGSM but hits the target more often is fine;
    FGSM hitting the target more often than PGD is the flag (robust accuracy would say the opposite)."""
    from advbench.engine.sanity import row_flags
    from advbench.plugins import get_host

    specs = {a: get_host().registry.attacks.get(a) for a in ("fgsm", "pgd")}
    # fgsm: 8 of 10 misclassified, 2 on target; pgd: 5 misclassified, all 5 on target
    fine = {("fgsm", 0.1): [(False, i < 2) for i in range(8)] + [(True, False)] * 2,
            ("pgd", 0.1): [(False, True)] * 5 + [(True, False)] * 5}
    assert not [f for f in row_flags(_flag_rows(True, fine), specs) if f["flag"] == "weaker_beats_stronger"]
    untargeted = row_flags(_flag_rows(False, fine), specs)
    assert [f["flag"] for f in untargeted] == ["weaker_beats_stronger"]  # the untargeted rule still applies there
    swapped = {("fgsm", 0.1): fine[("pgd", 0.1)], ("pgd", 0.1): fine[("fgsm", 0.1)]}
    flags = row_flags(_flag_rows(True, swapped), specs)
    assert [f["flag"] for f in flags] == ["weaker_beats_stronger"] and "targeted success 50.0%" in flags[0]["detail"]
    falling = {("pgd", 0.1): [(False, True)] * 6 + [(True, False)] * 4, ("pgd", 0.2): [(False, True)] * 3 + [(True, False)] * 7}
    assert [f["flag"] for f in row_flags(_flag_rows(True, falling), specs)] == ["success_falls_with_eps"]


def test_a_transfer_attack_from_the_model_itself_is_white_box_for_the_black_box_flag():
    """ATTACK@MODEL replayed on MODEL used MODEL's own gradients: beating PGD by a sample is seed noise between
    two white-box attacks, not a black-box attack beating white-box (the zoo leaderboard raised that, wrongly)."""
    from advbench.engine.sanity import row_flags
    from advbench.plugins import get_host

    host = get_host().registry.attacks
    specs = {"pgd": host.get("pgd"), "pgd@m": host.get("transfer"), "pgd@other": host.get("transfer")}
    pgd = [(False, True)] * 5 + [(True, False)] * 5
    better = [(False, True)] * 7 + [(True, False)] * 3
    flags = row_flags(_flag_rows(False, {("pgd", 0.1): pgd, ("pgd@m", 0.1): better}), specs)
    assert not [f for f in flags if f["flag"] == "black_box_beats_white_box"]
    flags = row_flags(_flag_rows(False, {("pgd", 0.1): pgd, ("pgd@other", 0.1): better}), specs)
    assert [(f["flag"], f["attack"]) for f in flags] == [("black_box_beats_white_box", "pgd@other")]


def test_views_appear_only_where_they_mean_something(capsys):
    """The by-label table is for GAN discriminators, not any two-class run; an unlabelled run (noise) has no
    transferability matrix (there is no accuracy to transfer)."""
    import torch

    import advbench
    from advbench.cli.render import show_results

    x, y = advbench.load_dataset("mnist-5k", "test")
    keep = y < 2
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 2))
    binary = advbench.evaluate({"two": net}, "fgsm", 0.1, dataset=(x[keep][:30], y[keep][:30]), device="cpu")
    show_results(binary.rows, binary.flags, binary.transfer, "table", "binary", manifest=binary.manifest)
    assert "by true label" not in capsys.readouterr().out
    gan = advbench.evaluate("dcgan_d.mnist5k", "fgsm", 0.1, dataset="mnist5k-gan", n_samples=30, device="cpu")
    show_results(gan.rows, gan.flags, gan.transfer, "table", "gan", manifest=gan.manifest)
    assert "by true label" in capsys.readouterr().out
    noise = advbench.evaluate("linear.mnist5k_std,cnn.mnist5k_std", "fgsm", 0.1, dataset="noise", n_samples=20,
                              device="cpu")
    assert noise.transfer is None
    show_results(noise.rows, noise.flags, noise.transfer, "table", "noise", manifest=noise.manifest)
    assert "transfer:" not in capsys.readouterr().out
