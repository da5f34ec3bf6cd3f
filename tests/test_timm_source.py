"""timm models offline: local weights, preprocessing from the pretrained config, clear errors."""

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

import advbench
from advbench._compat import import_timm
from advbench.cli.app import app
from advbench.errors import WeightsError


@pytest.fixture(scope="module")
def timm_weights(tmp_path_factory):
    """A test_resnet with 1 input channel and 10 classes, saved as safetensors and as a .pth state dict."""
    timm = import_timm()
    torch.manual_seed(0)
    net = timm.create_model("test_resnet", pretrained=False, in_chans=1, num_classes=10).eval()
    folder = tmp_path_factory.mktemp("timm")
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(folder / "test_resnet.safetensors"))
    torch.save(state, folder / "test_resnet.pth")
    return net, folder


@pytest.mark.parametrize("filename", ["test_resnet.safetensors", "test_resnet.pth"])
def test_load_model_with_local_weights_applies_the_models_own_normalisation(timm_weights, filename):
    net, folder = timm_weights
    model = advbench.load_model("test_resnet", weights=str(folder / filename))
    cfg = import_timm().models.get_pretrained_cfg("test_resnet")
    # in_chans and num_classes were read off the checkpoint; mean/std from timm's config (3 -> 1 channel)
    assert model.num_classes == 10 and model.input_shape[0] == 1
    assert model.mean.flatten().tolist() == pytest.approx([sum(cfg.mean) / 3])
    assert model.std.flatten().tolist() == pytest.approx([sum(cfg.std) / 3])
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        expected = net((x - model.mean) / model.std)
    assert torch.allclose(model(x), expected, atol=1e-5)
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_cli_evaluates_a_timm_architecture_with_local_weights(timm_weights, tmp_path):
    _, folder = timm_weights
    result = CliRunner().invoke(app, [
        "run", "--models", "test_resnet", "--weights", str(folder / "test_resnet.safetensors"),
        "--attacks", "fgsm", "--eps", "0.1", "--n-samples", "20", "--device", "cpu", "--out", str(tmp_path), "--quiet",
    ])
    assert result.exit_code == 0, result.output
    assert "test_resnet" in result.stdout


def test_state_dict_for_another_architecture_is_a_clear_error(timm_weights):
    _, folder = timm_weights
    with pytest.raises(WeightsError) as info:
        advbench.load_model("test_efficientnet", weights=str(folder / "test_resnet.safetensors"), in_chans=1, num_classes=10)
    message = str(info.value)
    assert "\n" not in message and "test_resnet.safetensors" in message


def test_offline_without_weights_never_builds_a_random_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match="--weights PATH"):
        advbench.load_model("resnet18")


def test_unknown_architecture_is_unknown_model():
    from advbench.errors import RegistryError

    with pytest.raises(RegistryError, match="no timm architecture"):
        advbench.load_model("resnet5000")


def test_pretrained_weights_come_from_a_populated_hf_cache_offline(tmp_path, monkeypatch):
    """The real hub loading path, offline: timm finds the checkpoint in the Hugging Face cache."""
    import huggingface_hub.constants as hf_constants

    timm = import_timm()
    cfg = timm.models.get_pretrained_cfg("test_resnet")
    torch.manual_seed(1)
    reference = timm.create_model("test_resnet", pretrained=False).eval()
    repo = tmp_path / ("models--" + cfg.hf_hub_id.replace("/", "--"))
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(snapshot / "model.safetensors"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)

    model = advbench.load_model("test_resnet")
    assert model.num_classes == 1000 and model.input_shape == tuple(cfg.input_size)
    assert model.mean.flatten().tolist() == pytest.approx(list(cfg.mean))
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), reference((x - model.mean) / model.std), atol=1e-5)


@pytest.mark.parametrize("env_before", [None, "0"])
def test_offline_mode_is_scoped_to_the_failing_load(monkeypatch, env_before):
    """Unreachable hub: the load answers from the cache (offline on), then the process is as it was."""
    import os

    import huggingface_hub.constants as hf_constants
    import timm.models._hub as timm_hub

    from advbench.models import hub

    import_timm()
    if env_before is None:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", env_before)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=1.5: False)
    seen = []

    def config_from_hub(model_id):
        seen.append((os.environ.get("HF_HUB_OFFLINE"), hf_constants.HF_HUB_OFFLINE))
        raise FileNotFoundError("")  # what an empty cache gives offline

    monkeypatch.setattr(timm_hub, "load_model_config_from_hf", config_from_hub)
    with pytest.raises(WeightsError, match="cannot get its config.json"):
        advbench.load_model("hf-hub:nobody/nothing")
    assert seen == [("1", True)]
    assert os.environ.get("HF_HUB_OFFLINE") == env_before and hf_constants.HF_HUB_OFFLINE is False


def test_hub_offline_restores_on_errors_and_reachable_hub_changes_nothing(monkeypatch):
    import os

    import huggingface_hub.constants as hf_constants

    from advbench.models import hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "false")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(RuntimeError), hub.hub_offline():
        assert os.environ["HF_HUB_OFFLINE"] == "1" and hf_constants.HF_HUB_OFFLINE
        raise RuntimeError("load failed")
    assert os.environ["HF_HUB_OFFLINE"] == "false" and hf_constants.HF_HUB_OFFLINE is False
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=1.5: True)
    with hub.offline_unless_reachable():
        assert os.environ["HF_HUB_OFFLINE"] == "false" and hf_constants.HF_HUB_OFFLINE is False
