"""robustbench:<name> models through robustbench's load_model, with only its download function mocked."""

import sys

import pytest
import torch

import advbench
import advbench_robustbench
from advbench.errors import RegistryError, WeightsError
from advbench.plugins import make_host, set_host
from advbench.specs import DatasetSpec
from advbench_robustbench import source

import rb_standin

NAME = "robustbench:Tiny2024Robust"


class TinyCifar:
    """Eight seeded 3x32x32 images: a stand-in for cifar10 so the test needs no data files."""

    @advbench.hookimpl
    def advbench_register_datasets(self, registrar):
        gen = torch.Generator().manual_seed(0)
        x, y = torch.rand(8, 3, 32, 32, generator=gen), torch.arange(8) % 10
        registrar.add(DatasetSpec("tiny-cifar", lambda split: (x, y), num_classes=10, input_shape=(3, 32, 32)))


@pytest.fixture
def robustbench(monkeypatch, tmp_path):
    """The stand-in package installed, the plugin on a fresh host, checkpoints under tmp_path."""
    utils = rb_standin.install(monkeypatch)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    set_host(make_host(autoload=False, extra=[("robustbench", advbench_robustbench), ("tiny", TinyCifar())]))
    yield utils
    set_host(None)


def _fake_download(reference, calls):
    def download(gdrive_id, fname_save):  # what gdown would write: the checkpoint, here a DataParallel state dict
        calls.append(gdrive_id)
        torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, fname_save)

    return download


def test_model_downloads_once_and_evaluates(robustbench, monkeypatch):
    torch.manual_seed(0)
    reference, calls = rb_standin.TinyNet().eval(), []
    monkeypatch.setattr(source, "drive_reachable", lambda timeout=1.5: True)
    monkeypatch.setattr(robustbench, "download_gdrive_new", _fake_download(reference, calls))

    model = advbench.load_model(NAME)
    assert calls == ["1AbCdEf"] and model.num_classes == 10 and model.input_shape == (3, 32, 32)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), reference(x), atol=1e-6)  # no extra normalisation: [0, 1] pixels
    assert not any(p.requires_grad for p in model.parameters())

    monkeypatch.setattr(source, "drive_reachable", lambda timeout=1.5: False)  # cached now: offline is fine
    rows = advbench.evaluate(models=NAME, attacks="fgsm", eps=["8/255"], dataset="tiny-cifar", device="cpu").rows
    assert len(rows) == 8 and calls == ["1AbCdEf"]
    spec = advbench.plugins.get_host().model_spec(NAME)
    assert spec.dataset == "cifar10" and spec.num_classes == 10


def test_offline_without_checkpoint_fails_at_once(robustbench, monkeypatch):
    monkeypatch.setattr(source, "drive_reachable", lambda timeout=1.5: False)
    with pytest.raises(WeightsError, match="unreachable") as info:
        advbench.load_model(NAME)
    assert "\n" not in str(info.value) and "Tiny2024Robust.pt" in str(info.value)


def test_download_failure_and_truncated_checkpoint_are_one_line(robustbench, monkeypatch, tmp_path):
    monkeypatch.setattr(source, "drive_reachable", lambda timeout=1.5: True)
    with pytest.raises(WeightsError, match="downloading") as info:  # the stand-in's boundary raises by default
        advbench.load_model(NAME)
    assert "\n" not in str(info.value)

    def truncated(gdrive_id, fname_save):
        torch.save({"state_dict": rb_standin.TinyNet().state_dict()}, fname_save)
        data = open(fname_save, "rb").read()
        open(fname_save, "wb").write(data[: len(data) // 2])

    monkeypatch.setattr(robustbench, "download_gdrive_new", truncated)
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        advbench.load_model(NAME, model_dir=str(tmp_path / "models"))


def test_unknown_model_name_suggests_close_ones(robustbench):
    with pytest.raises(RegistryError, match="Tiny2024Robust"):
        advbench.load_model("robustbench:Tiny2024Robsut")


def test_without_robustbench_installed_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "robustbench", None)  # import robustbench -> ImportError
    set_host(make_host(autoload=False, extra=[("robustbench", advbench_robustbench)]))
    try:
        with pytest.raises(WeightsError, match=r"advbench-robustbench\[robustbench\]"):
            advbench.load_model(NAME)
    finally:
        set_host(None)
