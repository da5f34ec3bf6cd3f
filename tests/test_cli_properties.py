"""Property-based tests of the command line and the Python API: whatever a user types, ``advbench run`` either
runs or fails with exit status 1 and exactly one ``error:`` line on stderr, and never shows a traceback without
``--verbose``; ``advbench.evaluate`` either returns rows or raises an :class:`AdvbenchError`.

The strategies mostly draw invalid values (which fail before any compute) plus a few valid ones, so that valid
tiny runs (the ``linear`` model, ``fgsm``/``noise``, a handful of samples) are also drawn.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from advbench.cli.app import app

#: Values each option draws from: a few valid ones, many hostile ones, plus arbitrary short text.
HOSTILE = {
    "--eps": ["0.1", "8/255", "0", "1", "8", "1.5", "255", "-0.1", "nan", "inf", "-inf", "", ",", "1/0", "0/0",
              "abc", "0.1,0.1", "1e400", "1e-400", "0.1,,0.2", "8/", "/255", "0x10"],
    "--norm": ["linf", "l2", "l1", "L2", "", "inf", "linf,l2"],
    "--models": ["linear.mnist5k_std", "nope", "", ",", "linear.*", "zzz*", "[", "file:/nonexistent/[a].pt",
                 "file:", "file:*", "py:", "py:nope_module:factory", "linear.mnist5k_std,linear.mnist5k_std",
                 "cnn.nope", "robustbench:x"],
    "--attacks": ["fgsm", "noise", "nope", "", "fgsm,fgsm", "transfer", "fgsm@linear.mnist5k_std", "@", "pgd@"],
    "--attack-opt": ["fgsm.loss=ce", "fgsm.loss=zz", "pgd.steps=-1", "fgsm.zz=1", "=", "fgsm", ".x=1", "x.=1",
                     "noise.x=1", "fgsm.loss="],
    "--model-opt": ["foo=1", "", "=", "linear.mnist5k_std.x=1", "nope.x=1", "x"],
    "--n-samples": ["1", "3", "0", "-1", "abc", "99999999999999999999", "1.5", ""],
    "--batch-size": ["1", "2", "0", "-5", "x", "99999999999999999999"],
    "--seed": ["0", "7", "-1", "99999999999999999999", str(2**63), str(2**64), "x", "1e3"],
    "--targeted": ["least-likely", "random", "0", "9", "10", "-1", "99999999999999999999", "x", ""],
    "--min-confidence": ["0.5", "0", "1", "1.5", "nan", "-1", "inf", "x"],
    "--queries": ["50", "1", "0", "-1", "99999999999999999999", "x"],
    "--view": ["robust", "success", "flags", "transfer", "min-norm", "queries", "query-curve", "by-class", "nope", ""],
    "--format": ["table", "csv", "md", "json", "nope", ""],
    "--out": ["{fresh}", "", "{file}", "{file}/sub", "{fresh}/" + "a" * 300, "a\x00b", "{fresh}/x/" + "b" * 256],
}
#: Options given on every run (a fresh --out where none is drawn, never the default ./runs).
REQUIRED = ("--models", "--n-samples", "--attacks", "--out")
VALID = {"--models": "linear.mnist5k_std", "--n-samples": "3", "--attacks": "fgsm", "--out": "{fresh}"}


def _value(option: str) -> st.SearchStrategy[str]:
    text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=6)
    return st.one_of(st.sampled_from(HOSTILE[option]), text) if option != "--out" else st.sampled_from(HOSTILE[option])


@st.composite
def run_args(draw) -> list[str]:
    """An ``advbench run`` argument list: each option absent, valid or hostile (at most 3 hostile ones, so a
    fair share of the drawn runs get past the first check)."""
    chosen = draw(st.lists(st.sampled_from(sorted(HOSTILE)), max_size=3, unique=True))
    args: list[str] = []
    for option in sorted(HOSTILE):
        if option in chosen:
            values = draw(st.lists(_value(option), min_size=1, max_size=2)) if option in ("--attack-opt", "--model-opt") else [draw(_value(option))]
            for v in values:
                args += [option, v]
        elif option in REQUIRED:
            args += [option, VALID[option]]
    return args + ["--device", "cpu", "--quiet", "--no-save-adversarials"]


def _fill(args: list[str], tmp: Path) -> list[str]:
    """Put real paths in the placeholders: {fresh} a new directory's path, {file} an existing file."""
    (tmp / "afile").write_text("x")
    return [a.replace("{fresh}", str(tmp / "run")).replace("{file}", str(tmp / "afile")) for a in args]


