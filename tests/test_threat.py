import pytest
import torch

from advbench.errors import ConfigError
from advbench.threat import Norm, ThreatModel, flat_norm, format_eps, parse_eps, parse_eps_list, project


@pytest.mark.parametrize("text,value", [("0.3", 0.3), ("8/255", 8 / 255), ("1e-2", 0.01), (" 0 ", 0.0), ("2 / 255", 2 / 255)])
def test_parse_eps(text, value):
    assert parse_eps(text) == pytest.approx(value, abs=0)


@pytest.mark.parametrize("text", ["abc", "-1", "1/0", "", "0.1.2", "nan", "inf", "8/"])
def test_parse_eps_rejects(text):
    with pytest.raises(ConfigError) as info:
        parse_eps(text)
    assert "\n" not in str(info.value)


def test_parse_eps_list_keeps_order_and_drops_duplicates():
    assert parse_eps_list("0.3,0.1,0.3") == [0.3, 0.1]
    with pytest.raises(ConfigError):
        parse_eps_list(" , ")


def test_format_eps():
    assert format_eps(8 / 255) == "8/255"
    assert format_eps(0.3) == "0.3"
    assert format_eps(0.0) == "0"


def test_norm_parse():
    assert Norm.parse("Linf") is Norm.LINF and Norm.parse("L2") is Norm.L2
    with pytest.raises(ConfigError):
        Norm.parse("l1")


@pytest.mark.parametrize("norm", [Norm.LINF, Norm.L2])
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


def test_projection_l2_keeps_direction():
    x = torch.full((1, 1, 2, 2), 0.5)
    delta = torch.tensor([0.3, 0.4, 0.0, 0.0]).view(1, 1, 2, 2)  # norm 0.5
    p = project(x + delta, x, Norm.L2, 0.25)
    assert torch.allclose(p - x, delta * 0.5, atol=1e-7)


def test_eps_zero_projects_to_x_exactly():
    x = torch.rand(4, 3, 5, 5)
    assert torch.equal(ThreatModel(Norm.LINF, 0.0).project(x + 0.3, x), x)


def test_threat_model_rejects_negative_eps():
    with pytest.raises(ConfigError):
        ThreatModel(Norm.LINF, -0.1)
