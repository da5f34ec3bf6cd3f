"""A stand-in for the ``robustbench`` package (not installable next to advbench's timm: it pins timm==1.0.9).

It has the modules and names the plugin uses, and ``utils.load_model`` follows robustbench 1.1.1's code path for a
single-checkpoint model: ``<model_dir>/<dataset>/<threat>/<name>.pt``, ``download_gdrive_new`` when the file is
missing (the network boundary, which tests mock), ``torch.load``, ``module.`` prefixes stripped, strict
``load_state_dict``, ``eval()``.
"""

import os
import sys
import types
from collections import OrderedDict
from enum import Enum
from pathlib import Path

import torch
from torch import nn


class BenchmarkDataset(Enum):
    cifar_10 = "cifar10"
    cifar_100 = "cifar100"
    imagenet = "imagenet"


class ThreatModel(Enum):
    Linf = "Linf"
    L2 = "L2"
    corruptions = "corruptions"


class TinyNet(nn.Module):
    """A RobustBench-style model: [0, 1] inputs, normalisation inside."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mu", torch.tensor([0.49, 0.48, 0.45]).view(1, 3, 1, 1))
        self.fc = nn.Linear(3 * 32 * 32, 10)

    def forward(self, x):
        return self.fc((x - self.mu).flatten(1))


def download_gdrive_new(gdrive_id, fname_save):
    raise ConnectionError("no network in tests: mock robustbench.utils.download_gdrive_new")


def rm_substr_from_state_dict(state_dict, substr):
    return OrderedDict((k.replace(substr, ""), v) for k, v in state_dict.items())


def load_model(model_name, model_dir="./models", dataset="cifar10", threat_model="Linf"):
    dataset_, threat_ = BenchmarkDataset(dataset), ThreatModel(threat_model)
    model_dir_ = Path(model_dir) / dataset_.value / threat_.value
    model_path = model_dir_ / f"{model_name}.pt"
    models = sys.modules["robustbench.model_zoo"].model_dicts[dataset_][threat_]
    model = models[model_name]["model"]()
    os.makedirs(model_dir_, exist_ok=True)
    if not os.path.isfile(model_path):
        sys.modules["robustbench.utils"].download_gdrive_new(models[model_name]["gdrive_id"], model_path)
    checkpoint = torch.load(model_path, map_location=torch.device("cpu"))
    try:
        state_dict = rm_substr_from_state_dict(checkpoint["state_dict"], "module.")
    except KeyError:
        state_dict = rm_substr_from_state_dict(checkpoint, "module.")
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def install(monkeypatch):
    """Put ``robustbench``, ``robustbench.utils``, ``robustbench.model_zoo(.enums)`` into sys.modules."""
    package = types.ModuleType("robustbench")
    package.__path__ = []
    zoo = types.ModuleType("robustbench.model_zoo")
    zoo.__path__ = []
    enums = types.ModuleType("robustbench.model_zoo.enums")
    enums.BenchmarkDataset, enums.ThreatModel = BenchmarkDataset, ThreatModel
    zoo.model_dicts = {
        BenchmarkDataset.cifar_10: {
            ThreatModel.Linf: OrderedDict([("Tiny2024Robust", {"model": TinyNet, "gdrive_id": "1AbCdEf"})]),
            ThreatModel.L2: OrderedDict(),
        },
    }
    utils = types.ModuleType("robustbench.utils")
    utils.download_gdrive_new, utils.load_model = download_gdrive_new, load_model
    package.utils, package.model_zoo, zoo.enums = utils, zoo, enums
    for name, module in (("robustbench", package), ("robustbench.model_zoo", zoo),
                         ("robustbench.model_zoo.enums", enums), ("robustbench.utils", utils)):
        monkeypatch.setitem(sys.modules, name, module)
    return utils
