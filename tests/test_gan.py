"""DCGAN: loss formulas, a seeded training step, the discriminator as a 2-class zoo model under attack."""

from __future__ import annotations

import math

import pytest
import torch

import advbench
from advbench.gan import Generator, discriminator, discriminator_loss, gan_datasets, generator_loss, train_gan
from advbench.gan.train import _NormalisedD, gan_step
from advbench.hookspecs import hookimpl
from advbench.models.zoo import ZOO_DIR, zoo_specs
from advbench.plugins import make_host, set_host
from advbench.specs import DatasetSpec


def _logits_for(d: list[float]) -> torch.Tensor:
    """Two logits whose softmax gives P(real) = d: [0, logit(d)]."""
    p = torch.tensor(d)
    return torch.stack([torch.zeros_like(p), torch.log(p / (1 - p))], dim=1)


def test_generator_losses_on_hand_made_d_outputs():
    d = [0.9, 0.5, 0.01]
    logits = _logits_for(d)
    assert generator_loss(logits, "non-saturating").item() == pytest.approx(-sum(math.log(v) for v in d) / 3, rel=1e-5)
    assert generator_loss(logits, "minimax").item() == pytest.approx(sum(math.log(1 - v) for v in d) / 3, rel=1e-5)
    real, fake = _logits_for([0.8, 0.6]), _logits_for([0.3, 0.1])
    expected = -(math.log(0.8) + math.log(0.6)) / 2 - (math.log(0.7) + math.log(0.9)) / 2
    assert discriminator_loss(real, fake).item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError):
        generator_loss(logits, "wasserstein")


def test_minimax_saturates_where_non_saturating_does_not():
    """When D confidently rejects a sample (D ~ 0), log(1 - D) has almost no gradient; -log D has a large one."""
    grads = {}
    for kind in ("non-saturating", "minimax"):
        logits = _logits_for([1e-4]).requires_grad_(True)
        generator_loss(logits, kind).backward()
        grads[kind] = logits.grad.abs().sum().item()
    assert grads["minimax"] < 1e-3 < 1.0 < grads["non-saturating"]


def _step(seed: int):
    torch.manual_seed(seed)
    gen, disc = Generator(z_dim=4, width=4), _NormalisedD(discriminator((1, 28, 28), 2, width=4))
    opt_g = torch.optim.Adam(gen.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-3, betas=(0.5, 0.999))
    real = torch.rand(6, 1, 28, 28)
    losses = gan_step(gen, disc, opt_g, opt_d, real)
    return losses, [p.detach().clone() for p in [*gen.parameters(), *disc.parameters()]]


def test_gan_step_is_seeded():
    (l1, p1), (l2, p2), (l3, _) = _step(0), _step(0), _step(1)
    assert l1 == l2 and all(torch.equal(a, b) for a, b in zip(p1, p2))
    assert l1 != l3


def test_generator_outputs_images_in_unit_range():
    gen = Generator(z_dim=4, width=4).eval()
    out = gen(torch.randn(3, 4))
    assert out.shape == (3, 1, 28, 28) and out.min() >= 0 and out.max() <= 1


def _tiny_mnist() -> DatasetSpec:
    g = torch.Generator().manual_seed(0)
    data = {
        s: (torch.rand(12, 1, 28, 28, generator=g), torch.randint(0, 10, (12,), generator=g)) for s in ("train", "test")
    }
    return DatasetSpec("tiny28", lambda split, **_: data[split], 10, (1, 28, 28))


def test_tiny_train_gan_writes_a_zoo_discriminator_and_skips_the_generator(tmp_path):
    g_card, d_card = train_gan(dataset=_tiny_mnist(), out_dir=tmp_path, name="tiny", epochs=1, batch_size=6,
                               z_dim=4, width=4, progress=False)
    assert g_card["kind"] == "generator" and g_card["recipe"]["g_loss"] == "non-saturating"
    assert (tmp_path / "dcgan_g.tiny.png").stat().st_size > 0 and (tmp_path / "dcgan_g.tiny.epochs.png").is_file()
    for key in ("clean_accuracy", "real_judged_real", "fake_judged_fake", "robust_accuracy", "sha256", "seed"):
        assert key in d_card
    specs = zoo_specs(tmp_path, errors=(errors := []))
    assert not errors and [s.name for s in specs] == ["dcgan_d.tiny"]  # the generator is not a classifier
    spec = specs[0]
    assert spec.num_classes == 2 and spec.dataset == "mnist5k-gan"
    model = spec.load(device="cpu")
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 2)
    again, _ = train_gan(dataset=_tiny_mnist(), out_dir=tmp_path / "again", name="tiny", epochs=1, batch_size=6,
                         z_dim=4, width=4, progress=False)
    assert again["sha256"] == g_card["sha256"]


class _GanDatasets:
    @hookimpl
    def advbench_register_datasets(self, registrar) -> None:
        for spec in gan_datasets():
            registrar.add(spec)


@pytest.mark.skipif(not (ZOO_DIR / "dcgan_d.mnist5k.json").is_file(), reason="the shipped GAN is not in the zoo")
def test_discriminator_under_fgsm_reports_success_per_label():
    host = make_host(autoload=False)
    if "mnist5k-gan" not in host.registry.datasets:  # until the built-in plugin registers it
        host = make_host(autoload=False, extra=[("gan-datasets", _GanDatasets())])
    set_host(host)
    x, y = advbench.load_dataset("mnist5k-gan", "test")
    assert x.shape == (2000, 1, 28, 28) and int(y.sum()) == 1000 and 0 <= x.min() and x.max() <= 1
    rows = advbench.evaluate(models="dcgan_d.mnist5k", attacks="fgsm", eps=0.1, dataset="mnist5k-gan",
                             n_samples=60, device="cpu").rows
    by_label = rows.groupby("label")["success"].mean()
    assert set(by_label.index) == {0, 1}  # fake judged real (label 0), real judged fake (label 1)
    assert ((0 <= by_label) & (by_label <= 1)).all()


def test_gan_options_parse_and_reproduce_from_a_card(tmp_path):
    from advbench.errors import ConfigError
    from advbench.gan.train import parse_gan_options
    from advbench.gan.train import reproduce_gan
    from advbench.train import reproduce

    assert parse_gan_options(["g_loss=minimax", "z_dim=4"]) == {"g_loss": "minimax", "z_dim": 4}
    with pytest.raises(ConfigError):
        parse_gan_options(["beta=1"])
    _, d_card = train_gan(dataset=_tiny_mnist(), out_dir=tmp_path / "zoo", name="tiny", epochs=1, batch_size=6,
                          z_dim=4, width=4, g_loss="minimax", progress=False)
    new, diff = reproduce("dcgan_g.tiny", tmp_path / "again", dataset=_tiny_mnist(), zoo_dirs=[tmp_path / "zoo"],
                          reproducers={"gan": reproduce_gan},
                          progress=False)
    assert new["sha256"] == d_card["sha256"] and diff == 0 and new["recipe"]["g_loss"] == "minimax"
