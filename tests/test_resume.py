"""Resume keyed by fingerprints, collision-free cell files, one writer per run directory, and a leaderboard that
refuses rows of different runs (issue 13: "nothing silently wrong")."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from typer.testing import CliRunner

import advbench
from advbench.cli.app import app
from advbench.errors import AdvbenchError, ConfigError
from advbench.results import load_manifest, load_rows, load_transfer
from advbench.runcheck import MixedRunError

BASE = ["run", "--models", "linear.mnist5k_std", "--eps", "0.1", "--n-samples", "20", "--device", "cpu", "--quiet",
        "--no-sanity-checks"]
VOLATILE = ["seconds"]  # wall time is the only column that may differ between two computations of one cell


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def cell_files(out) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.parquet")}


def stable(rows: pd.DataFrame) -> pd.DataFrame:
    keys = ["model", "attack", "eps", "sample_id"]
    return rows.drop(columns=VOLATILE).sort_values(keys).reset_index(drop=True)


# ------------------------------------------------------------------------------------------- what is reused


@pytest.mark.parametrize("change", [
    ["--seed", "1"], ["--n-samples", "21"], ["--targeted", "least-likely"], ["--queries", "50"],
    ["--min-confidence", "0.9"], ["--batch-size", "7"],
])
def test_a_resume_under_other_run_settings_is_refused_and_keeps_the_cells(tmp_path, change):
    args = [*BASE, "--attacks", "fgsm", "--out", str(tmp_path)]
    assert cli(*args).exit_code == 0
    before = cell_files(tmp_path)
    result = cli(*args, "--resume", *change)
    name = change[0].lstrip("-").replace("-", " ").replace("n samples", "samples")
    one_line_error(result, "cannot --resume", "--overwrite", name.split()[0])
    assert cell_files(tmp_path) == before  # nothing replaced


def test_without_the_manifest_the_cell_records_still_refuse_another_run(tmp_path):
    args = [*BASE, "--attacks", "fgsm", "--out", str(tmp_path)]
    assert cli(*args).exit_code == 0
    (tmp_path / "manifest.json").unlink()
    one_line_error(cli(*args, "--resume", "--seed", "3"), "cannot --resume", "seed 0 -> 3")


def test_changed_attack_options_recompute_only_that_attack_and_say_why(tmp_path):
    args = [*BASE, "--attacks", "fgsm,pgd", "--out", str(tmp_path)]
    assert cli(*args, "--attack-opt", "pgd.steps=2").exit_code == 0
    before = cell_files(tmp_path)
    result = CliRunner().invoke(app, [a for a in args if a != "--quiet"] + ["--attack-opt", "pgd.steps=3", "--resume"])
    assert result.exit_code == 0, result.output
    after = cell_files(tmp_path)
    fgsm = next(k for k in before if "__fgsm__" in k)
    pgd = next(k for k in before if "__pgd__" in k)
    assert after[fgsm] == before[fgsm] and after[pgd] != before[pgd]
    assert "reused 1 cell(s), recomputed 1" in result.stderr and "steps 2 -> 3" in result.stderr
    log = load_manifest(tmp_path)["resume"]
    assert log["recomputed"][0]["reason"].startswith("attack options steps 2 -> 3")
    fresh = advbench.evaluate("linear.mnist5k_std", "fgsm,pgd", 0.1, n_samples=20, device="cpu",
                              attack_options={"pgd": {"steps": 3}}).rows
    assert stable(load_rows(tmp_path)).equals(stable(fresh))


class _FromFile:
    """A model that loads its weights from a file the test then changes (as a re-trained checkpoint would)."""

    def __init__(self, path):
        self.path = path

    @advbench.hookimpl
    def advbench_register_models(self, registrar):
        import torch

        from advbench.specs import ModelSpec

        def load(device="cpu", **_):
            net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
            net.load_state_dict(torch.load(self.path, weights_only=True))
            return net.eval().requires_grad_(False).to(device)

        registrar.add(ModelSpec(name="mutable", load=load, input_shape=(1, 28, 28), num_classes=10))


def test_changed_model_weights_recompute_the_model_cells(tmp_path):
    import torch

    from advbench.plugins import make_host

    path = tmp_path / "w.pt"
    torch.manual_seed(0)
    torch.save(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)).state_dict(), path)
    host = make_host(extra=[("from_file", _FromFile(path))], autoload=False)
    kw = dict(n_samples=20, device="cpu", out=tmp_path / "run", host=host)
    advbench.evaluate("mutable", "fgsm", 0.1, **kw)
    advbench.evaluate("mutable", "fgsm", 0.1, resume=True, **kw)
    assert load_manifest(tmp_path / "run")["resume"]["reused"]  # same weights: reused
    torch.manual_seed(1)
    torch.save(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)).state_dict(), path)
    advbench.evaluate("mutable", "fgsm", 0.1, resume=True, **kw)
    log = load_manifest(tmp_path / "run")["resume"]
    assert not log["reused"] and log["recomputed"][0]["reason"].startswith("model weights changed")


def test_a_run_with_fewer_attacks_shows_only_its_cells(tmp_path):
    args = [*BASE, "--out", str(tmp_path)]
    assert cli(*args, "--attacks", "fgsm,pgd", "--attack-opt", "pgd.steps=2").exit_code == 0
    assert cli(*args, "--attacks", "fgsm", "--resume").exit_code == 0
    assert set(load_rows(tmp_path).attack) == {"fgsm"}
    board = cli("leaderboard", str(tmp_path), "--format", "csv")
    assert board.exit_code == 0 and "pgd" not in board.stdout


def test_a_second_resume_keeps_the_transfer_matrix(tmp_path):
    args = [*BASE, "--models", "linear.mnist5k_std,cnn.mnist5k_std", "--attacks", "fgsm", "--out", str(tmp_path)]
    args.remove("--models"), args.remove("linear.mnist5k_std")
    assert cli(*args).exit_code == 0
    first = load_transfer(tmp_path)
    assert first is not None and len(first)
    for _ in range(2):
        assert cli(*args, "--resume").exit_code == 0
        again = load_transfer(tmp_path)
        assert again is not None and again.equals(first)
    view = cli("leaderboard", str(tmp_path), "--view", "transfer", "--format", "csv")
    assert view.exit_code == 0 and len(view.stdout.strip().splitlines()) > 1


def test_a_corrupt_cell_is_recomputed_on_resume(tmp_path):
    args = [*BASE, "--attacks", "fgsm", "--out", str(tmp_path)]
    assert cli(*args).exit_code == 0
    rows = load_rows(tmp_path)
    cell = next((tmp_path / "cells").glob("*.parquet"))
    cell.write_bytes(b"not parquet")
    (tmp_path / "results.parquet").unlink()
    one_line_error(cli("leaderboard", str(tmp_path)), "unreadable", cell.name)
    result = CliRunner().invoke(app, [a for a in args if a != "--quiet"] + ["--resume"])
    assert result.exit_code == 0 and "unreadable" in result.stderr, result.output
    assert stable(load_rows(tmp_path)).equals(stable(rows))


def test_a_corrupt_manifest_is_one_line_for_the_leaderboard_and_rewritten_by_resume(tmp_path):
    args = [*BASE, "--attacks", "fgsm", "--out", str(tmp_path)]
    assert cli(*args).exit_code == 0
    (tmp_path / "manifest.json").write_text("{not json")
    one_line_error(cli("leaderboard", str(tmp_path)), "manifest.json", "unreadable")
    assert cli(*args, "--resume").exit_code == 0
    assert load_manifest(tmp_path)["resume"]["reused"]


# ----------------------------------------------------------------------------------------- used directories


def test_a_rerun_into_a_used_directory_is_refused_until_resume_or_overwrite(tmp_path):
    args = [*BASE, "--attacks", "fgsm", "--out", str(tmp_path)]
    assert cli(*args).exit_code == 0
    before = cell_files(tmp_path)
    one_line_error(cli(*args, "--eps", "0.2"), "already holds a run", "--resume", "--overwrite")
    assert cell_files(tmp_path) == before
    (tmp_path / "notes.txt").write_text("mine")
    assert cli(*args, "--eps", "0.2", "--overwrite").exit_code == 0
    assert set(load_rows(tmp_path).eps) == {0.2} and len(cell_files(tmp_path)) == 1
    assert (tmp_path / "notes.txt").read_text() == "mine"  # only the run's own files are deleted
    one_line_error(cli(*args, "--resume", "--overwrite"), "contradict")


def test_out_that_is_a_file_is_one_line(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    one_line_error(cli(*BASE, "--attacks", "fgsm", "--out", str(target)), "is a file")


def test_a_second_writer_is_refused_while_the_first_holds_the_directory(tmp_path):
    from advbench.engine.rundir import claim_run_dir

    held = claim_run_dir(tmp_path, resume=False, overwrite=False)
    try:
        probe = subprocess.run(  # another process: flock is per open file, so test across processes
            [sys.executable, "-m", "advbench", *BASE, "--attacks", "fgsm", "--out", str(tmp_path)],
            capture_output=True, text=True, timeout=120,
        )
    finally:
        held.release()
    assert probe.returncode == 1, probe.stderr
    errors = [line for line in probe.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: another advbench process is writing")
    assert f"pid {os.getpid()}" in errors[0]
    assert cli(*BASE, "--attacks", "fgsm", "--out", str(tmp_path)).exit_code == 0  # free again once released


def test_sigkill_mid_run_then_resume_gives_the_rows_of_an_uninterrupted_run(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "advbench", *BASE, "--attacks", "fgsm,pgd", "--eps", "0.05,0.1,0.2,0.3",
            "--attack-opt", "pgd.steps=40", "--n-samples", "200", "--out", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((out / "cells").glob("*.json"))) < 2 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (out / "results.parquet").exists()  # killed mid-run
    done = len(list((out / "cells").glob("*.json")))
    assert 2 <= done < 8
    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    log = load_manifest(out)["resume"]
    assert len(log["reused"]) >= min(done, 8) - 1  # a cell being written at the kill is recomputed, never half-read
    fresh = advbench.evaluate("linear.mnist5k_std", "fgsm,pgd", "0.05,0.1,0.2,0.3", n_samples=200, device="cpu",
                              attack_options={"pgd": {"steps": 40}}).rows
    assert stable(load_rows(out)).equals(stable(fresh))


# ------------------------------------------------------------------------------------------------ file names


def test_names_that_read_alike_get_their_own_files(tmp_path):
    from advbench.engine.plan import Cell
    from advbench.threat import Norm

    keys = {Cell(m, a, Norm.LINF, 0.1).key for m, a in [("a/b", "pgd"), ("a_b", "pgd"), ("a b", "pgd"), ("a", "b__pgd")]}
    assert len(keys) == 4
    long = Cell("m" * 300, "x" * 300, Norm.L2, 8 / 255).key
    assert len(f".{long}.safetensors.tmp") < 200  # every filesystem takes 255 bytes
    assert Cell("cnn", "pgd", Norm.LINF, 0.1).key != Cell("cnn", "pgd", Norm.LINF, 0.1 + 1e-12).key


class _Twins:
    """Two models whose names differ only in a character a file name cannot hold, and a 300-character name."""

    NAMES = ("twin/a", "twin_a", "t" * 300)

    @advbench.hookimpl
    def advbench_register_models(self, registrar):
        import torch

        from advbench.specs import ModelSpec

        def factory(seed):
            def load(device="cpu", **_):
                torch.manual_seed(seed)
                net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)).eval().to(device)
                return net.requires_grad_(False)
            return load

        for seed, name in enumerate(self.NAMES):
            registrar.add(ModelSpec(name=name, load=factory(seed), input_shape=(1, 28, 28), num_classes=10))


def test_two_models_whose_names_sanitise_alike_keep_their_own_rows(tmp_path):
    from advbench.plugins import make_host

    host = make_host(extra=[("twins", _Twins())], autoload=False)
    rows = advbench.evaluate(list(_Twins.NAMES), "fgsm", 0.1, n_samples=50, device="cpu", out=tmp_path, host=host).rows
    stored = load_rows(tmp_path)
    assert set(stored.model) == set(_Twins.NAMES) and len(cell_files(tmp_path)) == 3
    preds = stored.groupby("model").clean_pred.apply(tuple)
    assert preds["twin/a"] != preds["twin_a"]  # each model's own rows, not one model's shown under both names
    assert stable(stored).equals(stable(rows))


# ---------------------------------------------------------------------------------------------- leaderboard


def test_the_leaderboard_refuses_cells_of_another_seed(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli(*BASE, "--attacks", "fgsm", "--eps", "0.1,0.2", "--out", str(a)).exit_code == 0
    assert cli(*BASE, "--attacks", "fgsm", "--eps", "0.1,0.2", "--out", str(b), "--seed", "1").exit_code == 0
    foreign = next(p for p in (b / "cells").glob("*.parquet") if "0.2" in p.name)
    for suffix in (".parquet", ".json"):
        shutil.copy(foreign.with_suffix(suffix), a / "cells" / foreign.with_suffix(suffix).name)
    (a / "results.parquet").unlink()
    line = one_line_error(cli("leaderboard", str(a)), "different runs", "seed 0 -> 1")
    assert "linear.mnist5k_std / fgsm / linf eps=0.1" in line and "eps=0.2" in line
    with pytest.raises(MixedRunError):
        load_rows(a)


def test_the_leaderboard_refuses_a_stale_results_file(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli(*BASE, "--attacks", "fgsm", "--out", str(a)).exit_code == 0
    assert cli(*BASE, "--attacks", "fgsm", "--out", str(b), "--seed", "1").exit_code == 0
    shutil.copy(b / "results.parquet", a / "results.parquet")
    one_line_error(cli("leaderboard", str(a)), "results.parquet", "match no cell record")


def test_rows_carry_their_cell_fingerprint(tmp_path):
    rows = advbench.evaluate("linear.mnist5k_std", "fgsm,pgd", "0.1,0.2", n_samples=20, device="cpu", out=tmp_path,
                             attack_options={"pgd": {"steps": 2}}).rows
    per_cell = rows.groupby(["attack", "eps"]).fingerprint.unique()
    assert all(len(f) == 1 and len(f[0]) == 64 for f in per_cell)
    assert len({f[0] for f in per_cell}) == 4
    records = [json.loads(p.read_text()) for p in (tmp_path / "cells").glob("*.json")]
    assert {r["fingerprint"] for r in records} == {f[0] for f in per_cell}
    assert len({r["run"] for r in records}) == 1 and len({r["attack"] for r in records}) == 2


def test_the_api_refuses_a_used_out_too(tmp_path):
    kw = dict(n_samples=20, device="cpu", out=tmp_path)
    advbench.evaluate("linear.mnist5k_std", "fgsm", 0.1, **kw)
    with pytest.raises(ConfigError, match="already holds a run"):
        advbench.evaluate("linear.mnist5k_std", "fgsm", 0.1, **kw)
    again = advbench.evaluate("linear.mnist5k_std", "fgsm", 0.1, resume=True, **kw).rows
    assert isinstance(again, pd.DataFrame) and len(again) == 20
    assert issubclass(MixedRunError, AdvbenchError)


# ----------------------------------------------------------------------------------------------- storage faults


def test_a_full_disk_mid_run_is_one_line_keeps_finished_cells_and_resumes(tmp_path, monkeypatch):
    import errno

    real = pd.DataFrame.to_parquet
    calls = {"n": 0}

    def filling_disk(self, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:  # two cells fit on the disk, then it is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, path, *args, **kwargs)

    args = [*BASE, "--attacks", "fgsm", "--eps", "0.1,0.2,0.3,0.4", "--out", str(tmp_path)]
    monkeypatch.setattr(pd.DataFrame, "to_parquet", filling_disk)
    line = one_line_error(cli(*args), "no space left on device writing", "finished cells are in")
    assert ".tmp" not in line or "cells" in line
    assert len(list((tmp_path / "cells").glob("*.json"))) == 2  # the finished cells are intact
    assert not list(tmp_path.rglob(".*.tmp"))  # no half-written file left behind
    assert "no space left" in load_manifest(tmp_path)["stopped"]["reason"]
    monkeypatch.setattr(pd.DataFrame, "to_parquet", real)
    result = cli(*args, "--resume")
    assert result.exit_code == 0, result.output
    assert len(load_manifest(tmp_path)["resume"]["reused"]) == 2 and set(load_rows(tmp_path).eps) == {0.1, 0.2, 0.3, 0.4}


def test_a_vanished_or_unwritable_run_directory_is_one_line(tmp_path, monkeypatch):
    from pathlib import Path

    real = Path.mkdir

    def refuse(self, *args, **kwargs):
        if str(self).startswith(str(tmp_path / "ro")):
            raise PermissionError(13, "Permission denied")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    one_line_error(cli(*BASE, "--attacks", "fgsm", "--out", str(tmp_path / "ro" / "run")), "cannot write the run directory",
                   "Permission denied")
