import pytest
import torch

from advbench.errors import ConfigError
from advbench.threat import Norm, ThreatModel, format_eps, parse_eps, parse_eps_list


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


def test_eps_zero_projects_to_x_exactly():
    x = torch.rand(4, 3, 5, 5)
    assert torch.equal(ThreatModel(Norm.LINF, 0.0).project(x + 0.3, x), x)


def test_threat_model_rejects_negative_eps():
    with pytest.raises(ConfigError):
        ThreatModel(Norm.LINF, -0.1)
