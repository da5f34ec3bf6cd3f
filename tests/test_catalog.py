"""Lazy attack specs: the built-in catalog agrees with the attack classes, listing imports no attack module
(and no torch), and the registry is built without import cycles."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from advbench.attacks.base import Attack
from advbench.attacks.catalog import BUILTIN, LazyAttack, lazy_spec, spec_drift
from advbench.errors import ConfigError
from advbench.plugins import make_host

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize("spec", BUILTIN, ids=[s.name for s in BUILTIN])
def test_every_catalog_entry_matches_its_class(spec):
    """The catalog repeats each class's metadata so that listing imports nothing; it must never drift."""
    assert isinstance(spec.factory, LazyAttack)
    cls = spec.factory.attack_class()
    assert issubclass(cls, Attack) and cls.name == spec.name
    assert spec_drift(spec) == {}, f"update advbench/attacks/catalog.py for {spec.name!r} to match its class"


def test_the_catalog_holds_every_attack_once():
    import advbench.attacks as attacks

    names = [s.name for s in BUILTIN]
    assert len(names) == len(set(names))
    classes = {s.factory.target.rpartition(":")[2] for s in BUILTIN}
    assert classes == set(attacks.__all__) - {"Attack", "Goal"}


def test_a_drifted_entry_is_caught():
    pgd = next(s for s in BUILTIN if s.name == "pgd")
    assert spec_drift(dataclasses.replace(pgd, strength=1, norms=("l2",))) == {
        "strength": (1, 40), "norms": (("l2",), ("linf", "l2"))}
    with pytest.raises(TypeError, match="not lazy"):
        spec_drift(pgd.factory.attack_class().spec())


def test_class_specs_carry_the_metadata_the_core_needs():
    from advbench.attacks import APGDT, PGD, UAP, Ensemble, Substitute, Transfer

    assert (PGD.spec().strength, APGDT.spec().strength, Ensemble.spec().strength) == (40, 60, 100)
    assert UAP.spec().reports_fooling_rate and UAP.spec().needs_fit and UAP.spec().fit_per_eps
    assert Substitute.spec().needs_fit and not Substitute.spec().fit_per_eps
    assert Transfer.spec().uses_surrogate and not PGD.spec().uses_surrogate
    assert PGD.spec().alias is None and not PGD.spec().wants_context


def test_a_lazy_spec_builds_its_attack_on_first_use():
    spec = make_host(autoload=False).registry.attacks.get("pgd")
    attack = spec.build(steps="3")
    assert type(attack).__name__ == "PGD" and attack.steps == 3 and spec.plugin == "advbench"
    assert "steps" in spec.factory.option_names() and spec.factory.__self__ is type(attack)
    with pytest.raises(ConfigError, match="attack 'pgd' has no option 'stpes'"):
        spec.build(stpes=3)


class ClaimsNames(Attack):
    """An attack family that claims ``claim@X`` names (for the lazy alias test)."""

    name: ClassVar[str] = "claims"

    @classmethod
    def alias(cls, name):
        return {"target": name[len("claim@"):]} if name.startswith("claim@") else None


def test_a_lazy_alias_asks_the_class():
    spec = lazy_spec("claims", f"{__name__}:ClaimsNames", alias=True)
    assert spec.alias("claim@cnn") == {"target": "cnn"} and spec.alias("pgd") is None
    assert spec_drift(spec) == {}
    assert spec_drift(dataclasses.replace(spec, alias=None)) == {"has_alias": (False, True)}


def test_a_lazy_target_that_does_not_exist_is_a_one_line_error():
    from advbench.errors import PluginError

    with pytest.raises(ValueError, match="must be 'package.module:Class'"):
        lazy_spec("nowhere", "advbench.attacks.pgd.PGD")
    spec = lazy_spec("nowhere", "advbench.attacks.pgd:PGDD")
    with pytest.raises(PluginError, match=r"attack class advbench.attacks.pgd:PGDD cannot be loaded: AttributeError"):
        spec.build()


def _in_fresh_python(code: str, **env: str) -> str:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "ADVBENCH_DISABLE_PLUGIN_AUTOLOAD": "1", **env}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


HEAVY = ("torch", "pandas", "timm", "numpy")


@pytest.mark.parametrize("args", [["--help"], ["list", "attacks"], ["list", "models"], ["list", "datasets"],
                                  ["list", "attacks", "--json"]])
def test_help_and_listing_import_no_torch(args):
    out = _in_fresh_python(
        "import json, sys\n"
        f"sys.argv = ['advbench', *{args!r}]\n"
        "from advbench.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('advbench.attacks.'))))\n"
    )
    heavy, attack_modules = (json.loads(line) for line in out.strip().splitlines()[-2:])
    assert heavy == [] and set(attack_modules) <= {"advbench.attacks.catalog"}


def test_building_the_registry_imports_no_attack_module():
    """attacks -> plugins -> builtin -> attacks was an import circle: the host now reads only the catalog."""
    out = _in_fresh_python(
        "import sys\nfrom advbench.plugins import make_host\nhost = make_host(autoload=False)\n"
        "assert 'pgd' in host.registry.attacks and 'cnn.mnist5k_std' in host.registry.models\n"
        "assert 'mnist5k-gan' in host.registry.datasets\n"
        "print(sorted(m for m in sys.modules if m.startswith(('advbench.attacks.', 'advbench.gan.', 'torch'))))\n"
    )
    assert out.strip() == "['advbench.attacks.catalog', 'advbench.gan.dataset']"


def test_an_eager_plugin_spec_is_listed_with_the_lazy_ones():
    from typer.testing import CliRunner

    from advbench.cli.app import app
    from advbench.plugins import set_host
    from tests.fixtures.plugins import bad_attacks

    set_host(make_host(autoload=False, extra=[("bad", bad_attacks)]))
    result = CliRunner().invoke(app, ["list", "attacks", "--json"])
    assert result.exit_code == 0, result.output
    records = {r["name"]: r for r in json.loads(result.stdout)}
    assert records["returns_nan"]["plugin"] == "bad" and records["pgd"]["plugin"] == "advbench"


def test_lazy_plugin_specs_match_their_classes():
    """Installed plugins that register lazy specs (advbench-noise) keep them in step with their classes."""
    lazy = [s for s in make_host(autoload=True).registry.attacks if isinstance(s.factory, LazyAttack)]
    assert len(lazy) >= len(BUILTIN)
    assert {s.name: spec_drift(s) for s in lazy if spec_drift(s)} == {}


def test_trainers_share_public_helpers_only():
    """gan/ and train/ import no private name of another module (they share advbench.train.common)."""
    import ast

    for path in [*(ROOT / "advbench" / "gan").glob("*.py"), *(ROOT / "advbench" / "train").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                assert not private, f"{path.name} imports {private} from {node.module}"


def test_the_template_plugin_is_light_to_import_and_list():
    """The noise plugin (the README's template) registers a lazy spec: loading it through its entry point and
    listing attacks imports no torch; building the attack does."""
    out = _in_fresh_python(
        "import json, sys\nfrom advbench.plugins import make_host\nhost = make_host(autoload=True)\n"
        "assert host.registry.attacks.get('noise').plugin == 'noise'\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
        "host.registry.attacks.get('noise').build()\nprint('torch' in sys.modules)\n",
        ADVBENCH_DISABLE_PLUGIN_AUTOLOAD="0",
    )
    listed, built = out.strip().splitlines()[-2:]
    assert json.loads(listed) == [] and built == "True"
