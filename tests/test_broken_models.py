"""Broken models are refused before any attack runs (one line naming the model and the problem; the run goes on
with the other models), and a model whose outputs depend on the batch is flagged ``batch_dependent``."""

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from advbench.cli.app import app
from advbench.engine.config import build_run_config
from advbench.engine.executor import execute
from advbench.plugins import make_host, set_host
from tests.fixtures.hostile import models as hostile_models

SOUND = "linear.mnist5k_std"


@pytest.fixture
def host():
    return make_host(autoload=False, extra=[("hostile_models", hostile_models)])


def _run(host, model, batch_size=4, n=6, attacks="fgsm"):
    return execute(build_run_config(f"{model},{SOUND}", attacks, 0.1, n_samples=n, batch_size=batch_size, device="cpu"), host)


@pytest.mark.parametrize("model,problem", [
    ("broken.nan", "NaN or infinite on 6 of 6 clean samples"),
    ("broken.inf", "NaN or infinite on 2 of 6 clean samples"),  # one sample in each of the two batches
    ("broken.width7", "outputs 7 logits per sample but dataset 'mnist-5k' has 10 classes"),
    ("broken.width_by_batch", "number of outputs changes with the batch size (10 for a batch of 4, 11 for 2)"),
    ("broken.exits", "failed to load: sys.exit(0) was called"),
])
def test_a_broken_model_fails_its_cells_with_one_line_and_the_run_goes_on(host, model, problem):
    outcome = _run(host, model)
    assert len(outcome.failures) == 1
    failure = outcome.failures[0]
    assert failure.message.startswith(f"model {model!r} ")
    assert problem in failure.message and "\n" not in failure.message
    assert len(failure.cells) == 1  # its one cell (fgsm at one eps)
    assert set(outcome.rows["model"]) == {SOUND} and len(outcome.rows) == 6  # the other model ran


def test_a_width_that_changes_between_clean_batches_is_refused(host):
    # batches of 2: every clean batch has 11 outputs, the 3-sample probe has 10
    outcome = _run(host, "broken.width_by_batch", batch_size=2)
    assert "changes with the batch size (11 for a batch of 2, 10 for 3)" in outcome.failures[0].message


def test_a_refused_model_runs_no_attack(host, monkeypatch):
    from advbench.engine import unit

    calls = []
    real = unit.run_cell
    monkeypatch.setattr(unit, "run_cell", lambda cell, *a, **k: (calls.append(cell.model), real(cell, *a, **k))[1])
    _run(host, "broken.nan")
    assert calls == [SOUND]


def test_train_mode_batchnorm_runs_with_a_batch_dependent_flag(host):
    outcome = _run(host, "broken.train_bn")
    assert not outcome.failures
    flags = [f for f in outcome.flags if f["flag"] == "batch_dependent"]
    assert [f["model"] for f in flags] == ["broken.train_bn"]
    assert "--batch-size" in flags[0]["detail"]


@pytest.mark.parametrize("batch_size", [1, 2, 3, 500])
def test_sound_models_are_not_flagged_whatever_the_batch_size(batch_size):
    outcome = execute(build_run_config(f"cnn.mnist5k_std,{SOUND}", "fgsm", 0.1, n_samples=5, batch_size=batch_size,
                                       device="cpu", sanity_checks=False), make_host(autoload=False))
    assert not outcome.failures and not outcome.flags


def test_the_cli_names_the_refused_model_and_shows_the_flag(host, tmp_path):
    set_host(host)
    result = CliRunner().invoke(app, ["run", "--models", f"broken.nan,broken.train_bn,{SOUND}", "--attacks", "fgsm",
                                      "--eps", "0.1", "--n-samples", "6", "--batch-size", "4", "--device", "cpu",
                                      "--out", str(tmp_path), "--quiet", "--view", "flags", "--format", "csv"])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: 1 of 3 cells failed; finished cells are in {tmp_path}"]
    assert "model 'broken.nan' refused: its logits are NaN or infinite" in result.stderr
    board = pd.read_csv(__import__("io").StringIO(result.stdout))
    assert list(board["flag"]) == ["batch_dependent"] and list(board["model"]) == ["broken.train_bn"]
    assert set(pd.read_parquet(tmp_path / "results.parquet").model) == {"broken.train_bn", SOUND}


def test_vet_outputs_takes_two_forward_passes_at_most():
    from advbench.data import builtin_datasets
    from advbench.engine.session import vet_outputs

    calls = []

    class Counting(torch.nn.Module):
        def forward(self, x):
            calls.append(x.shape[0])
            return torch.zeros(x.shape[0], 10)

    dataset = next(d for d in builtin_datasets() if d.name == "mnist-5k")
    x = torch.rand(7, 1, 28, 28)
    assert vet_outputs("m", Counting(), x, torch.zeros(7, 10), classes=(10, dataset), batch_size=4, device="cpu") == []
    assert calls == [2]