def classify(result) -> str:
    """``ok`` (exit 0), ``error`` (exit 1, one ``error:`` line on stderr, no traceback), else what went wrong."""
    stderr = result.stderr if result.stderr_bytes is not None else ""
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    if crashed or "Traceback" in result.output or "Traceback" in stderr:
        return "traceback"
    if result.exit_code == 0:
        return "ok"
    error_lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    if result.exit_code != 1:
        return f"exit {result.exit_code}"
    if len(error_lines) != 1:
        return f"{len(error_lines)} error lines"
    if "internal error" in error_lines[0]:
        return "internal error"
    return "error"


runner = CliRunner()


@settings(max_examples=int(os.environ.get("ADVBENCH_PROPERTY_EXAMPLES", "120")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(args=run_args())
def test_every_run_input_runs_or_fails_with_one_line(args):
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["run", *_fill(args, Path(tmp))]
        result = runner.invoke(app, argv)
        outcome = classify(result)
        assert outcome in ("ok", "error"), (outcome, argv, result.output[-2000:], repr(result.exception))


#: ``advbench.evaluate`` arguments: a valid value, and a strategy of hostile ones.
EVALUATE = {
    "attacks": ("fgsm", st.one_of(st.sampled_from(HOSTILE["--attacks"]),
                                  st.lists(st.sampled_from(["fgsm", "noise", "nope", ""]), max_size=2))),
    "eps": (0.1, st.one_of(st.sampled_from(HOSTILE["--eps"]), st.floats(), st.lists(st.floats(), max_size=3))),
    "norm": ("linf", st.sampled_from(HOSTILE["--norm"])),
    "seed": (0, st.integers()),
    "n_samples": (3, st.one_of(st.none(), st.integers(-2, 4))),
    "batch_size": (2, st.integers(-1, 4)),
    "targeted": (None, st.one_of(st.sampled_from(["least-likely", "random", "x", "²"]), st.integers(-2, 12))),
    "min_confidence": (None, st.floats()),
    "queries": (None, st.integers(-1, 2**70)),
}


@st.composite
def evaluate_kwargs(draw) -> dict:
    """Keyword arguments of ``advbench.evaluate``: at most two hostile, the others valid (a tiny fgsm run)."""
    chosen = draw(st.lists(st.sampled_from(sorted(EVALUATE)), max_size=2, unique=True))
    kwargs = {name: draw(hostile) if name in chosen else valid for name, (valid, hostile) in EVALUATE.items()}
    kwargs["n_samples"] = kwargs["n_samples"] or 3  # None is the whole split: valid, but slow
    return kwargs


@settings(max_examples=int(os.environ.get("ADVBENCH_PROPERTY_EXAMPLES", "120")) // 3, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(kwargs=evaluate_kwargs())
def test_evaluate_returns_rows_or_raises_an_advbench_error(kwargs):
    import advbench
    from advbench.errors import AdvbenchError

    try:
        rows = advbench.evaluate("linear.mnist5k_std", device="cpu", **kwargs).rows
    except AdvbenchError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert len(rows) > 0


@pytest.mark.parametrize("args", [["--eps", "8"], ["--seed", "99999999999999999999"], ["--out", "{file}"]])
def test_the_classifier_sees_a_failure_as_one_line(args, tmp_path):
    # the property above is only as good as classify(): a known bad input must come out as "error"
    result = runner.invoke(app, ["run", *_fill([*args, "--models", "linear.mnist5k_std", "--n-samples", "2",
                                                "--attacks", "fgsm", "--device", "cpu", "--quiet"], tmp_path)])
    assert classify(result) == "error", (result.output, repr(result.exception))
