"""The norm mechanics of advbench.norms: measuring, projecting, starting and stepping, per norm."""

import ast
from pathlib import Path

import pytest
import torch

import advbench.norms as norms_module
from advbench.errors import ConfigError
from advbench.norms import (
    Norm,
    ascent_direction,
    dual_norm,
    flat_norm,
    l1_normalize,
    normalize,
    per_sample,
    project,
    project_ball,
    projected_step,
    random_noise,
    random_start,
)

NORMS = [Norm.LINF, Norm.L2]


def test_norm_parse():
    assert Norm.parse("Linf") is Norm.LINF and Norm.parse("L2") is Norm.L2
    with pytest.raises(ConfigError):
        Norm.parse("l1")


def test_the_threat_module_reexports_the_same_objects():
    import advbench.threat as threat

    assert threat.Norm is Norm and threat.project is project and threat.flat_norm is flat_norm
    assert threat.BOUNDS == norms_module.BOUNDS == (0.0, 1.0)


def test_norms_is_a_core_module():
    # Only torch and advbench.errors: attacks, engine and training all sit above it.
    tree = ast.parse(Path(norms_module.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported <= {"__future__", "dataclasses", "enum", "typing", "torch", "errors"}


def test_per_sample_broadcasts_against_any_rank():
    values = torch.arange(3.0)
    assert per_sample(values, torch.zeros(3, 1, 4, 4)).shape == (3, 1, 1, 1)
    assert per_sample(values, torch.zeros(3, 5)).shape == (3, 1)
    assert per_sample(values > 1, torch.zeros(3, 2, 2)).shape == (3, 1, 1)


def test_flat_norm_and_dual_norm_values():
    delta = torch.tensor([[3.0, -4.0], [0.0, 0.0]]).view(2, 1, 1, 2)
    assert flat_norm(delta, Norm.LINF).tolist() == [4.0, 0.0]
    assert flat_norm(delta, Norm.L2).tolist() == [5.0, 0.0]
    assert flat_norm(delta, "linf").tolist() == [4.0, 0.0]  # plain strings are accepted
    assert flat_norm(torch.zeros(2, 0), Norm.LINF).tolist() == [0.0, 0.0]
    w = torch.tensor([[3.0, -4.0]])
    assert dual_norm(w, Norm.LINF).tolist() == [7.0] and dual_norm(w, Norm.L2).tolist() == [5.0]


@pytest.mark.parametrize("norm", NORMS)
def test_normalisations_give_unit_rows_and_keep_zero_rows(norm):
    t = torch.randn(6, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    t[0] = 0
    assert torch.allclose(flat_norm(normalize(t, norm)[1:], norm), torch.ones(5))
    assert torch.allclose(flat_norm(ascent_direction(t, norm)[1:], norm), torch.ones(5))
    assert torch.allclose(l1_normalize(t)[1:].abs().flatten(1).sum(1), torch.ones(5))
    for out in (normalize(t, norm), ascent_direction(t, norm), l1_normalize(t)):
        assert torch.equal(out[0], torch.zeros_like(out[0]))  # zero, not NaN


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("eps", [0.0, 0.05, 1.5])
def test_projection_invariants(norm, eps):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 8, 8, generator=gen)
    far = x + 3 * torch.randn(64, 1, 8, 8, generator=gen)
    p = project(far, x, norm, eps)
    assert p.min() >= 0 and p.max() <= 1
    assert (flat_norm(p - x, norm) <= eps + 1e-6).all()
    # idempotent, and points already inside stay where they are
    assert torch.allclose(project(p, x, norm, eps), p, atol=1e-6)
    inside = x + (p - x) * 0.5
    assert torch.allclose(project(inside, x, norm, eps), inside, atol=1e-6)
    assert (flat_norm(project_ball(far - x, norm, eps), norm) <= eps + 1e-6).all()


def test_projection_l2_keeps_direction():
    x = torch.full((1, 1, 2, 2), 0.5)
    delta = torch.tensor([0.3, 0.4, 0.0, 0.0]).view(1, 1, 2, 2)  # norm 0.5
    p = project(x + delta, x, Norm.L2, 0.25)
    assert torch.allclose(p - x, delta * 0.5, atol=1e-7)


@pytest.mark.parametrize("norm", NORMS)
def test_random_starts_lie_in_the_ball_and_follow_the_generator(norm):
    x = torch.full((256, 1, 8, 8), 0.5)  # centred, so eps 0.2 never reaches the pixel bounds
    start = random_start(x, norm, 0.2, torch.Generator().manual_seed(0))
    assert (flat_norm(start - x, norm) <= 0.2 + 1e-6).all() and start.min() >= 0 and start.max() <= 1
    assert torch.equal(start, random_start(x, norm, 0.2, torch.Generator().manual_seed(0)))
    if norm is Norm.L2:
        # uniform in the ball: in 64 dimensions almost all of the volume is near the sphere, none at the centre
        assert flat_norm(start - x, norm).min() > 0.15
        sphere = random_start(x, norm, 0.2, torch.Generator().manual_seed(0), l2_sphere=True)
        assert torch.allclose(flat_norm(sphere - x, norm), torch.full((256,), 0.2))
    else:
        assert torch.equal(random_start(x, norm, 0.2, torch.Generator().manual_seed(0), l2_sphere=True), start)


def test_random_noise_per_norm():
    like = torch.zeros(2, 3)
    box = random_noise(like, Norm.LINF, torch.Generator().manual_seed(0), shape=(4000,))
    assert box.shape == (4000,) and box.min() >= -1 and box.max() <= 1 and box.min() < -0.99
    gauss = random_noise(like, Norm.L2, torch.Generator().manual_seed(0))
    assert gauss.shape == like.shape and gauss.dtype == like.dtype


@pytest.mark.parametrize("norm", NORMS)
def test_projected_step_is_project_of_the_ascent_step(norm):
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(8, 1, 4, 4, generator=gen)
    x_adv = project(x + 0.05 * torch.randn(8, 1, 4, 4, generator=gen), x, norm, 0.1)
    grad = torch.randn(8, 1, 4, 4, generator=gen)
    expected = project(x_adv + 0.03 * ascent_direction(grad, norm), x, norm, 0.1)
    assert torch.equal(projected_step(x_adv, x, grad, 0.03, norm, 0.1), expected)
    # per-sample step lengths
    steps = torch.linspace(0.0, 0.07, 8)
    expected = project(x_adv + per_sample(steps, x) * ascent_direction(grad, norm), x, norm, 0.1)
    assert torch.equal(projected_step(x_adv, x, grad, steps, norm, 0.1), expected)
    assert torch.allclose(projected_step(x_adv, x, grad, steps, norm, 0.1)[0], x_adv[0])  # a zero step stays
