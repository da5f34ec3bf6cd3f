"""``--executor ray``: on a local 2-CPU Ray cluster the rows are those of the local executor, row for row, and
``--resume`` works across executors; without Ray the option fails with one line saying how to install it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import advbench
from advbench.cli.app import app
from advbench.results import load_manifest

MODELS, ATTACKS, EPS = "cnn.mnist5k_std,linear.mnist5k_std", "fgsm,pgd", "0.1,0.3"
# One torch thread on both sides: each Ray worker here holds one CPU and so runs one thread, and CPU convolutions
# reduce in a thread-count-dependent order (last-bit differences in confidences), so the local run is pinned to
# one thread too; otherwise the comparison would depend on how many cores happen to be free.
SETTINGS = dict(n_samples=12, device="cpu", seed=3, threads=1, attack_options={"pgd": {"steps": 3}})
CLI = ["run", "--models", MODELS, "--attacks", ATTACKS, "--n-samples", "12", "--device", "cpu", "--seed", "3",
       "--threads", "1",
       "--attack-opt", "pgd.steps=3", "--quiet", "--no-sanity-checks"]
# wall time is the only column that may differ between two computations of one cell (the fingerprint column
# is compared: it must not depend on the executor, or --resume could not reuse a cell across executors)
VOLATILE = ["seconds"]

needs_ray = pytest.mark.skipif(__import__("importlib").util.find_spec("ray") is None,
                               reason="ray is not installed (pip install 'advbench[ray]')")


def _rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=VOLATILE).reset_index(drop=True)


def _ray_dirs() -> set[str]:
    return {p.name for p in Path("/tmp").glob("advbench-ray-*")}


@pytest.fixture(scope="module")
def cluster():
    """One local 2-CPU cluster for the module, started and stopped by the executor's own code (a run finds it
    running and leaves it so); afterwards Ray is shut down and its short temp dir is gone."""
    import ray

    from advbench.engine.ray_executor import connected

    before = _ray_dirs()
    with connected(ray, None, num_cpus=2):
        made = _ray_dirs() - before
        assert ray.cluster_resources()["CPU"] == 2 and os.environ["RAY_USAGE_STATS_ENABLED"] == "0"
        assert len(made) == 1 and len(f"/tmp/{made.pop()}") < 30  # Unix socket paths under it stay short
        yield ray
    assert not ray.is_initialized() and _ray_dirs() <= before


@pytest.fixture(scope="module")
def local():
    """The local executor's result of the matrix (2 models x 2 attacks x 2 eps, with the probes and flags)."""
    return advbench.evaluate(MODELS, ATTACKS, EPS, sanity_checks=True, **SETTINGS)


@needs_ray
def test_ray_rows_flags_and_transfer_match_the_local_executor(cluster, local):
    ray = cluster
    result = advbench.evaluate(MODELS, ATTACKS, EPS, sanity_checks=True, executor="ray", workers=2, **SETTINGS)
    pd.testing.assert_frame_equal(_rows(result.rows), _rows(local.rows), check_exact=True)
    assert len(result.rows) == 2 * 2 * 2 * 12
    assert result.flags == local.flags  # the probes ran on the workers
    pd.testing.assert_frame_equal(result.transfer, local.transfer, check_exact=True)
    assert result.manifest["executor"] == {"name": "ray", "ray": ray.__version__, "address": "local", "workers": 2,
                                           "cpus_per_worker": 1, "gpus_per_worker": 0}
    assert ray.is_initialized()  # a cluster the caller started is left running


@needs_ray
def test_resume_under_ray_reuses_the_local_executors_cells_and_gives_the_same_rows(cluster, local, tmp_path):
    out = tmp_path / "run"
    first = CliRunner().invoke(app, [*CLI, "--eps", "0.1", "--out", str(out)])
    assert first.exit_code == 0, first.output
    resumed = CliRunner().invoke(app, [*CLI, "--eps", EPS, "--out", str(out), "--resume", "--executor", "ray",
                                       "--workers", "2"])
    assert resumed.exit_code == 0, resumed.output
    manifest = load_manifest(out)
    assert manifest["executor"]["name"] == "ray"
    assert len(manifest["resume"]["reused"]) == 4 and manifest["resume"]["recomputed"] == []
    assert {json.loads(p.read_text())["cell"]["eps"] for p in (out / "cells").glob("*.json")} == {0.1, 0.3}
    stored = pd.read_parquet(out / "results.parquet")
    pd.testing.assert_frame_equal(_rows(stored), _rows(local.rows), check_exact=True)


def test_without_ray_the_option_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    result = CliRunner().invoke(app, [*CLI, "--eps", "0.1", "--out", str(tmp_path / "r"), "--executor", "ray"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: --executor ray needs Ray, which is not installed: pip install 'advbench[ray]'"]
    assert not (tmp_path / "r").exists()  # refused before anything was written


@pytest.mark.parametrize("args, message", [
    (["--address", "auto"], "error: --address is for --executor ray"),
    (["--workers", "2"], "error: --workers is for --executor ray"),
    (["--executor", "dask"], "error: unknown --executor 'dask': use local or ray"),
])
def test_executor_options_are_checked_before_any_compute(args, message, tmp_path):
    result = CliRunner().invoke(app, [*CLI, "--out", str(tmp_path / "r"), *args])
    assert result.exit_code == 1 and message in result.stderr.splitlines(), result.output
    assert not os.path.exists(tmp_path / "r")


@needs_ray
def test_a_model_that_fails_on_a_worker_fails_only_its_cells_as_it_does_locally(cluster):
    # linear's loader refuses a load option on the worker (zoo models take none); one worker then runs cnn too
    settings = dict(n_samples=4, device="cpu", threads=1, raise_on_failure=False,
                    model_options={"linear.mnist5k_std": {"weights": "/nonexistent"}})
    local = advbench.evaluate("linear.mnist5k_std,cnn.mnist5k_std", "fgsm", 0.1, **settings)
    remote = advbench.evaluate("linear.mnist5k_std,cnn.mnist5k_std", "fgsm", 0.1, executor="ray", workers=1, **settings)
    assert [(f.cells, f.message) for f in remote.failures] == [(f.cells, f.message) for f in local.failures]
    assert len(local.failures) == 1 and "linear.mnist5k_std" in local.failures[0].message
    pd.testing.assert_frame_equal(_rows(remote.rows), _rows(local.rows), check_exact=True)
    assert set(remote.rows["model"]) == {"cnn.mnist5k_std"}
