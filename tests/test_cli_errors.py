"""Every failure of the command line is one ``error:`` line with exit status 1 (Ctrl-C: ``interrupted:`` and the
command that resumes, exit 130), checked before any compute where the input alone shows it is wrong."""

import errno
import os
import shlex
import signal
import time

import pandas as pd
import pytest
from typer.testing import CliRunner

from advbench.cli.app import app
from advbench.cli.errors import resume_command
from advbench.oserrors import os_error_message

RUN = ["run", "--models", "linear.mnist5k_std", "--attacks", "fgsm", "--n-samples", "4", "--device", "cpu", "--quiet"]


def _invoke(*args):
    return CliRunner().invoke(app, list(args))


def _one_line(result, expected=None):
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    if expected is not None:
        assert errors[0] == f"error: {expected}", errors[0]
    return errors[0]


@pytest.fixture
def no_compute(monkeypatch):
    """Fail the test if a run gets as far as loading samples (the first compute of a run)."""
    from advbench.engine import executor

    def refuse(*_, **__):
        raise AssertionError("the run started computing before the bad option was reported")

    monkeypatch.setattr(executor, "select_samples", refuse)


@pytest.mark.parametrize("args,expected", [
    (["--eps", "8"], "linf eps 8 is above 1: pixel space is [0, 1]; did you mean 8/255?"),
    (["--eps", "0.1,1.5"], "linf eps 1.5 is above 1: pixel space is [0, 1]; did you mean 1.5/255?"),
    (["--eps", "300"], "linf eps 300 is above 1: pixel space is [0, 1]"),
    (["--seed", "99999999999999999999"], "--seed must be between 0 and 2**63 - 1 (the generators' range), got 99999999999999999999"),
    (["--seed", "-1"], "--seed must be between 0 and 2**63 - 1 (the generators' range), got -1"),
    (["--view", "bogus"], "unknown --view 'bogus': use one of robust, success, by-class, transfer, min-norm, queries, query-curve, flags, implementations"),
    (["--targeted", "10"], "--targeted 10: dataset 'mnist-5k' has classes 0..9"),
    (["--targeted", "²"], "invalid --targeted '²': use least-likely, random or a class index"),
    (["--queries", "99999999999999999999"], "--queries must be at most 2**53, got 99999999999999999999 (omit it for no budget)"),
    (["--out", ""], "--out is empty: give a run directory, e.g. --out runs/mnist"),
])
def test_bad_options_fail_before_any_compute(no_compute, tmp_path, args, expected):
    out = [] if "--out" in args else ["--out", str(tmp_path / "run")]
    _one_line(_invoke(*RUN, *out, *args), expected)


