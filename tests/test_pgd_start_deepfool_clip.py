"""Two fixes the cross-library table (issue 11) asked for: PGD's l2 random start with a uniform radius
(torchattacks' PGDL2), and DeepFool carrying only the clipped accumulated perturbation (adv-lib's df)."""

import math

import pytest
import torch

from advbench.attacks.deepfool import DeepFool
from advbench.attacks.pgd import PGD
from advbench.norms import Norm, flat_norm, random_start
from advbench.testing import run_batch


def test_uniform_radius_start_shares_the_directions_and_spreads_the_radius():
    x = torch.full((2000, 1, 8, 8), 0.5)  # centred: eps 0.2 never reaches the pixel bounds
    ball = random_start(x, Norm.L2, 0.2, torch.Generator().manual_seed(0)) - x
    flat = random_start(x, Norm.L2, 0.2, torch.Generator().manual_seed(0), l2_uniform_radius=True) - x
    r_ball, r_flat = flat_norm(ball, Norm.L2), flat_norm(flat, Norm.L2)
    # Same two draws: the same directions, the radius u instead of u^(1/64).
    cos = (ball.flatten(1) * flat.flatten(1)).sum(1) / (r_ball * r_flat)
    assert torch.allclose(cos, torch.ones_like(cos), atol=1e-5)
    assert torch.allclose(r_ball, 0.2 * (r_flat / 0.2).pow(1 / 64), atol=1e-6)
    # Uniform in [0, eps]: mean eps/2, every decile populated; the volume-uniform radius is almost always ~eps.
    assert abs(float(r_flat.mean()) - 0.1) < 0.01 and float(r_flat.max()) <= 0.2 + 1e-6
    assert torch.histc(r_flat, bins=10, min=0, max=0.2).min() > 120
    assert float(r_ball.min()) > 0.15
    linf = random_start(x, Norm.LINF, 0.2, torch.Generator().manual_seed(0), l2_uniform_radius=True)
    assert torch.equal(linf, random_start(x, Norm.LINF, 0.2, torch.Generator().manual_seed(0)))


def _start_of(pgd: PGD, x: torch.Tensor, norm: Norm) -> torch.Tensor:
    """PGD's random start: one step of a zero-gradient objective leaves the iterate where it started."""
    zero = lambda xa, index: (xa * 0).flatten(1)[:, :3]  # noqa: E731  constant logits: zero gradient
    from advbench.attacks.base import Goal

    goal = Goal(labels=torch.zeros(x.shape[0], dtype=torch.long))
    return pgd.iterate(zero, x, goal, norm, 1.5, torch.Generator().manual_seed(3)).last


@pytest.mark.parametrize("norm", [Norm.L2, Norm.LINF])
def test_pgd_l2_start_option_picks_the_radius_and_leaves_linf_alone(norm):
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    radius = _start_of(PGD(steps=1, early_stop=False), x, norm)
    ball = _start_of(PGD(steps=1, early_stop=False, l2_start="ball"), x, norm)
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    if norm is Norm.LINF:
        assert torch.equal(radius, ball) and torch.equal(ball, random_start(x, norm, 1.5, gen()))
        return
    # "ball" is the previous start bit for bit; the default draws its radius uniformly in [0, eps].
    assert torch.equal(ball, random_start(x, norm, 1.5, gen()))
    assert torch.equal(radius, random_start(x, norm, 1.5, gen(), l2_uniform_radius=True))
    assert float(flat_norm(radius - x, norm).median()) < 0.9 < float(flat_norm(ball - x, norm).median())


def _deepfool_reference(model, x, y, norm, steps, clip_accumulated, overshoot=0.02):
    """DeepFool by the book on a batch of one: adv-lib's update (step from the clipped iterate, each step
    overshot) or the paper's / Foolbox's (overshoot the unclipped sum). Returns the first adversarial iterate, else
    the last."""
    ref, others = y, None
    x_cur, r_tot = x.clone(), torch.zeros_like(x)
    for _ in range(steps):
        x_cur.requires_grad_(True)
        logits = model(x_cur)
        if others is None:
            others = logits.detach().scatter(1, ref[:, None], -math.inf).topk(9, dim=1).indices
        if bool((logits.argmax(1) != y).all()):
            break
        r = DeepFool._step(logits, x_cur, ref, others, norm)
        if clip_accumulated:
            x_cur = (x_cur.detach() + (1 + overshoot) * r).clamp(0, 1)
        else:
            r_tot = r_tot + r
            x_cur = (x + (1 + overshoot) * r_tot).clamp(0, 1).detach()
    return x_cur.detach()


@pytest.mark.parametrize("clip_accumulated", [True, False])
def test_deepfool_follows_adv_lib_or_the_paper_update(cnn, mnist_test, clip_accumulated):
    x, y = mnist_test[0][:6], mnist_test[1][:6]
    for i in range(6):
        out = run_batch(DeepFool(steps=8, clip_accumulated=clip_accumulated), cnn, x[i : i + 1], y[i : i + 1],
                        Norm.LINF, math.inf)
        ref = _deepfool_reference(cnn, x[i : i + 1], y[i : i + 1], Norm.LINF, 8, clip_accumulated)
        assert torch.allclose(out.x_adv, ref, atol=1e-5), i


def test_deepfool_linf_clipped_accumulation_is_smaller_on_mnist(cnn, mnist_test):
    x, y = mnist_test[0][:24], mnist_test[1][:24]
    new = run_batch(DeepFool(), cnn, x, y, Norm.LINF, math.inf)
    old = run_batch(DeepFool(clip_accumulated=False), cnn, x, y, Norm.LINF, math.inf)
    both = new.success & old.success
    n_new, n_old = flat_norm(new.x_adv - x, Norm.LINF)[both], flat_norm(old.x_adv - x, Norm.LINF)[both]
    # The unclipped sum drags the pixels [0, 1] cut off along: never a smaller adversarial, often a larger one.
    assert bool((n_new <= n_old + 1e-6).all()) and float((n_old - n_new).max()) > 1e-3
