"""Model sources beyond the zoo, all offline on files made in tmp_path: file:PATH --arch, py:module:factory,
local-dir: and hf-hub: timm folders, img_size overrides with the model's own resize before the attack."""

import json
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import advbench
from advbench._compat import import_timm
from advbench.cli.app import app
from advbench.errors import ConfigError, WeightsError
from advbench.models.timm_source import ResizeCrop


def _save(net, path):
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def _same_outputs(model, net, x, mean=0.0, std=1.0):
    with torch.no_grad():
        return torch.allclose(model(x), net((x - mean) / std), atol=1e-5)


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    """An MNIST-shaped timm test_resnet (1 channel, 10 classes) and its safetensors file."""
    torch.manual_seed(0)
    net = import_timm().create_model("test_resnet", pretrained=False, in_chans=1, num_classes=10).eval()
    return net, _save(net, tmp_path_factory.mktemp("file") / "resnet.safetensors")


def test_file_model_with_a_timm_arch_runs_from_the_cli(resnet_file, tmp_path):
    _, path = resnet_file
    result = CliRunner().invoke(app, [
        "run", "--models", f"file:{path}", "--arch", "test_resnet", "--attacks", "fgsm", "--eps", "0.1",
        "--n-samples", "8", "--device", "cpu", "--out", str(tmp_path / "run"), "--quiet", "--format", "csv",
    ])
    assert result.exit_code == 0, result.output
    assert f"file:{path}" in result.stdout


def test_file_model_loads_strictly_with_checks(resnet_file, tmp_path):
    net, path = resnet_file
    model = advbench.load_model(f"file:{path}", arch="test_resnet")
    assert model.num_classes == 10 and model.input_shape[0] == 1
    assert _same_outputs(model, net, torch.rand(2, 1, 28, 28), model.mean, model.std)
    with pytest.raises(WeightsError, match="sha256") as info:
        advbench.load_model(f"file:{path}", arch="test_resnet", sha256="0" * 64)
    with pytest.raises(WeightsError) as info:  # a state dict for another architecture
        advbench.load_model(f"file:{path}", arch="test_efficientnet")
    assert "\n" not in str(info.value) and "resnet.safetensors" in str(info.value)
    with pytest.raises(ConfigError, match="--arch"):
        advbench.load_model(f"file:{path}")
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        advbench.load_model(f"file:{truncated}", arch="test_resnet")


def test_file_model_with_advbench_cnn_arch(tmp_path):
    from advbench.models.archs import build_arch

    torch.manual_seed(0)
    net = build_arch("cnn", (1, 28, 28), 10).eval()
    path = _save(net, tmp_path / "cnn.safetensors")
    model = advbench.load_model(f"file:{path}", arch="cnn", input_size="1,28,28", mean="0.5", std="0.25")
    assert model.num_classes == 10
    assert _same_outputs(model, net, torch.rand(3, 1, 28, 28), 0.5, 0.25)
    with pytest.raises(ConfigError, match="input_size"):
        advbench.load_model(f"file:{path}", arch="cnn")


FACTORY = """
import torch
from torch import nn

def make(hidden="16"):
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, int(hidden)), nn.ReLU(), nn.Linear(int(hidden), 10))
"""