def test_an_l2_budget_above_1_is_fine(tmp_path):
    result = _invoke(*RUN, "--norm", "l2", "--eps", "2", "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output


def test_the_largest_seed_runs(tmp_path):
    result = _invoke(*RUN, "--seed", str(2**63 - 1), "--eps", "0.1", "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output


def test_out_that_is_a_file_or_goes_through_one(no_compute, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    _one_line(_invoke(*RUN, "--out", str(afile)), f"--out {afile} is a file, not a directory: pass a directory path")
    _one_line(_invoke(*RUN, "--out", str(afile / "sub")),
              f"--out {afile / 'sub'}: {afile} is a file, not a directory: pass another --out")
    assert afile.read_text() == "keep me"


def test_out_with_a_name_too_long(no_compute, tmp_path):
    line = _one_line(_invoke(*RUN, "--out", str(tmp_path / ("a" * 300) / "run")))
    assert "is longer than 255 bytes" in line and "use a shorter --out" in line


def test_out_that_is_not_writable(no_compute, tmp_path, monkeypatch):
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(locked) else real(p, mode, **kw))
    _one_line(_invoke(*RUN, "--out", str(locked / "run")),
              f"--out {locked / 'run'}: {locked} is not writable: choose a directory you can write to")


def test_a_file_model_path_is_never_a_glob(tmp_path):
    from pathlib import Path

    import advbench

    weights = Path(advbench.__file__).parent / "models" / "zoo" / "linear.mnist5k_std.safetensors"
    odd = tmp_path / "w[1]*.safetensors"
    odd.write_bytes(weights.read_bytes())
    (tmp_path / "w1x.safetensors").write_bytes(weights.read_bytes())  # what the glob would have matched
    result = _invoke("run", "--models", f"file:{odd}", "--arch", "linear", "--model-opt", "input_size=1,28,28",
                     "--attacks", "fgsm", "--eps", "0.1", "--n-samples", "4", "--device", "cpu", "--quiet",
                     "--format", "csv", "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(__import__("io").StringIO(result.stdout))["model"]) == [f"file:{odd}"]
    missing = _one_line(_invoke("run", "--models", f"file:{tmp_path}/*.pt", "--arch", "linear", "--attacks", "fgsm",
                                "--device", "cpu", "--out", str(tmp_path / "run2")))
    assert f"weights file {tmp_path}/*.pt does not exist" in missing


def test_a_full_disk_while_writing_is_one_line_and_keeps_finished_cells(tmp_path, monkeypatch):
    calls = []
    real = pd.DataFrame.to_parquet

    def full_after_one(self, path, *args, **kwargs):
        calls.append(path)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full_after_one)
    out = tmp_path / "run"
    line = _one_line(_invoke(*RUN, "--eps", "0.1,0.2", "--no-save-adversarials", "--out", str(out)))
    target = calls[1].parent / calls[1].name[1:].removesuffix(".tmp")  # named by the file, not its temporary
    assert line == (f"error: no space left on device writing {target}: free space or pass another --out; "
                    f"finished cells are in {out}")
    assert len(list((out / "cells").glob("*.parquet"))) == 1  # the first cell is on disk


def test_a_safetensors_io_error_is_read_for_its_errno():
    class SafetensorError(Exception):
        pass

    exc = SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    assert os_error_message(exc, "RUN") == ("no space left on device writing RUN: free space or pass another --out; "
                                            "finished cells are in RUN")
    assert os_error_message(ValueError("no errno here")) is None


@pytest.mark.parametrize("code,start", [
    (errno.EACCES, "permission denied: /x/y: "), (errno.EROFS, "read-only file system: /x/y: "),
    (errno.ENAMETOOLONG, "file name too long: /x/y: "), (errno.ENOSPC, "no space left on device writing /x/y: "),
])
def test_os_errors_a_user_can_fix_name_the_path(code, start):
    assert os_error_message(OSError(code, "text", "/x/y")).startswith(start)
    assert os_error_message(OSError(errno.EIO, "text", "/x/y")) is None  # not the user's to fix: internal error


def test_an_unexpected_exception_is_one_line_and_its_traceback_is_behind_verbose(tmp_path, monkeypatch):
    from advbench.engine import executor

    monkeypatch.setattr(executor, "select_samples", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom\nmore")))
    line = _one_line(_invoke(*RUN, "--out", str(tmp_path / "run")))
    assert line.startswith("error: internal error: RuntimeError: boom (a bug in advbench or a plugin")
    verbose = _invoke(*RUN, "--out", str(tmp_path / "run2"), "--verbose")
    assert verbose.exit_code == 1 and "Traceback" in verbose.stderr


def test_ctrl_c_prints_where_the_cells_are_and_the_command_that_resumes(tmp_path, monkeypatch):
    from advbench.engine import unit

    real = unit.run_cell
    calls = []

    def interrupt_second(cell, *args, **kwargs):
        calls.append(cell)
        if len(calls) == 2:  # a real Ctrl-C (a KeyboardInterrupt raised by plugin code only fails its cell)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the SIGINT handler raises KeyboardInterrupt here
        return real(cell, *args, **kwargs)

    monkeypatch.setattr(unit, "run_cell", interrupt_second)
    monkeypatch.chdir(tmp_path)  # no --out: the run picks runs/<timestamp> here
    args = [*RUN, "--eps", "0.1,0.2", "--attack-opt", "fgsm.loss=ce"]
    result = _invoke(*args)
    assert result.exit_code == 130
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("interrupted: finished cells are in runs/") and "; resume with: advbench run " in line
    run_dir = line.split("finished cells are in ", 1)[1].split(";", 1)[0]
    command = shlex.split(line.split("resume with: ", 1)[1])
    assert command == ["advbench", *args, "--out", run_dir, "--resume"]
    monkeypatch.setattr(unit, "run_cell", real)
    resumed = _invoke(*command[1:])
    assert resumed.exit_code == 0, resumed.output
    assert set(pd.read_parquet(tmp_path / run_dir / "results.parquet")["eps"]) == {0.1, 0.2}


def test_resume_command_quotes_and_keeps_the_given_out():
    assert resume_command(["run", "--out", "my runs/a", "--eps", "8/255"], "my runs/a") == \
        "advbench run --out 'my runs/a' --eps 8/255 --resume"
    assert resume_command(["run", "-o", "d", "--resume", "--overwrite"], "d") == "advbench run -o d --resume"
    assert resume_command(["run", "--out=d"], "d") == "advbench run --out=d --resume"


@pytest.mark.parametrize("args,expected", [
    (["--seed", "99999999999999999999"], "--seed must be between 0 and 2**63 - 1 (the generators' range), got 99999999999999999999"),
    (["--out", "{file}"], "--out {file} is a file, not a directory: pass a directory path"),
    (["--arch-opt", "width"], "invalid --arch-opt 'width': no '='; write KEY=VALUE (e.g. width=32)"),
])
def test_train_checks_its_seed_and_out_before_training(tmp_path, monkeypatch, args, expected):
    import advbench.train

    monkeypatch.setattr(advbench.train, "train_classifier", lambda **_: pytest.fail("training started"))
    afile = tmp_path / "afile"
    afile.write_text("x")
    args = [a.replace("{file}", str(afile)) for a in args]
    out = [] if "--out" in args else ["--out", str(tmp_path)]
    _one_line(_invoke("train", "--name", "linear.t", "--arch", "linear", "--dataset", "digits", "--epochs", "1", "--quiet",
                      *out, *args), expected.replace("{file}", str(afile)))


def test_an_unknown_device_type_is_refused(no_compute, tmp_path):
    _one_line(_invoke(*RUN, "--device", "meta", "--out", str(tmp_path / "r")),
              "invalid --device 'meta': use auto, cpu, cuda or cuda:N")
