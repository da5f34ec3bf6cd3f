"""The command line through typer's CliRunner: the tour, machine formats, and every bad-input case."""

import io
import json
import time

import pandas as pd
import pytest
from typer.testing import CliRunner

from advbench.cli.app import app

SMALL = ["--n-samples", "30", "--device", "cpu", "--quiet"]
PGD3 = ["--attack-opt", "pgd.steps=3"]


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, list(args))

    return invoke


def _one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.strip().startswith("advbench 0.")


def test_run_prints_a_leaderboard_and_writes_the_run_dir(cli, tmp_path):
    result = cli("run", "--models", "cnn.mnist5k_std,linear.mnist5k_std", "--eps", "0.1,8/255", "--out", str(tmp_path), *SMALL, *PGD3)
    assert result.exit_code == 0, result.output
    assert "cnn.mnist5k_std" in result.stdout and "linear.mnist5k_std" in result.stdout
    assert (tmp_path / "results.parquet").is_file() and (tmp_path / "manifest.json").is_file()
    # the leaderboard command rebuilds the same board from disk
    again = cli("leaderboard", str(tmp_path), "--format", "csv")
    assert again.exit_code == 0
    board = pd.read_csv(io.StringIO(again.stdout))
    assert set(board["model"]) == {"cnn.mnist5k_std", "linear.mnist5k_std"}
    assert any("8/255" in c for c in board.columns)


@pytest.mark.parametrize("fmt", ["csv", "md", "json"])
def test_run_machine_formats_go_to_stdout(cli, tmp_path, fmt):
    result = cli("run", "--models", "linear.mnist5k_std", "--attacks", "fgsm", "--eps", "0.1", "--format", fmt, "--out", str(tmp_path), *SMALL)
    assert result.exit_code == 0, result.output
    if fmt == "json":
        records = json.loads(result.stdout)
        assert records[0]["model"] == "linear.mnist5k_std"
    elif fmt == "md":
        assert result.stdout.splitlines()[1].startswith("|")
    else:
        assert pd.read_csv(io.StringIO(result.stdout)).shape[0] == 1


@pytest.mark.parametrize("kind,expected", [("models", "cnn.mnist5k_std"), ("attacks", "pgd"), ("datasets", "mnist-5k")])
def test_list(cli, kind, expected):
    result = cli("list", kind, "--json")
    assert result.exit_code == 0
    assert expected in [r["name"] for r in json.loads(result.stdout)]


def test_list_with_a_pattern(cli):
    result = cli("list", "models", "linear*", "--json")
    assert [r["name"] for r in json.loads(result.stdout)] == ["linear.mnist5k_std"]


def test_plugins_lists_the_builtin(cli):
    result = cli("plugins", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)[0]["name"] == "advbench"


@pytest.mark.parametrize("args,fragments", [
    (["--models", "cnn.mnist5k_sdt"], ["unknown model 'cnn.mnist5k_sdt'", "did you mean 'cnn.mnist5k_std'"]),
    (["--attacks", "fgsm,pdg"], ["unknown attack 'pdg'", "did you mean 'pgd'"]),
    (["--eps", "abc"], ["invalid epsilon 'abc'"]),
    (["--eps", "-1"], ["invalid epsilon '-1'"]),
    (["--models", ""], ["empty --models"]),
    (["--models", " , "], ["empty --models"]),
    (["--norm", "l3"], ["unknown norm 'l3'"]),
    (["--dataset", "mnist5k"], ["unknown dataset 'mnist5k'", "did you mean 'mnist-5k'"]),
    (["--n-samples", "0"], ["--n-samples must be >= 1"]),
    (["--n-samples", "many"], ["Invalid value for '--n-samples'"]),
    (["--attack-opt", "pgd.stepz=3"], ["no option 'stepz'"]),
    (["--attack-opt", "steps=3"], ["ATTACK.OPTION=VALUE"]),
    (["--format", "xlsx"], ["unknown --format 'xlsx'"]),
    (["--device", "cuda:7"], []),
])
def test_bad_input_is_one_line_and_exit_1(cli, tmp_path, args, fragments):
    result = cli("run", *args, "--out", str(tmp_path), "--quiet")
    _one_line_error(result, *fragments)


