"""Declarative options (advbench.options): constraints declared on the field and checked once with one message
shape, the one strict KEY=VALUE parser, option descriptions, the shared query-cap name and APGD's loss."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from advbench.attacks import FAB, NES, PGD, SPSA, UAP, Attack, SimBA, Square
from advbench.attacks.catalog import BUILTIN
from advbench.attacks.apgd import APGDCE, APGDDLR, APGDT
from advbench.cli.options import parse_attack_options, parse_model_options
from advbench.errors import ConfigError
from advbench.models.custom import _factory_kwargs
from advbench.options import (
    check_options,
    describe_options,
    option,
    option_info,
    parse_nested_options,
    parse_options,
)
from advbench.threat import Norm
from tests.helpers import harness

REPO = Path(__file__).resolve().parents[1]

#: Composite attacks whose modules are converted to option() separately; their fields are still described.
NOT_YET_DECLARED: set[str] = set()
BUILTIN_ATTACKS = tuple(spec.factory.attack_class() for spec in BUILTIN)


@dataclass
class Toy:
    at_least: int = option(1, ge=1, help="ge")
    positive: float = option(0.5, gt=0, help="gt")
    at_most: float = option(0.5, le=1, help="le")
    below: float = option(0.5, lt=1, help="lt")
    unit: float = option(0.5, ge=0, lt=1, help="half-open range")
    open_closed: float = option(0.5, gt=0, le=1, help="other half-open range")
    kind: str = option("x", choices=("x", "y"), help="choices")
    unset: int | None = option(None, ge=1, help="optional")
    free: str = "anything"

    def __post_init__(self) -> None:
        check_options(self, "toy 't'")


# -- constraints ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,bad,requirement", [
    ("at_least", 0, ">= 1"),
    ("positive", 0.0, "> 0"),
    ("positive", -1.0, "> 0"),
    ("positive", math.nan, "> 0"),
    ("at_most", 1.5, "<= 1"),
    ("below", 1.0, "< 1"),
    ("unit", 1.0, "in [0, 1)"),
    ("unit", -0.25, "in [0, 1)"),
    ("open_closed", 0.0, "in (0, 1]"),
    ("open_closed", 2.0, "in (0, 1]"),
    ("kind", "z", "one of x, y"),
    ("unset", 0, ">= 1"),
    ("at_least", "3", "a number >= 1"),
])
def test_each_constraint_kind_rejects_a_bad_value_with_the_one_line_message(name, bad, requirement):
    with pytest.raises(ConfigError) as info:
        Toy(**{name: bad})
    assert str(info.value) == f"toy 't': option {name} must be {requirement}, got {bad!r}"


def test_values_on_the_bounds_none_for_optional_options_and_undeclared_fields_pass():
    toy = Toy(at_least=1, at_most=1.0, unit=0.0, open_closed=1.0, kind="y", unset=None, free="")
    assert (toy.at_least, toy.unit, toy.open_closed, toy.kind, toy.unset) == (1, 0.0, 1.0, "y", None)


@pytest.mark.parametrize("make,message", [
    (lambda: PGD(steps=0), "attack 'pgd': option steps must be >= 1, got 0"),
    (lambda: PGD(loss="hinge"), "attack 'pgd': option loss must be one of ce, got 'hinge'"),
    (lambda: FAB(beta=0.0), "attack 'fab': option beta must be in (0, 1], got 0.0"),
    (lambda: UAP(delta=1.0), "attack 'uap': option delta must be in [0, 1), got 1.0"),
    (lambda: SimBA(basis="wavelet"), "attack 'simba': option basis must be one of pixel, dct, got 'wavelet'"),
    (lambda: APGDCE(rho=1.5), "attack 'apgd_ce': option rho must be in [0, 1], got 1.5"),
    # checks across fields keep the same shape
    (lambda: SPSA(max_queries=10),
     "attack 'spsa': option max_queries must be >= 2 * samples + 1 = 65 (one step), got 10"),
    (lambda: NES(samples=3), "attack 'nes': option samples must be an even number >= 2 (antithetic pairs), got 3"),
    # conversion of command-line strings too
    (lambda: PGD.from_options(steps="many"), "attack 'pgd': option steps must be an int, got 'many'"),
    (lambda: PGD.from_options(early_stop="maybe"),
     "attack 'pgd': option early_stop must be true or false, got 'maybe'"),
    (lambda: FAB.from_options(eps="0"), "attack 'fab': option eps must be > 0, got 0.0"),
])
def test_attacks_report_bad_options_in_one_shape(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert str(info.value) == message


def test_from_options_still_converts_strings():
    pgd = PGD.from_options(steps="40", random_start="off", rel_stepsize="1/10", step_size="none")
    assert (pgd.steps, pgd.random_start, pgd.step_size) == (40, False, None)
    assert pgd.rel_stepsize == pytest.approx(0.1)


def test_option_declarations_are_checked():
    with pytest.raises(TypeError, match="default 0 is not >= 1"):
        option(0, ge=1)
    with pytest.raises(TypeError, match="at most one lower bound"):
        option(1, ge=0, gt=0)


# -- every built-in attack ------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", BUILTIN_ATTACKS, ids=lambda c: c.name)
def test_every_builtin_attack_builds_with_its_defaults(cls):
    attack = cls.spec().factory()
    assert isinstance(attack, cls) and attack.options() == dataclasses.asdict(cls())


@pytest.mark.parametrize("cls", BUILTIN_ATTACKS, ids=lambda c: c.name)
def test_describe_options_covers_every_field(cls):
    rows = describe_options(cls)
    assert [r["name"] for r in rows] == cls.option_names()
    defaults = cls()
    for row in rows:
        assert set(row) == {"name", "type", "default", "constraint", "help", "deprecated"}
        assert row["default"] == getattr(defaults, row["name"]) and row["type"]
    if cls.name not in NOT_YET_DECLARED:
        fields = dataclasses.fields(cls)
        assert all(option_info(f) is not None for f in fields), "declare every option with option(...)"
        assert all(r["help"] and "\n" not in r["help"] for r in rows)


def test_describe_options_shows_the_constraints():
    rows = {r["name"]: r for r in describe_options(Square)}
    assert rows["max_queries"]["constraint"] == ">= 1" and rows["max_queries"]["deprecated"] == ["n_queries"]
    assert rows["p_init"]["constraint"] == "in (0, 1]" and rows["loss"]["constraint"] == "one of margin, ce"
    assert rows["rescale_schedule"]["constraint"] == "" and rows["max_queries"]["default"] == 5000


def test_the_options_module_does_not_import_torch():
    code = "import sys, advbench.options, advbench.cli.options; print('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"


# -- the parser -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,item", [
    ("steps", "steps"),                        # no '='
    ("steps=1;restarts", "restarts"),          # no '=' in a later item
    ("=3", "=3"),                              # empty key
    ("steps=1; =2", "=2"),                     # empty key after stripping
    ("steps=1;steps=2", "steps=2"),            # duplicate
    ("steps=1; steps = 2", "steps = 2"),       # duplicate after stripping
])
def test_parse_options_rejects_every_malformed_item(text, item):
    with pytest.raises(ConfigError) as info:
        parse_options(text, what="base option", example="steps=10")
    message = str(info.value)
    assert message.startswith(f"invalid base option {item!r}: ") and "\n" not in message
    assert "write KEY=VALUE, several separated by ';' (e.g. steps=10)" in message


@pytest.mark.parametrize("text,item", [
    ("pgd=3", "pgd=3"),                        # no member
    (".steps=1", ".steps=1"),                  # empty member
    ("pgd.=1", "pgd.=1"),                      # empty option
    ("pgd.steps", "pgd.steps"),                # no '='
    ("=1", "=1"),                              # empty key
    ("pgd.steps=1;pgd.steps=2", "pgd.steps=2"),
    ("pgd.steps=1; pgd .steps=2", "pgd .steps=2"),
])
def test_parse_nested_options_rejects_every_malformed_item(text, item):
    with pytest.raises(ConfigError) as info:
        parse_nested_options(text, what="ensemble member option")
    message = str(info.value)
    assert message.startswith(f"invalid ensemble member option {item!r}: ") and "\n" not in message
    assert "write MEMBER.OPTION=VALUE, several separated by ';'" in message


def test_parsers_accept_what_is_well_formed():
    assert parse_options(" steps = 40 ; restarts=2;") == {"steps": "40", "restarts": "2"}
    assert parse_options("a=b=c;d=") == {"a": "b=c", "d": ""}  # values may hold '=' or be empty (None)
    assert parse_options("") == {} and parse_options(None) == {} and parse_nested_options("") == {}
    assert parse_nested_options("apgd_ce.steps=50; fab_t.steps=50;pgd@cnn.mnist5k_std.steps=3") == {
        "apgd_ce": {"steps": "50"}, "fab_t": {"steps": "50"}, "pgd@cnn.mnist5k_std": {"steps": "3"}}
    # a sequence is one item per element (repeated command-line options): never split at ';'
    assert parse_options(["kwargs=depth=2;width=3"]) == {"kwargs": "depth=2;width=3"}


def test_cli_and_model_kwargs_use_the_strict_parser():
    assert parse_attack_options(["ensemble.member_options=apgd_ce.steps=5;fab_t.steps=5", "pgd.steps=3"]) == {
        "ensemble": {"member_options": "apgd_ce.steps=5;fab_t.steps=5"}, "pgd": {"steps": "3"}}
    with pytest.raises(ConfigError, match=r"invalid --attack-opt 'steps=3': .*ATTACK\.OPTION=VALUE"):
        parse_attack_options(["steps=3"])
    with pytest.raises(ConfigError, match="pgd.steps is given twice"):
        parse_attack_options(["pgd.steps=3", "pgd.steps=4"])
    with pytest.raises(ConfigError, match="in_chans is given twice"):
        parse_model_options(["in_chans=1", "in_chans=3"], ("cnn.mnist5k_std",))
    with pytest.raises(ConfigError, match=r"invalid kwargs item of model 'py:m:f' 'depth': no '='"):
        _factory_kwargs("py:m:f", {"kwargs": "width=2;depth"})
    with pytest.raises(ConfigError, match="depth is given twice"):
        _factory_kwargs("py:m:f", {"kwargs": "depth=2;depth=3"})


# -- one name for a query cap ---------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [Square, SPSA, NES, SimBA], ids=lambda c: c.name)
def test_score_attacks_take_max_queries_and_the_old_name_with_a_warning(cls):
    assert cls.from_options(max_queries="400").max_queries == 400
    with pytest.warns(FutureWarning, match=f"attack '{cls.name}': option n_queries is deprecated, use max_queries"):
        assert cls.from_options(n_queries="400").max_queries == 400
    with pytest.raises(ConfigError, match="n_queries is the old name of max_queries; give only max_queries"):
        cls.from_options(n_queries="400", max_queries="400")


def test_every_query_capped_builtin_attack_calls_its_cap_max_queries():
    capped = {c.name for c in BUILTIN_ATTACKS if "max_queries" in c.option_names()}
    assert capped == {"square", "spsa", "nes", "simba", "hopskipjump", "boundary"}
    assert not any({"n_queries", "trials"} & set(c.option_names()) for c in BUILTIN_ATTACKS)


def test_renamed_cap_still_caps_the_queries(cnn, mnist_test):
    x, y = mnist_test[0][:8], mnist_test[1][:8]
    out = harness(Square.from_options(max_queries="30"), cnn, x, y, Norm.LINF, 0.05)
    with pytest.warns(FutureWarning):
        old = Square.from_options(n_queries="30")
    assert int(out.n_forward.max()) <= 30
    assert torch.equal(harness(old, cnn, x, y, Norm.LINF, 0.05).x_adv, out.x_adv)


def _noise_attack_class(monkeypatch):
    """The plugin's attack from this repository's source (the installed copy may be another checkout)."""
    path = REPO / "plugins" / "advbench-noise" / "src" / "advbench_noise" / "attack.py"
    spec = importlib.util.spec_from_file_location("advbench_noise_attack_under_test", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.NoiseAttack


def test_the_noise_plugin_renames_trials_to_max_queries(monkeypatch):
    noise = _noise_attack_class(monkeypatch)
    assert noise.from_options(max_queries="7").max_queries == 7
    with pytest.warns(FutureWarning, match="option trials is deprecated, use max_queries"):
        assert noise.from_options(trials="7").max_queries == 7
    with pytest.raises(ConfigError, match="attack 'noise': option distribution must be one of sign, uniform"):
        noise(distribution="gauss")


# -- APGD's loss ----------------------------------------------------------------------------------------
def test_apgd_loss_is_an_option_with_each_members_default():
    assert (APGDCE().loss, APGDDLR().loss, APGDT().loss) == ("ce", "dlr", "dlr")
    assert APGDCE.from_options(loss="dlr").loss == "dlr" and APGDT.from_options(loss="ce").loss == "ce"
    with pytest.raises(ConfigError, match="attack 'apgd_dlr': option loss must be one of ce, dlr, got 'margin'"):
        APGDDLR.from_options(loss="margin")


def test_apgd_loss_choice_changes_the_loss_used(cnn, mnist_test):
    x, y = mnist_test[0][:32], mnist_test[1][:32]

    def run(attack):
        return harness(attack, cnn, x, y, Norm.LINF, 0.1, seed=3).x_adv

    ce_as_dlr = run(APGDCE.from_options(steps="5", loss="dlr"))
    assert torch.equal(ce_as_dlr, run(APGDDLR(steps=5)))  # the loss is all that told them apart
    assert not torch.equal(ce_as_dlr, run(APGDCE(steps=5)))
    assert torch.equal(run(APGDDLR(steps=5, loss="ce")), run(APGDCE(steps=5)))
    assert not torch.equal(run(APGDT(steps=5, n_target_classes=2, loss="ce")), run(APGDT(steps=5, n_target_classes=2)))


def test_subclass_checks_run_after_the_declared_ones():
    @dataclass
    class Two(Attack):
        name = "two"
        low: int = option(1, ge=0, help="low")
        high: int = option(2, ge=0, help="high")

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.high < self.low:
                raise self.invalid_option("high", f">= low = {self.low}")

    with pytest.raises(ConfigError, match=r"^attack 'two': option low must be >= 0, got -1$"):
        Two(low=-1, high=-5)
    with pytest.raises(ConfigError, match=r"^attack 'two': option high must be >= low = 3, got 2$"):
        Two.from_options(low="3")
