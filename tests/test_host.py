"""No process-global side channels: a host gets its zoo directories as arguments, the CLI never writes the
environment, and one function builds the RunConfig of the CLI and of the Python API."""

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import advbench
from advbench.cli.app import app
from advbench.engine.config import RunConfig, build_run_config
from advbench.errors import ConfigError
from advbench.models.zoo import ZOO_DIR, ZOO_ENV
from advbench.plugins import env_zoo_dirs, get_host, make_host

EXTRA = "linear.extra_zoo"


def _zoo(directory: Path, name: str) -> Path:
    """A zoo directory holding one model: a shipped model's weights under another name."""
    directory.mkdir()
    card = json.loads((ZOO_DIR / "linear.mnist5k_std.json").read_text())
    (directory / f"{name}.json").write_text(json.dumps({**card, "name": name}))
    shutil.copy(ZOO_DIR / "linear.mnist5k_std.safetensors", directory / f"{name}.safetensors")
    return directory


@pytest.fixture
def extra_zoo(tmp_path):
    return _zoo(tmp_path / "zoo", EXTRA)


def test_a_host_registers_the_zoo_directories_it_is_built_with(extra_zoo):
    host = make_host(zoo_dirs=[extra_zoo], autoload=False)
    assert EXTRA in host.registry.models and host.zoo_dirs()[:2] == [ZOO_DIR, extra_zoo]
    assert host.registry.models.get(EXTRA).plugin == "advbench"
    # another host in the same process is not affected: nothing went through a global
    assert EXTRA not in make_host(autoload=False).registry.models
    assert advbench.load_model(EXTRA, host=host)(advbench.load_dataset("mnist-5k")[0][:2]).shape == (2, 10)
    with pytest.raises(advbench.AdvbenchError, match="unknown model"):
        advbench.load_model(EXTRA)


def test_zoo_env_is_read_where_the_api_host_is_built_only(extra_zoo, monkeypatch):
    monkeypatch.setenv(ZOO_ENV, os.pathsep.join([str(extra_zoo), ""]))
    assert env_zoo_dirs() == [extra_zoo]
    assert EXTRA not in make_host(autoload=False).registry.models  # make_host never reads the environment
    host = get_host()
    assert EXTRA in host.registry.models
    monkeypatch.delenv(ZOO_ENV)
    assert get_host() is host  # read once: the cached host keeps what it was built with


def test_cli_zoo_does_not_touch_the_environment_or_other_commands(extra_zoo, monkeypatch):
    monkeypatch.delenv(ZOO_ENV, raising=False)
    runner = CliRunner()
    with_zoo = runner.invoke(app, ["list", "models", "--json", "--zoo", str(extra_zoo)])
    assert with_zoo.exit_code == 0, with_zoo.output
    assert EXTRA in {r["name"] for r in json.loads(with_zoo.stdout)}
    assert ZOO_ENV not in os.environ
    without = runner.invoke(app, ["list", "models", "--json"])
    assert EXTRA not in {r["name"] for r in json.loads(without.stdout)}
    missing = runner.invoke(app, ["list", "models", "--zoo", str(extra_zoo / "nope")])
    assert missing.exit_code == 1 and "no such directory" in missing.stderr


