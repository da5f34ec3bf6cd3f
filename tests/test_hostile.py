"""Hostile plugins (tests/fixtures/hostile): each fails only its own cell or plugin, with a one-line reason in
the failure summary and the manifest; a real Ctrl-C still stops the run."""

from __future__ import annotations

import os
import random
import signal
import sys
from importlib import metadata

import numpy as np
import pandas as pd
import pytest
import torch

import advbench
from advbench.engine.interrupts import InterruptWatch
from advbench.errors import CellFailed
from advbench.plugins import make_host, set_host
from advbench.results import load_manifest, load_rows
from tests.fixtures.hostile import attacks as hostile

SMALL = dict(models="linear.mnist5k_std", eps=[0.1], n_samples=12, device="cpu")
QUICK = {"square": {"max_queries": 20}}


@pytest.fixture
def host():
    h = make_host(autoload=False, extra=[("hostile", hostile)])
    set_host(h)
    return h


def _failed_cell(tmp_path, attack, options=None, other="fgsm", **kw):
    """Run ``other`` and ``attack``; the hostile cell must fail alone. Returns the failure message."""
    with pytest.raises(CellFailed) as info:
        advbench.evaluate(attacks=f"{attack},{other}", attack_options={attack: options or {}, **(QUICK if other in QUICK else {})}, out=tmp_path,
                          **{**SMALL, **kw})
    kept = load_rows(tmp_path)
    assert set(kept.attack) == {other} and len(kept) == SMALL["n_samples"]  # the next cell ran, intact
    failure = load_manifest(tmp_path)["failures"][0]
    assert failure["cells"] == [f"linear.mnist5k_std / {attack} / linf eps=0.1"]
    assert "\n" not in failure["message"] and failure["message"] in str(info.value)
    return failure["message"]


@pytest.mark.parametrize("how,reason", [
    ("exit", "sys.exit(0) was called (attacks.py:"),
    ("interrupt", "KeyboardInterrupt was raised by plugin code (not a Ctrl-C)"),
    ("generator_exit", "GeneratorExit was raised"),
    ("base", "PluginBaseException was raised: not an Exception"),
])
def test_an_attack_that_exits_or_interrupts_fails_only_its_cell(host, tmp_path, how, reason):
    message = _failed_cell(tmp_path, "exits", {"how": how})
    assert message.startswith("cell linear.mnist5k_std / exits / linf eps=0.1 failed: ") and reason in message


def test_a_real_ctrl_c_stops_the_run(host, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        advbench.evaluate(attacks="exits", attack_options={"exits": {"how": "ctrl_c"}}, out=tmp_path, **SMALL)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the watch put the handler back


def test_the_watch_tells_a_key_press_from_a_raised_interrupt():
    with InterruptWatch() as watch:
        raised = KeyboardInterrupt()
        assert not watch.is_real(raised)
        with pytest.raises(KeyboardInterrupt) as info:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10**7):  # the handler runs between bytecodes
                pass
        assert watch.is_real(info.value) and watch.is_real(raised)  # after a press, every interrupt is real
    with InterruptWatch() as outer:
        with InterruptWatch(), pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10**7):
                pass
        assert outer.pressed  # nested watches chain: the outer one learns of the press too


@pytest.mark.parametrize("how,reason", [
    ("closure", "reached the model outside its oracle"),
    ("reset", "changed its query counters"),
    ("rebind", "changed its query counters"),
    ("charge", "changed its query counters"),
    ("forward", "reached the model outside its oracle"),
])
def test_an_attack_that_pokes_the_oracle_is_refused(host, tmp_path, how, reason):
    message = _failed_cell(tmp_path, "pokes", {"how": how})
    assert reason in message and message.endswith("cell refused")


def test_an_attack_that_raises_its_budget_is_refused(host, tmp_path):
    message = _failed_cell(tmp_path, "pokes", {"how": "budget"}, queries=3)
    assert "made more than --queries 3 queries on a sample" in message


def test_honest_attacks_of_every_access_level_are_not_refused(host):
    rows = advbench.evaluate(attacks="pgd,square,hopskipjump,ensemble", queries=30, **SMALL).rows
    assert set(rows.attack) == {"pgd", "square", "hopskipjump", "ensemble"}
    attacked = rows[rows.clean_correct]
    assert (attacked.n_forward > 0).all() and (attacked.n_forward <= 30).all()


def _rng_rows(attacks):
    rows = advbench.evaluate(attacks=attacks, **SMALL).rows
    rows = rows[rows.attack == "global_rng"].drop(columns=["seconds"]).reset_index(drop=True)
    return rows