def test_timm_model_offline_without_weights_fails_fast(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    result = cli("run", "--models", "resnet50", "--attacks", "fgsm,pgd", "--out", str(tmp_path))
    assert time.perf_counter() - start < 10
    _one_line_error(result, "resnet50", "--weights PATH")
    assert not (tmp_path / "results.parquet").exists()


def test_missing_weights_file(cli, tmp_path):
    result = cli("run", "--models", "test_resnet", "--weights", str(tmp_path / "nope.safetensors"), "--out", str(tmp_path))
    _one_line_error(result, "weights file not found", "nope.safetensors")


def test_corrupt_weights_file(cli, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage" * 10)
    result = cli("run", "--models", "test_resnet", "--weights", str(bad), "--out", str(tmp_path / "run"))
    _one_line_error(result, "bad.safetensors")


def test_verbose_shows_the_traceback(cli, tmp_path):
    result = cli("run", "--eps", "abc", "--verbose", "--out", str(tmp_path))
    assert result.exit_code == 1 and "Traceback" in result.stderr


def test_a_broken_plugin_warns_and_the_run_goes_on(cli, tmp_path, monkeypatch):
    from tests.test_plugins import FIXTURES
    from importlib import metadata

    monkeypatch.syspath_prepend(str(FIXTURES))
    real = metadata.entry_points
    fake = metadata.EntryPoint("raises_at_import", "raises_at_import", "advbench")
    monkeypatch.setattr("advbench.plugins.metadata.entry_points",
                        lambda **kw: list(real(**kw)) + ([fake] if kw.get("group") == "advbench" else []))
    monkeypatch.setenv("ADVBENCH_DISABLE_PLUGIN_AUTOLOAD", "0")
    plugins = cli("plugins", "--json")
    broken = [p for p in json.loads(plugins.stdout) if p["name"] == "raises_at_import"][0]
    assert broken["status"] == "failed" and "ImportError" in broken["error"]
    from advbench.plugins import set_host

    set_host(None)
    result = cli("run", "--models", "linear.mnist5k_std", "--attacks", "noise", "--eps", "0.1", "--out", str(tmp_path), *SMALL)
    assert result.exit_code == 0, result.output
    assert "warning: plugin 'raises_at_import' was skipped" in result.stderr


def test_failed_cells_exit_1_and_keep_finished_cells(cli, tmp_path):
    from advbench.plugins import make_host, set_host
    from tests.fixtures.plugins import bad_attacks

    set_host(make_host(autoload=False, extra=[("bad", bad_attacks)]))
    result = cli("run", "--models", "linear.mnist5k_std", "--attacks", "fgsm,returns_nan", "--eps", "0.1", "--out", str(tmp_path), *SMALL)
    _one_line_error(result, "1 of 2 cells failed")
    assert "returned NaN" in result.stderr
    assert "linear.mnist5k_std" in result.stdout  # the leaderboard of what finished is still shown
    assert set(pd.read_parquet(tmp_path / "results.parquet").attack) == {"fgsm"}


def test_train_command_writes_weights_and_card(cli, tmp_path):
    result = cli("train", "--name", "linear.digits_test", "--arch", "linear", "--dataset", "digits", "--epochs", "1", "--out", str(tmp_path), "--quiet", "--device", "cpu")
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "linear.digits_test.json").read_text())
    assert card["dataset"] == "digits" and 0 < card["clean_accuracy"] <= 1
    hint = f"advbench run --zoo {tmp_path} --models linear.digits_test"
    assert hint in " ".join(result.stderr.split())  # --out is not a zoo `run` reads: say how to reach the model
    run = cli("run", "--zoo", str(tmp_path), "--models", "linear.digits_test", "--dataset", "digits", "--attacks", "fgsm",
              "--eps", "0.1", "--n-samples", "10", "--out", str(tmp_path / "run"), "--quiet", "--device", "cpu")
    assert run.exit_code == 0, run.output


