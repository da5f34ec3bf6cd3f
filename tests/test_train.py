"""train_classifier: deterministic, writes loadable weights and a complete card; small pieces of the loop."""

from __future__ import annotations

import json

import pytest
import torch

from advbench.data import builtin_datasets
from advbench.errors import ConfigError
from advbench.models.weights import load_state_dict, sha256_file
from advbench.models.zoo import zoo_specs
from advbench.train import RECIPES, accuracy, train_classifier
from advbench.train.trainer import random_shift

DIGITS = {d.name: d for d in builtin_datasets()}["digits"]
CARD_KEYS = {
    "name",
    "arch",
    "arch_options",
    "dataset",
    "train_split",
    "eval_split",
    "input_shape",
    "num_classes",
    "mean",
    "std",
    "recipe",
    "seed",
    "epochs",
    "clean_accuracy",
    "wall_time_s",
    "sha256",
    "versions",
    "created",
    "command",
}


def _train(out_dir, **overrides):
    args = dict(
        dataset=DIGITS,
        arch="linear",
        name="linear.digits_std",
        out_dir=out_dir,
        epochs=2,
        lr=1e-2,
        seed=0,
        progress=False,
    )
    return train_classifier(**{**args, **overrides})


def test_same_seed_same_bytes_and_a_complete_card(tmp_path):
    torch.manual_seed(7)
    expected_next = torch.rand(1)
    torch.manual_seed(7)
    first = _train(tmp_path / "a")
    assert torch.equal(torch.rand(1), expected_next)  # training must not consume the caller's RNG stream
    second = _train(tmp_path / "b")
    assert first["sha256"] == second["sha256"]
    assert _train(tmp_path / "c", seed=1)["sha256"] != first["sha256"]

    weights = tmp_path / "a" / "linear.digits_std.safetensors"
    card = json.loads((tmp_path / "a" / "linear.digits_std.json").read_text())
    assert CARD_KEYS <= set(card) and card == first
    assert card["sha256"] == sha256_file(weights)
    assert card["recipe"]["name"] == "std" and {"lr", "batch_size", "epochs", "weight_decay"} <= set(card["recipe"])
    assert set(card["versions"]) == {"advbench", "torch", "timm"}
    assert card["command"].startswith("advbench train --dataset digits --arch linear --name linear.digits_std")
    assert 0.8 < card["clean_accuracy"] <= 1.0
    assert set(load_state_dict(weights)) == {"1.weight", "1.bias"}  # the bare net: normalisation is not saved

    # The card's accuracy is what the zoo loader reproduces from the files.
    (spec,) = zoo_specs(tmp_path / "a")
    x, y = DIGITS.load("test")
    assert accuracy(spec.load(), x, y) == pytest.approx(card["clean_accuracy"], abs=1e-6)


def test_batchnorm_trains_in_train_mode(tmp_path):
    card = train_classifier(dataset=DIGITS, arch="test_resnet", name="r", out_dir=tmp_path, epochs=1, progress=False)
    state = load_state_dict(tmp_path / "r.safetensors")
    running = [v for k, v in state.items() if k.endswith("running_mean")]
    assert running and all(v.abs().sum() > 0 for v in running)  # statistics moved from their zero init
    assert all(int(v) > 0 for k, v in state.items() if k.endswith("num_batches_tracked"))
    assert 0.0 <= card["clean_accuracy"] <= 1.0


def test_cnn_handles_8x8_inputs(tmp_path):
    card = train_classifier(dataset=DIGITS, arch="cnn", name="c", out_dir=tmp_path, epochs=1, progress=False)
    assert card["input_shape"] == [1, 8, 8] and card["clean_accuracy"] > 0.3


def test_bad_arguments_are_config_errors(tmp_path):
    assert RECIPES[0] == "std" and {"fgsm-at", "mixed-batch", "pgd-at", "vat", "trades"} <= set(RECIPES)
    for overrides in (
        {"recipe": "nope"},
        {"epochs": 0},
        {"name": "../escape"},
        {"arch": "no_such_arch"},
        {"recipe_options": {"eps": 0.3}},
    ):
        with pytest.raises(ConfigError):
            _train(tmp_path, **overrides)
    assert not list(tmp_path.iterdir())  # nothing written on a rejected configuration


def test_random_shift_moves_without_losing_pixels():
    x = torch.zeros(64, 1, 12, 12)
    x[:, :, 4:8, 5:8] = torch.rand(64, 1, 4, 3)  # content 4 px from every border: a 2 px shift keeps it all
    gen = torch.Generator().manual_seed(0)
    shifted = random_shift(x, 2, gen)
    assert shifted.shape == x.shape
    assert torch.allclose(shifted.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)))
    assert (shifted != x).any(dim=(1, 2, 3)).float().mean() > 0.8  # most images actually moved (1/25 stay put)
    assert torch.equal(random_shift(x, 2, torch.Generator().manual_seed(0)), shifted)
    assert random_shift(x, 0, gen) is x
