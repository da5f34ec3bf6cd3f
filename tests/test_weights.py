"""Checkpoint loading treats files as untrusted: every failure is a one-line WeightsError naming the file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from advbench.errors import WeightsError
from advbench.models.archs import build_arch
from advbench.models.weights import load_into, load_state_dict, sha256_file


def _mark(path: str) -> None:
    """What a malicious pickle would run on load; here it only creates a file we can look for."""
    Path(path).write_text("ran")


class _Payload:
    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (_mark, (self.path,))


def _net():
    return build_arch("linear", (1, 8, 8), 10)


def _one_line_error(info: pytest.ExceptionInfo, path: Path) -> str:
    message = str(info.value)
    assert message and "\n" not in message
    assert str(path) in message
    return message


def test_sha256_file(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"advbench" * 100_000)
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_round_trips_safetensors_and_nested_torch_checkpoints(tmp_path):
    state = _net().state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "w.safetensors")
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "w.pt")
    torch.save({"model": state}, tmp_path / "m.pth")
    for name in ("w.safetensors", "w.pt", "m.pth"):
        loaded = load_state_dict(tmp_path / name)
        assert loaded.keys() == state.keys()
        assert all(torch.equal(loaded[k], state[k]) for k in state)
        load_into(_net(), loaded, source=name)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.safetensors"
    with pytest.raises(WeightsError) as info:
        load_state_dict(path)
    assert "does not exist" in _one_line_error(info, path)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_truncated_file(tmp_path, suffix):
    path = tmp_path / f"w{suffix}"
    state = {k: v.contiguous() for k, v in _net().state_dict().items()}
    save_file(state, path) if suffix == ".safetensors" else torch.save(state, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError) as info:
        load_state_dict(path)
    assert "truncated or corrupt" in _one_line_error(info, path)


def test_garbage_file(tmp_path):
    path = tmp_path / "w.bin"
    path.write_text("this is not a checkpoint")
    with pytest.raises(WeightsError) as info:
        load_state_dict(path)
    assert "corrupt" in _one_line_error(info, path)


def test_pickle_that_runs_code_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(2), "payload": _Payload(marker)}, path)
    with pytest.raises(WeightsError) as info:
        load_state_dict(path)
    message = _one_line_error(info, path)
    assert "arbitrary code" in message and "safetensors" in message
    assert not marker.exists()


@pytest.mark.parametrize("content", [torch.zeros(3), [torch.zeros(3)], {"w": 3}, {}])
def test_not_a_mapping_of_tensors(tmp_path, content):
    path = tmp_path / "w.pt"
    torch.save(content, path)
    with pytest.raises(WeightsError) as info:
        load_state_dict(path)
    _one_line_error(info, path)


def test_state_dict_for_another_architecture():
    cnn = build_arch("cnn", (1, 8, 8), 10)
    with pytest.raises(WeightsError) as info:
        load_into(cnn, _net().state_dict(), source="linear.pt")
    message = str(info.value)
    assert "linear.pt" in message and "missing" in message and "unexpected" in message and "\n" not in message


def test_shape_mismatch_is_reported():
    narrow = build_arch("cnn", (1, 8, 8), 10, width=8).state_dict()
    with pytest.raises(WeightsError) as info:
        load_into(build_arch("cnn", (1, 8, 8), 10), narrow, source="narrow.safetensors")
    assert "shape mismatch" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("options,fragment", [
    ({"width": 0}, "cnn option width=0 must be a positive integer"),
    ({"hidden": "wide"}, "cnn option hidden='wide' must be a positive integer"),
    ({"depth": 3}, "bad options for arch 'cnn'"),
])
def test_cnn_options_are_checked(options, fragment):
    from advbench.errors import ConfigError

    with pytest.raises(ConfigError, match=fragment):
        build_arch("cnn", (1, 8, 8), 10, **options)