def test_train_arch_options_reach_the_network_the_card_and_the_loader(cli, tmp_path):
    result = cli("train", "--name", "cnn.digits_wide", "--arch", "cnn", "--arch-opt", "width=4", "--arch-opt", "hidden=24",
                 "--dataset", "digits", "--epochs", "1", "--out", str(tmp_path), "--quiet", "--device", "cpu")
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "cnn.digits_wide.json").read_text())
    assert card["arch_options"] == {"width": 4, "hidden": 24}
    assert "--arch-opt width=4 --arch-opt hidden=24" in card["command"]  # the command reproduces this network
    from safetensors.torch import load_file

    shapes = {k: tuple(v.shape) for k, v in load_file(str(tmp_path / "cnn.digits_wide.safetensors")).items()}
    assert (4, 1, 5, 5) in shapes.values() and (24,) in shapes.values()  # conv1 has 4 filters, fc1 24 units
    run = cli("run", "--zoo", str(tmp_path), "--models", "cnn.digits_wide", "--dataset", "digits", "--attacks", "fgsm",
              "--eps", "0.1", "--n-samples", "10", "--out", str(tmp_path / "run"), "--quiet", "--device", "cpu")
    assert run.exit_code == 0, run.output  # the zoo loader builds the same network from the card


@pytest.mark.parametrize("args,fragments", [
    (["--targeted", "most-likely"], ["invalid --targeted 'most-likely'"]),
    (["--min-confidence", "2"], ["--min-confidence must be in (0, 1]"]),
    (["--queries", "0"], ["--queries must be >= 1"]),
    (["--view", "bogus", "--models", "linear.mnist5k_std", "--attacks", "fgsm", "--n-samples", "5"], ["unknown --view 'bogus'"]),
    (["--attacks", "transfer"], ["needs --surrogates"]),
    (["--attacks", "pgd@cnn.mnist5k"], ["unknown model 'cnn.mnist5k'"]),
])
def test_bad_goal_and_view_options(cli, tmp_path, args, fragments):
    _one_line_error(cli("run", *args, "--out", str(tmp_path), "--quiet"), *fragments)


def test_targeted_run_shows_the_success_board(cli, tmp_path):
    result = cli("run", "--models", "linear.mnist5k_std", "--attacks", "fgsm", "--eps", "0.2", "--targeted", "least-likely",
                 "--out", str(tmp_path), *SMALL)
    assert result.exit_code == 0, result.output
    assert "targeted success rate" in " ".join(result.stdout.split())  # titles wrap to the table's width


def test_transfer_view_in_markdown(cli, tmp_path):
    run = cli("run", "--models", "linear.mnist5k_std,cnn.mnist5k_std", "--attacks", "fgsm", "--eps", "0.2",
              "--out", str(tmp_path), *SMALL)
    assert run.exit_code == 0, run.output
    md = cli("leaderboard", str(tmp_path), "--view", "transfer", "--format", "md")
    assert md.exit_code == 0
    lines = md.stdout.strip().splitlines()
    assert lines[0].startswith("| attack | norm | eps | source | target") and len(lines) == 2 + 4


def test_list_attacks_name_shows_every_option_with_its_real_default(cli):
    """`list attacks NAME --json` is read off the attack's own declarations: its option names and defaults are
    exactly those a default-built attack records, for every registered attack."""
    from advbench.cli.describe import attack_class
    from advbench.plugins import get_host

    registry = get_host().registry
    for spec in registry.attacks:
        result = cli("list", "attacks", spec.name, "--json")
        assert result.exit_code == 0, result.output
        record = json.loads(result.stdout)
        assert record["access"] == spec.access and record["norms"] == list(spec.norms)
        built = attack_class(spec)().options()  # built with its defaults (no run context needed for that)
        assert sorted(o["name"] for o in record["options"]) == sorted(built), spec.name
        for option in record["options"]:
            default = built[option["name"]]
            if isinstance(default, float) and default == float("inf"):
                default = "inf"
            assert option["default"] == (list(default) if isinstance(default, tuple) else default), (spec.name, option)
    table = cli("list", "attacks", "pgd")
    assert "--attack-opt pgd.NAME=VALUE" in table.stdout and "steps" in table.stdout and ">= 1" in table.stdout
    assert "Madry" in table.stdout
