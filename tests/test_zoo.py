"""The shipped zoo: every model loads frozen in eval mode and matches its card; broken files are caught."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from advbench.data import builtin_datasets
from advbench.errors import ConfigError, WeightsError
from advbench.models.zoo import ZOO_DIR, zoo_specs
from advbench.train import accuracy

SHIPPED = {"cnn.mnist5k_std", "test_resnet.mnist5k_std", "linear.mnist5k_std"}


def test_shipped_zoo_lists_cleanly():
    errors: list[WeightsError] = []
    specs = {spec.name: spec for spec in zoo_specs(errors=errors)}
    assert not errors
    assert SHIPPED <= set(specs)
    for spec in specs.values():
        if spec.card["arch"] == "dcgan_d":  # the GAN discriminator: real/fake over the mnist5k-gan dataset
            assert spec.dataset == "mnist5k-gan" and spec.num_classes == 2
            continue
        assert spec.dataset == "mnist-5k" and spec.input_shape == (1, 28, 28) and spec.num_classes == 10
        assert spec.description and "\n" not in spec.description and "clean acc" in spec.description
        assert spec.tags[0] == spec.card["recipe"]["name"] and spec.tags[1] == spec.card["arch"]
        # small enough to ship: the largest is Madry et al.'s MNIST network (3.3 M parameters, 13 MB)
        assert (ZOO_DIR / f"{spec.name}.safetensors").stat().st_size < 16 * 2**20


def test_listing_imports_neither_timm_nor_torch():
    code = (
        "import sys; from advbench.models.zoo import zoo_specs; from advbench.data import builtin_datasets; "
        "assert zoo_specs() and builtin_datasets(); "
        "print(sorted(m for m in ('timm', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # advbench/__init__ may pull torch in; timm must never be needed to list the zoo.
    assert "timm" not in out


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_loads_frozen_and_matches_its_card(name):
    spec = {s.name: s for s in zoo_specs()}[name]
    model = spec.load(device="cpu")
    assert not any(module.training for module in model.modules())
    assert not any(param.requires_grad for param in model.parameters())
    mnist = {d.name: d for d in builtin_datasets()}[spec.card["dataset"]]
    x, y = mnist.load(spec.card["eval_split"])
    acc = accuracy(model, x, y)
    assert abs(acc - spec.card["clean_accuracy"]) <= 0.005
    # Inputs are [0, 1]: normalisation must be inside (feeding normalised inputs would be a different model).
    assert torch.allclose(model.mean.flatten(), torch.tensor(spec.card["mean"]))


@pytest.fixture()
def zoo_copy(tmp_path):
    for suffix in (".json", ".safetensors"):
        shutil.copy(ZOO_DIR / f"linear.mnist5k_std{suffix}", tmp_path)
    return tmp_path


def test_sha256_mismatch_is_refused(zoo_copy):
    weights = zoo_copy / "linear.mnist5k_std.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # flip bits in the last weight: the file still parses, only the hash can tell
    weights.write_bytes(bytes(data))
    (spec,) = zoo_specs(zoo_copy)
    with pytest.raises(WeightsError) as info:
        spec.load()
    message = str(info.value)
    assert str(weights) in message and spec.card["sha256"][:12] in message and "advbench train" in message
    assert "\n" not in message


def test_bad_cards_are_skipped_and_reported(zoo_copy):
    (zoo_copy / "broken.json").write_text("{not json")
    card = json.loads((zoo_copy / "linear.mnist5k_std.json").read_text())
    del card["sha256"]
    (zoo_copy / "nohash.json").write_text(json.dumps({**card, "name": "nohash"}))
    (zoo_copy / "noweights.json").write_text(json.dumps({**card, "name": "noweights", "sha256": "0" * 64}))
    errors: list[WeightsError] = []
    specs = zoo_specs(zoo_copy, errors=errors)
    assert [s.name for s in specs] == ["linear.mnist5k_std"]
    messages = sorted(str(e) for e in errors)
    assert len(messages) == 3 and all("\n" not in m for m in messages)
    assert "not valid JSON" in messages[0] and "sha256" in messages[1] and "no weights file" in messages[2]


def test_a_broken_card_is_reported_under_its_name(tmp_path, monkeypatch):
    """Asking for a model whose card is broken gives the real error, not 'unknown model'."""
    import shutil

    import advbench
    from advbench.models import zoo
    from advbench.plugins import make_host, set_host

    broken = tmp_path / "zoo"
    broken.mkdir()
    shutil.copy(zoo.ZOO_DIR / "linear.mnist5k_std.json", broken / "linear.mnist5k_std.json")  # no weights file
    monkeypatch.setattr(zoo, "ZOO_DIR", broken)
    monkeypatch.setattr(zoo.zoo_specs, "__defaults__", (broken, None))
    set_host(make_host(autoload=False))
    with pytest.raises(WeightsError, match="no weights file"):
        advbench.load_model("linear.mnist5k_std")


@pytest.mark.parametrize("option", ["weights", "card", "depth"])
def test_a_zoo_model_refuses_every_load_option_by_name(option):
    # `weights` once collided with the loader's own positional argument ("got multiple values")
    from advbench.plugins import make_host

    spec = make_host().registry.models.get("linear.mnist5k_std")
    with pytest.raises(ConfigError, match=rf"takes no load options \(got {option}\)"):
        spec.load(device="cpu", **{option: "x"})