def test_cli_zoo_joins_the_env_zoos(extra_zoo, tmp_path, monkeypatch):
    env_zoo = _zoo(tmp_path / "env", "linear.env_zoo")
    monkeypatch.setenv(ZOO_ENV, str(env_zoo))
    listed = CliRunner().invoke(app, ["list", "models", "--json", "--zoo", str(extra_zoo)])
    assert {EXTRA, "linear.env_zoo"} <= {r["name"] for r in json.loads(listed.stdout)}
    result = CliRunner().invoke(app, ["run", "--models", f"{EXTRA},linear.env_zoo", "--attacks", "fgsm", "--eps", "0.1",
                                      "--zoo", str(extra_zoo), "--n-samples", "20", "--device", "cpu", "--quiet",
                                      "--no-sanity-checks", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["config"]["models"] == [EXTRA, "linear.env_zoo"]
    assert os.environ[ZOO_ENV] == str(env_zoo)


# -- one RunConfig builder ---------------------------------------------------------------------------------


class _Stop(BaseException):
    """Raised by the stand-in executor once it has the config (a BaseException: the CLI turns every Exception into
    an error line)."""


@pytest.fixture
def captured(monkeypatch):
    """The RunConfig each entry point hands to the engine (which is not run)."""
    configs: list[RunConfig] = []

    def execute(config, host, reporter=None, executor=None):
        assert executor is None  # the local executor unless --executor / executor= says otherwise
        configs.append(config)
        raise _Stop

    monkeypatch.setattr("advbench.engine.executor.execute", execute)
    return configs


def test_cli_and_api_build_the_same_config(captured, tmp_path):
    args = dict(models="linear.mnist5k_std,cnn.mnist5k_std", attacks="fgsm,pgd", eps="0.1,8/255")
    with pytest.raises(_Stop):
        CliRunner().invoke(app, [
            "run", "--models", args["models"], "--attacks", args["attacks"], "--eps", args["eps"], "--n-samples", "30",
            "--seed", "3", "--device", "auto", "--targeted", "random", "--queries", "50", "--out", str(tmp_path),
            "--attack-opt", "pgd.steps=3", "--no-sanity-checks",
        ])
    with pytest.raises(_Stop):
        advbench.evaluate(args["models"], args["attacks"], args["eps"], n_samples=30, seed=3, device="auto",
                          targeted="random", queries=50, out=tmp_path, attack_options={"pgd": {"steps": "3"}})
    cli, api = captured
    assert cli == api
    assert cli.eps == (0.1, 8 / 255) and cli.device in ("cpu", "cuda") and cli.save_adversarials


def test_the_documented_differences_are_explicit_arguments(captured):
    with pytest.raises(_Stop):
        CliRunner().invoke(app, ["run", "--models", "linear.mnist5k_std", "--quiet"])
    with pytest.raises(_Stop):
        advbench.evaluate("linear.mnist5k_std")
    cli, api = captured
    assert cli.sanity_checks and not api.sanity_checks  # the probes: on in the CLI, off in the API
    assert cli.out is not None and cli.save_adversarials  # the CLI always writes runs/<timestamp>
    assert api.out is None and not api.save_adversarials  # the API keeps rows in memory unless given out
    common = {f: getattr(cli, f) for f in ("models", "attacks", "eps", "norm", "dataset", "split", "device", "seed")}
    assert common == {f: getattr(api, f) for f in common}


def test_build_run_config_takes_values_as_people_write_them():
    config = build_run_config(["linear.mnist5k_std "], "fgsm, pgd", [0.1, "8/255", 0.1], norm="L2", device="cpu",
                              targeted=3, out=None, save_adversarials=True)
    assert config.models == ("linear.mnist5k_std",) and config.attacks == ("fgsm", "pgd")
    assert config.eps == (0.1, 8 / 255) and config.norm.value == "l2" and config.targeted == "3"
    assert not config.save_adversarials and config.sanity_checks
    assert build_run_config("cnn.mnist5k_std", eps=0.3, device="cpu").eps == (0.3,)
    with pytest.raises(ConfigError, match="invalid epsilon"):
        build_run_config("cnn.mnist5k_std", eps="0.1,big", device="cpu")
    with pytest.raises(ConfigError, match="no attacks given"):
        build_run_config("cnn.mnist5k_std", attacks=" , ", device="cpu")
    with pytest.raises(ConfigError, match="invalid --device"):
        build_run_config("cnn.mnist5k_std", device="tpu")


def test_reproduce_takes_its_dataset_from_the_caller(tmp_path):
    """advbench.train no longer reaches for the global host: the CLI hands in its host's dataset lookup."""
    import inspect

    from advbench.train import reproduce, trainer

    assert "get_host" not in inspect.getsource(trainer)
    assert inspect.signature(reproduce).parameters["dataset"].default is inspect.Parameter.empty
    result = CliRunner().invoke(app, ["train", "--reproduce", "linear.nowhere", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "no model card linear.nowhere.json" in result.stderr


def test_no_module_writes_the_zoo_variable():
    root = Path(advbench.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert "os.environ[ZOO_ENV]" not in text and 'environ["ADVBENCH_ZOO"]' not in text, path


def test_a_plugins_model_never_joins_the_default_run():
    """The embedded default is the shipped zoo's standard models; a third party's mnist-5k model registered by a
    plugin (or trained into the user zoo) is run only when asked for by name."""
    import torch

    from advbench.api import default_models
    from advbench.plugins import make_host
    from advbench.specs import ModelSpec

    class ThirdParty:
        @advbench.hookimpl
        def advbench_register_models(self, registrar):
            registrar.add(ModelSpec(name="cnn.mnist5k_theirs", dataset="mnist-5k", input_shape=(1, 28, 28),
                                    num_classes=10, load=lambda device="cpu", **_: torch.nn.Flatten()))

    host = make_host(autoload=False, extra=[("theirs", ThirdParty())])
    assert "cnn.mnist5k_theirs" in host.registry.models
    assert default_models("mnist-5k", host) == ("cnn.mnist5k_std", "linear.mnist5k_std", "test_resnet.mnist5k_std")