def test_a_plugin_on_the_global_rngs_gives_the_same_rows_alone_or_after_others(host):
    torch.manual_seed(1), random.seed(1), np.random.seed(1)
    alone = _rng_rows("global_rng")
    torch.manual_seed(2), random.seed(2), np.random.seed(2)
    after = _rng_rows("fgsm,global_rng")
    assert (alone.perturbation_norm > 0).any()
    pd.testing.assert_frame_equal(alone, after, check_exact=True)


def test_the_cell_seeding_puts_the_callers_rng_states_back():
    from advbench.engine.runner import global_rng

    draws = lambda: (torch.rand(3), random.random(), float(np.random.rand()))  # noqa: E731
    torch.manual_seed(5), random.seed(5), np.random.seed(5)
    expected = draws()
    torch.manual_seed(5), random.seed(5), np.random.seed(5)
    with global_rng(11, torch.device("cpu")):
        inside = draws()
    with global_rng(11, torch.device("cpu")):
        assert all(bool(a == b if not isinstance(a, torch.Tensor) else torch.equal(a, b)) for a, b in zip(draws(), inside))
    after = draws()
    assert torch.equal(after[0], expected[0]) and after[1:] == expected[1:]


def test_a_cell_that_keeps_querying_is_stopped_by_the_cell_timeout(host, tmp_path):
    message = _failed_cell(tmp_path, "endless", cell_timeout=1.0)
    assert message == "cell linear.mnist5k_std / endless / linf eps=0.1 exceeded --cell-timeout 1 s"


def test_the_readme_budget_example_runs(tmp_path):
    """``advbench run --attacks noise --queries 100`` crashed ("index 19 is out of bounds for dimension 0 with
    size 14") once noise queried only the samples it had not yet broken."""
    rows = advbench.evaluate(models="cnn.mnist5k_std", attacks="noise", eps=[0.3], n_samples=20, device="cpu",
                             queries=100, host=make_host(autoload=True)).rows
    assert len(rows) == 20 and rows.n_forward.max() <= 100
    assert rows.success.any() and (rows.n_forward[rows.clean_correct] >= 1).all()



class _ExitingModelPlugin:
    """A model whose loader calls sys.exit (kept here: broken *models* live in the fixture's models.py)."""

    @advbench.hookimpl
    def advbench_register_models(self, registrar):
        def load(device, **_):
            sys.exit(0)

        registrar.add(advbench.ModelSpec(name="exits.model", load=load, num_classes=10, dataset="mnist-5k"))


def test_a_model_whose_loader_exits_fails_only_its_cells(tmp_path):
    set_host(make_host(autoload=False, extra=[("exiting_model", _ExitingModelPlugin())]))
    with pytest.raises(CellFailed):
        advbench.evaluate(models="exits.model,linear.mnist5k_std", attacks="fgsm", eps=[0.1], n_samples=12,
                          device="cpu", out=tmp_path, sanity_checks=True)
    assert set(load_rows(tmp_path).model) == {"linear.mnist5k_std"}
    message = load_manifest(tmp_path)["failures"][0]["message"]
    assert message.startswith("model 'exits.model' failed to load: sys.exit(0) was called (test_hostile.py:")


def test_cli_options_of_isolation_are_checked_before_any_compute(tmp_path):
    from typer.testing import CliRunner

    from advbench.cli.app import app

    base = ["run", "--models", "linear.mnist5k_std", "--eps", "0.1", "--n-samples", "5", "--device", "cpu",
            "--out", str(tmp_path / "run")]
    for extra, error in ((["--attacks", "square", "--cell-timeout", "0"], "error: --cell-timeout must be a number of seconds > 0, got 0.0"),
                         (["--attacks", "fgsm", "--isolate"], "error: --isolate runs score- and label-based attacks only; attack 'fgsm'")):
        result = CliRunner().invoke(app, base + extra)
        assert result.exit_code == 1 and error in " ".join(result.stderr.split()), result.output
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------- plugins


def _entry_point_host(monkeypatch, *modules):
    real = metadata.entry_points
    fakes = [metadata.EntryPoint(m, f"tests.fixtures.hostile.{m}", "advbench") for m in modules]
    monkeypatch.setattr("advbench.plugins.metadata.entry_points",
                        lambda **kw: list(real(**kw)) + (fakes if kw.get("group") == "advbench" else []))
    for m in modules:
        sys.modules.pop(f"tests.fixtures.hostile.{m}", None)
    return make_host(autoload=True)


