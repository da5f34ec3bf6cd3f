"""Channels-last max pooling on the CPU (advbench.models.pooling) is the same function as nn.MaxPool2d: identical
outputs and input gradients, bit for bit, so switching it on changes no number a run records."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
import torch
from torch import nn

import advbench
from advbench.models.pooling import ChannelsLastMaxPool2d, _pair, channels_last_pools, eligible, strided_max_pool


def _with_ties(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.relu(torch.randn(*shape, generator=g))  # post-ReLU: many windows tie at 0
    x[:, :, ::3] = 0.5  # and ties among positive values too
    return x


@pytest.mark.parametrize("kwargs,shape", [
    ({"kernel_size": 2}, (7, 5, 28, 28)),
    ({"kernel_size": 2, "padding": 1}, (3, 4, 13, 13)),
    ({"kernel_size": (2, 3), "stride": (2, 3)}, (2, 3, 12, 12)),
    ({"kernel_size": 3, "stride": 3}, (2, 2, 10, 11)),
])
def test_outputs_and_input_gradients_are_bit_identical(kwargs, shape):
    reference = nn.MaxPool2d(**kwargs)
    fast = copy.deepcopy(reference)
    assert channels_last_pools(fast) == 1 and isinstance(fast, ChannelsLastMaxPool2d)
    x = _with_ties(shape)
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out_a, out_b = reference(a), fast(b)
    assert torch.equal(out_a, out_b) and out_b.is_contiguous()
    upstream = torch.randn_like(out_a)
    (out_a * upstream).sum().backward()
    (out_b * upstream).sum().backward()
    assert torch.equal(a.grad, b.grad)
    with torch.no_grad():
        assert torch.equal(reference(x), fast(x))


@pytest.mark.parametrize("kernel,shape", [(2, (7, 5, 28, 28)), (2, (3, 4, 13, 15)), ((2, 3), (2, 3, 12, 14)),
                                          (3, (2, 2, 10, 11)), (2, (1, 1, 2, 2))])
def test_the_no_autograd_path_gives_the_reference_values_with_ties_and_nan(kernel, shape):
    # strided maxima (no layout copy): the same values as PyTorch's NCHW kernel, floor mode on odd sizes, NaN kept
    reference, fast = nn.MaxPool2d(kernel), nn.MaxPool2d(kernel)
    channels_last_pools(fast)
    x = _with_ties(shape)
    x[0, 0, 0, 0] = float("nan")
    x[-1, -1, -1, -1] = -0.0
    with torch.no_grad():
        want, got = reference(x), fast(x)
    assert got.shape == want.shape and got.is_contiguous()
    assert torch.equal(got.isnan(), want.isnan()) and want.isnan().any()
    assert torch.equal(got.nan_to_num(), want.nan_to_num())
    assert torch.equal(strided_max_pool(x, _pair(kernel)).nan_to_num(), want.nan_to_num())


def test_too_small_an_input_fails_as_pytorch_does():
    fast = nn.MaxPool2d(3)
    channels_last_pools(fast)
    with torch.no_grad(), pytest.raises(RuntimeError):
        fast(torch.zeros(1, 1, 2, 2))


@pytest.mark.parametrize("pool", [
    nn.MaxPool2d(3, stride=2, padding=1),  # overlapping windows: the backward would sum in another order
    nn.MaxPool2d(2, ceil_mode=True),
    nn.MaxPool2d(2, return_indices=True),
    nn.MaxPool2d(2, dilation=2),
    nn.AvgPool2d(2),
])
def test_only_non_overlapping_plain_max_pools_are_switched(pool):
    assert not eligible(pool)
    assert channels_last_pools(pool) == 0 and not isinstance(pool, ChannelsLastMaxPool2d)


def test_the_zoo_cnn_computes_the_same_logits_and_gradients():
    net = advbench.load_model("cnn.mnist5k_std")
    fast = copy.deepcopy(net)
    assert channels_last_pools(fast) == 2
    assert channels_last_pools(fast) == 2  # idempotent: counts the pools already switched
    assert fast.state_dict().keys() == net.state_dict().keys()
    x, _ = advbench.load_dataset("mnist-5k", "test")
    x = x[:64]
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    la, lb = net(a), fast(b)
    assert torch.equal(la, lb)
    torch.nn.functional.cross_entropy(la, la.argmax(1)).backward()
    torch.nn.functional.cross_entropy(lb, lb.argmax(1)).backward()
    assert torch.equal(a.grad, b.grad)


def test_a_run_records_the_switch_and_the_same_rows_as_without_it(tmp_path):
    settings = {"attacks": ["fgsm", "pgd"], "eps": [0.1], "n_samples": 40, "out": None, "device": "cpu",
                "attack_options": {"pgd": {"steps": 5}}}
    default = advbench.evaluate(["cnn.mnist5k_std"], **{**settings, "out": tmp_path / "a"})
    plain = advbench.evaluate(["cnn.mnist5k_std"], channels_last=False, **{**settings, "out": tmp_path / "b"})
    manifest_a = json.loads((tmp_path / "a" / "manifest.json").read_text())
    manifest_b = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest_a["acceleration"]["cnn.mnist5k_std"]["channels_last_pools"] == 2
    assert manifest_b["acceleration"]["cnn.mnist5k_std"]["channels_last_pools"] == 0
    drop = ["seconds", "fingerprint"]  # the fingerprint holds the settings, which differ by --no-channels-last
    pd.testing.assert_frame_equal(default.rows.drop(columns=drop), plain.rows.drop(columns=drop))