def test_py_factory_model(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(textwrap.dedent(FACTORY))
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_models

    model = advbench.load_model("py:my_models:make", input_size="1,28,28", mean="0.1307", std="0.3081", kwargs="hidden=8")
    assert model.num_classes == 10 and model.input_shape == (1, 28, 28)
    assert _same_outputs(model, my_models.make("8").eval(), torch.rand(2, 1, 28, 28), 0.1307, 0.3081)
    rows = advbench.evaluate(models="py:my_models:make", attacks="fgsm", eps=[0.1], n_samples=8, device="cpu",
                             model_options={"py:my_models:make": {"input_size": "1,28,28"}}, sanity_checks=False).rows
    assert len(rows) == 8
    with pytest.raises(ConfigError) as info:
        advbench.load_model("py:no_such_module_xyz:make", input_size="1,28,28")
    assert "\n" not in str(info.value) and "no_such_module_xyz" in str(info.value)
    with pytest.raises(ConfigError, match="input_size"):
        advbench.load_model("py:my_models:make")


def _timm_folder(path, arch="test_resnet", **kwargs):
    timm = import_timm()
    from timm.models import save_for_hf

    torch.manual_seed(0)
    net = timm.create_model(arch, pretrained=False, **kwargs).eval()
    save_for_hf(net, str(path), safe_serialization=True)
    return net


def test_local_dir_model_from_a_timm_folder(tmp_path):
    net = _timm_folder(tmp_path / "mine", in_chans=1, num_classes=10)
    assert (tmp_path / "mine" / "config.json").is_file() and (tmp_path / "mine" / "model.safetensors").is_file()
    model = advbench.load_model(f"local-dir:{tmp_path / 'mine'}")
    assert model.num_classes == 10 and model.input_shape[0] == 1
    assert _same_outputs(model, net, torch.rand(2, 1, 28, 28), model.mean, model.std)
    with pytest.raises(WeightsError, match="config.json"):
        advbench.load_model(f"local-dir:{tmp_path / 'missing'}")


def test_hf_hub_model_from_the_cache_offline(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    net = _timm_folder(tmp_path / "export", num_classes=5)
    snapshot = tmp_path / "hub" / "models--someone--tiny" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (tmp_path / "hub" / "models--someone--tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--someone--tiny" / "refs" / "main").write_text("0" * 40)
    for name in ("config.json", "model.safetensors"):
        (snapshot / name).write_bytes((tmp_path / "export" / name).read_bytes())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)

    model = advbench.load_model("hf-hub:someone/tiny")
    assert model.num_classes == 5
    assert _same_outputs(model, net, torch.rand(2, 3, 32, 32), model.mean, model.std)
    with pytest.raises(WeightsError, match="network access"):
        advbench.load_model("hf-hub:someone/not_cached")


def test_preprocess_resizes_and_crops_without_normalising():
    small = torch.rand(4, 1, 28, 28)
    up = ResizeCrop((32, 32), 1, interpolation="bicubic", crop_pct=0.9)(small)
    assert up.shape == (4, 1, 32, 32) and up.min() >= 0 and up.max() <= 1
    big = torch.rand(2, 3, 300, 400)
    down = ResizeCrop((224, 224), 3, crop_pct=0.875)(big)
    assert down.shape == (2, 3, 224, 224)
    # a convolutional net (not exact) takes small images as they are
    assert ResizeCrop((224, 224), 1, exact=False)(small) is small
    with pytest.raises(ConfigError, match="in_chans=1"):
        ResizeCrop((32, 32), 3, model="m")(small)


def test_vit_with_img_size_override_runs_end_to_end_on_resized_mnist(tmp_path):
    """test_vit has a fixed input size: img_size=32 rebuilds it, and mnist's 28x28 images are resized to 32x32
    before the attack, so the stored adversarials (and eps) live on the model's 32x32 input pixels."""
    torch.manual_seed(0)
    vit = import_timm().create_model("test_vit", pretrained=False, in_chans=1, num_classes=10, img_size=32)
    path = _save(vit, tmp_path / "vit.safetensors")
    result = CliRunner().invoke(app, [
        "run", "--models", "test_vit", "--weights", str(path), "--model-opt", "in_chans=1",
        "--model-opt", "num_classes=10", "--model-opt", "img_size=32", "--attacks", "fgsm", "--eps", "0.1",
        "--n-samples", "6", "--device", "cpu", "--out", str(tmp_path / "run"), "--quiet", "--format", "json",
        "--no-sanity-checks",
    ])
    assert result.exit_code == 0, result.output
    (adv_file,) = (tmp_path / "run" / "adversarials").glob("*.safetensors")
    x_adv = load_file(str(adv_file))["x_adv"]
    assert x_adv.shape == (6, 1, 32, 32)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert not manifest["failures"]
