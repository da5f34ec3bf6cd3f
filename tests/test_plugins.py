"""The plugin host: entry-point discovery, isolation of broken plugins, misspelt hooks, duplicates."""

import sys
from importlib import metadata
from pathlib import Path

import pytest

from advbench.errors import RegistryError
from advbench.plugins import make_host

FIXTURES = Path(__file__).parent / "fixtures" / "plugins"


@pytest.fixture
def fake_entry_points(monkeypatch):
    """Make ``advbench`` entry points resolve to the fixture modules (plus the real installed ones)."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    real = metadata.entry_points

    def install(*names):
        fakes = [metadata.EntryPoint(n, n, "advbench") for n in names]

        def entry_points(**kw):
            eps = list(real(**kw))
            return eps + fakes if kw.get("group") == "advbench" else eps

        monkeypatch.setattr("advbench.plugins.metadata.entry_points", entry_points)
        for n in names:
            sys.modules.pop(n, None)

    return install


def test_first_party_plugin_is_found_through_its_entry_point():
    eps = [ep for ep in metadata.entry_points(group="advbench") if ep.name == "noise"]
    assert eps, "advbench-noise must be installed (pip install -e plugins/advbench-noise)"
    assert make_host(autoload=False).registry.attacks.specs.get("noise") is None
    host = make_host(autoload=True)
    spec = host.registry.attacks.get("noise")
    assert spec.plugin == "noise" and spec.access == "label"
    info = host.info("noise")
    assert info.ok and info.distribution == "advbench-noise" and info.source == "entry point"


def test_builtins_register_through_the_hooks():
    host = make_host(autoload=False)
    assert host.registry.attacks.get("fgsm").plugin == "advbench"
    assert {"fgsm", "pgd"} <= set(host.registry.attacks.specs)
    assert {"mnist-5k", "digits"} <= set(host.registry.datasets.specs)
    assert "cnn.mnist5k_std" in host.registry.models


def test_a_plugin_that_raises_at_import_is_recorded_and_the_others_load(fake_entry_points):
    fake_entry_points("raises_at_import", "bad_attacks")
    host = make_host(autoload=True)
    broken = host.info("raises_at_import")
    assert not broken.ok and "ImportError" in broken.error and "not installed" in broken.error
    assert "returns_nan" in host.registry.attacks  # the other plugin loaded
    assert "noise" in host.registry.attacks
    # a miss mentions the broken plugin, which may be the one that provides the name
    with pytest.raises(RegistryError, match="raises_at_import"):
        host.registry.attacks.get("whatever")


def test_misspelt_hook_fails_with_the_plugin_name(fake_entry_points):
    fake_entry_points("misspelt_hook")
    host = make_host(autoload=True)
    info = host.info("misspelt_hook")
    assert not info.ok
    assert "misspelt_hook" in info.error and "advbench_register_atacks" in info.error
    assert "did you mean 'advbench_register_attacks'" in info.error
    assert host.pm.get_plugin("misspelt_hook") is None  # not registered: nothing half-loaded


def test_a_duplicate_name_is_a_conflict_naming_both_plugins_and_the_rest_works(fake_entry_points, monkeypatch):
    """Two plugins registering one name: that name is refused (naming both and how to resolve it), every other
    name still works, and `advbench plugins` (the command meant to diagnose it) shows the conflict."""
    import json

    from typer.testing import CliRunner

    from advbench.cli.app import app
    from advbench.plugins import set_host

    # recorded now, restored (removed) at teardown: the CLI's --disable-plugin below writes it into os.environ
    monkeypatch.setenv("ADVBENCH_DISABLE_PLUGINS", "")
    fake_entry_points("duplicate_fgsm")
    host = make_host(autoload=True)
    with pytest.raises(RegistryError) as info:
        host.registry.attacks.get("fgsm")
    message = str(info.value)
    assert "'fgsm'" in message and "'advbench'" in message and "'duplicate_fgsm'" in message
    assert "--disable-plugin" in message
    assert host.registry.attacks.get("pgd").plugin == "advbench"
    monkeypatch.setenv("ADVBENCH_DISABLE_PLUGIN_AUTOLOAD", "0")
    set_host(None)
    try:
        shown = CliRunner().invoke(app, ["plugins", "--json"])
        assert shown.exit_code == 0, shown.output
        records = {r["name"]: r for r in json.loads(shown.stdout)}
        assert "attack 'fgsm'" in records["duplicate_fgsm"]["conflicts"] and "attack 'fgsm'" in records["advbench"]["conflicts"]
        listing = CliRunner().invoke(app, ["list", "attacks"])
        assert listing.exit_code == 0 and "warning: attack 'fgsm' is registered by plugins" in listing.stderr
        # disabling the third party by name resolves it
        set_host(None)
        fixed = CliRunner().invoke(app, ["--disable-plugin", "duplicate_fgsm", "plugins", "--json"])
        records = {r["name"]: r for r in json.loads(fixed.stdout)}
        assert records["duplicate_fgsm"]["status"] == "disabled" and not records["advbench"]["conflicts"]
    finally:
        set_host(None)
    monkeypatch.setenv("ADVBENCH_DISABLE_PLUGINS", "duplicate_fgsm")
    assert make_host(autoload=True).registry.attacks.get("fgsm").plugin == "advbench"


def test_disabling_a_plugin_that_is_not_installed_warns(monkeypatch):
    from advbench.plugins import warn_failed

    monkeypatch.setenv("ADVBENCH_DISABLE_PLUGINS", "nosuchplugin")
    lines: list[str] = []
    warn_failed(make_host(autoload=True), lines.append)
    assert lines == ["warning: --disable-plugin 'nosuchplugin': no installed plugin has that name (see `advbench plugins`)"]


def test_the_builtin_plugin_cannot_be_disabled():
    from advbench.errors import PluginError

    with pytest.raises(PluginError, match="cannot be disabled"):
        make_host(disable=["advbench"])


def test_importing_a_plugin_registers_nothing_by_side_effect(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))
    import bad_attacks  # noqa: F401

    assert "returns_nan" not in make_host(autoload=False).registry.attacks


def test_did_you_mean_on_unknown_names():
    host = make_host(autoload=False)
    with pytest.raises(RegistryError, match="did you mean 'pgd'"):
        host.registry.attacks.get("pdg")
    with pytest.raises(RegistryError, match="did you mean 'cnn.mnist5k_std'"):
        host.model_spec("cnn.mnist5k_sdt")


def test_registry_match_filters_with_globs_and_substrings():
    models = make_host(autoload=False).registry.models
    names = [s.name for s in models.match("cnn.*")]
    assert "cnn.mnist5k_std" in names and all(n.startswith("cnn.") for n in names)
    assert all("mnist5k" in s.name for s in models.match("mnist5k"))


def test_every_hookspec_is_documented_in_the_readme():
    import advbench.hookspecs as hs

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    hooks = [n for n in dir(hs) if n.startswith("advbench_")]
    assert len(hooks) >= 7
    for name in hooks:
        assert getattr(hs, name).__doc__, name
        assert name in readme, f"{name} is not in the README's hook reference"


def test_autoload_env_var_turns_entry_points_off(monkeypatch):
    from advbench.plugins import make_host as mk

    monkeypatch.setenv("ADVBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "noise" not in mk().registry.attacks
    monkeypatch.setenv("ADVBENCH_DISABLE_PLUGIN_AUTOLOAD", "0")
    assert "noise" in mk().registry.attacks


def test_a_failed_plugin_leaves_no_conflict_behind():
    """A plugin that registers an existing name and then raises contributes nothing: the name is not left
    blocked as a conflict, it resolves to the plugin that did not fail."""
    import advbench
    from advbench.attacks.fgsm import FGSM

    class HalfThenRaises:
        @advbench.hookimpl
        def advbench_register_attacks(self, registrar):
            registrar.add(FGSM.spec())
            raise RuntimeError("broken after registering")

    host = make_host(autoload=False, extra=[("half", HalfThenRaises())])
    assert host.registry.attacks.get("fgsm").plugin == "advbench"
    assert host.registry.conflicts() == [] and not host.info("half").ok