def test_a_plugin_that_exits_or_interrupts_at_import_is_recorded_and_the_others_load(monkeypatch):
    host = _entry_point_host(monkeypatch, "exits_at_import", "interrupts_at_import")
    assert "SystemExit: 3" in host.info("exits_at_import").error
    assert "KeyboardInterrupt" in host.info("interrupts_at_import").error
    assert "noise" in host.registry.attacks and "fgsm" in host.registry.attacks


@pytest.mark.parametrize("how,reason", [("exit", "SystemExit: 0"), ("interrupt", "KeyboardInterrupt"),
                                        ("error", "RuntimeError: registration failed")])
def test_a_plugin_whose_register_hook_raises_contributes_nothing(monkeypatch, how, reason):
    from tests.fixtures.hostile import register_raises

    monkeypatch.setattr(register_raises, "HOW", how)
    host = make_host(autoload=False, extra=[("register_raises", register_raises)])
    registry = host.registry
    info = host.info("register_raises")
    assert info.error == f"advbench_register_models failed: {reason}"
    assert "half.registered" not in registry.models  # what it registered before raising is gone
    assert "global_rng" not in registry.attacks  # and so is what its other hook registered
    assert host.pm.get_plugin("register_raises") is None
    assert "fgsm" in registry.attacks


def test_a_failed_register_hook_is_warned_about_on_every_command(tmp_path):
    import json

    from typer.testing import CliRunner

    from advbench.cli.app import app
    from tests.fixtures.hostile import register_raises

    run = ["run", "--models", "linear.mnist5k_std", "--attacks", "fgsm", "--eps", "0.1", "--n-samples", "5",
           "--device", "cpu", "--quiet", "--out", str(tmp_path / "run")]
    for command in (["list", "attacks"], ["list", "models"], run):
        set_host(make_host(autoload=False, extra=[("register_raises", register_raises)]))
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 0, result.output
        assert "warning: plugin 'register_raises' was skipped: advbench_register_models failed: SystemExit: 0" \
            in " ".join(result.stderr.split()), command  # rich wraps long lines
    set_host(make_host(autoload=False, extra=[("register_raises", register_raises)]))
    records = json.loads(CliRunner().invoke(app, ["plugins", "--json"]).stdout)
    broken = next(r for r in records if r["name"] == "register_raises")
    assert broken["status"] == "failed" and broken["error"] == "advbench_register_models failed: SystemExit: 0"



# ---------------------------------------------------------------------------------------------- --isolate


@pytest.mark.parametrize("queries", [None, 20])
def test_isolated_rows_are_identical_to_in_process_rows(host, queries):
    kw = dict(attacks="square,global_rng", attack_options={"square": {"max_queries": 30}}, queries=queries, **SMALL)
    in_process = advbench.evaluate(**kw).rows.drop(columns=["seconds"])
    isolated = advbench.evaluate(isolate=True, **kw).rows.drop(columns=["seconds"])
    pd.testing.assert_frame_equal(isolated, in_process, check_exact=True)
    assert (in_process.n_forward[in_process.clean_correct] > 0).all()
    if queries is not None:
        assert in_process.budget_exhausted.any() and in_process.n_forward.max() <= queries


@pytest.mark.parametrize("attack,options,reason", [
    ("exits", {"how": "exit"}, "failed: sys.exit(0) was called (attacks.py:"),
    ("exits", {"how": "interrupt"}, "failed: KeyboardInterrupt was raised by plugin code (not a Ctrl-C)"),
    ("exits", {"how": "os_exit"}, "failed: the attack's isolated process ended without an answer (exit code 3)"),
    ("pokes", {"how": "closure"}, "failed: KeyError: '_forward'"),  # the child's oracle holds no model
    ("pokes", {"how": "reset"}, "failed: KeyError: '_ledger'"),  # nor any counter
    ("endless", {"query": False}, "exceeded --cell-timeout 3 s"),  # a loop without queries: the child is killed
])
def test_an_isolated_hostile_attack_fails_only_its_cell(host, tmp_path, attack, options, reason):
    message = _failed_cell(tmp_path, attack, options, other="square", isolate=True, cell_timeout=3.0)
    assert message.startswith(f"cell linear.mnist5k_std / {attack} / linf eps=0.1 ") and reason in message


def test_isolate_refuses_a_gradient_attack_before_any_compute(host, tmp_path):
    from advbench.errors import ConfigError

    with pytest.raises(ConfigError, match="--isolate runs score- and label-based attacks only; attack 'pgd' is"):
        advbench.evaluate(attacks="square,pgd", isolate=True, out=tmp_path, **SMALL)
    assert not (tmp_path / "manifest.json").exists()
