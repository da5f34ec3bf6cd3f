"""Adversarials on disk (:mod:`advbench.engine.spill`): the spill file is the run store's file byte for byte,
reads and writes by row agree with a tensor's indexing, and a run through the spill gives the rows, matrix and
stored adversarials of a run that keeps every adversarial in memory."""

import hashlib

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

import advbench
import advbench.engine.unit as unit_module
from advbench.engine.fingerprint import tensor_digest
from advbench.engine.spill import AdversarialFile, Spill


@pytest.fixture
def spill():
    made = Spill(None)
    yield made
    made.close()
    assert not made.root.exists()


@pytest.mark.parametrize("shape", [(37, 1, 5, 5), (3, 3, 7, 7), (0, 1, 2, 2)])
def test_a_new_file_is_the_file_save_file_writes(spill, shape, tmp_path):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    ids = torch.arange(shape[0]) * 7
    made = spill.new(x, ids)
    save_file({"x_adv": x, "sample_id": ids}, str(tmp_path / "ref.safetensors"))
    assert made.path.read_bytes() == (tmp_path / "ref.safetensors").read_bytes()


def test_rows_written_and_read_like_a_tensor(spill):
    gen = torch.Generator().manual_seed(1)
    x = torch.rand((50, 2, 4, 4), generator=gen)
    ref, made = x.clone(), spill.new(x, torch.arange(50))
    for _ in range(20):
        idx = torch.randperm(50, generator=gen)[: int(torch.randint(1, 20, (1,), generator=gen))]  # unsorted, gaps
        values = torch.rand((idx.numel(), 2, 4, 4), generator=gen)
        made[idx] = values
        ref[idx] = values
        assert torch.equal(made[idx], ref[idx])
    made[10:13] = ref[0:3]
    ref[10:13] = ref[0:3].clone()
    assert torch.equal(made.tensor(), ref)
    assert torch.equal(made[5:45], ref[5:45])
    assert torch.equal(made[torch.tensor([4, 4, 0])], ref[torch.tensor([4, 4, 0])])  # repeated rows
    assert torch.equal(made[ref[:, 0, 0, 0] > 0.5], ref[ref[:, 0, 0, 0] > 0.5])  # a boolean mask
    assert torch.equal(load_file(str(made.path))["x_adv"], ref)


def test_a_stored_file_is_read_only_and_never_deleted(spill, tmp_path):
    x = torch.rand(6, 1, 3, 3)
    path = tmp_path / "stored.safetensors"
    save_file({"x_adv": x, "sample_id": torch.arange(6)}, str(path))
    stored = AdversarialFile.open(path)
    assert stored.shape == (6, 1, 3, 3) and torch.equal(stored[1:4], x[1:4])
    with pytest.raises(PermissionError):
        stored[0:1] = x[0:1]
    stored.discard()
    assert path.is_file()
    with pytest.raises(IndexError):
        stored[torch.tensor([6])]


def test_tensor_digest_hashes_the_bytes_it_always_hashed():
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    h = hashlib.sha256()
    h.update(b"torch.float32(3, 4);")
    h.update(t.numpy().tobytes())
    h.update(b"none;")
    assert tensor_digest(t, None) == h.hexdigest()


def _comparable(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.drop(columns=["seconds"]).reset_index(drop=True)


def test_a_run_through_the_spill_equals_one_in_memory(tmp_path, monkeypatch):
    """Carry-over (bim or pgd over three eps: the other feeds the matrix), a minimum-norm attack judged at each eps (deepfool), the
    transferability matrix (two models), the gallery and the store: the same numbers and the same files."""
    kw = dict(models="cnn.mnist5k_std,cnn.mnist5k_pgdat", attacks="fgsm,pgd,bim,deepfool", eps="0.05,0.1,0.2",
              n_samples=60, batch_size=16, attack_options={"pgd": {"steps": 5}, "bim": {"steps": 5}}, threads=1)
    spilled = advbench.evaluate(out=tmp_path / "spilled", **kw)
    assert not (tmp_path / "spilled" / ".spill").exists()  # the scratch directory goes with the run

    original = unit_module.UnitWorker.__init__

    def in_memory(self, *args, **kwargs):
        original(self, *args, **{**kwargs, "spill": None})

    monkeypatch.setattr(unit_module.UnitWorker, "__init__", in_memory)
    kept = advbench.evaluate(out=tmp_path / "memory", **kw)
    pd.testing.assert_frame_equal(_comparable(spilled.rows), _comparable(kept.rows))
    assert spilled.rows["carried"].any()
    pd.testing.assert_frame_equal(spilled.transfer, kept.transfer)
    files = sorted(p.name for p in (tmp_path / "memory" / "adversarials").iterdir())
    assert files and files == sorted(p.name for p in (tmp_path / "spilled" / "adversarials").iterdir())
    for name in files:
        assert (tmp_path / "spilled" / "adversarials" / name).read_bytes() == \
            (tmp_path / "memory" / "adversarials" / name).read_bytes()
    for name in sorted(p.name for p in (tmp_path / "memory" / "gallery").iterdir()):
        a, b = load_file(str(tmp_path / "spilled" / "gallery" / name)), load_file(str(tmp_path / "memory" / "gallery" / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_every_stored_success_is_an_adversarial_inside_its_ball(tmp_path):
    """What the spill files hold (linked into the store) is what the rows say: for every cell, a success row's
    stored adversarial is misclassified, inside the eps ball, at the recorded perturbation norm; carried rows
    (pgd at its larger eps) included."""
    from advbench.results import load_adversarials, load_manifest

    run = advbench.evaluate("cnn.mnist5k_std", "pgd,deepfool", "0.05,0.1,0.2", n_samples=60, batch_size=16,
                            attack_options={"pgd": {"steps": 5}}, threads=1, out=tmp_path / "run")
    assert run.rows["carried"].any()
    model = advbench.load_model("cnn.mnist5k_std")
    x_all, _ = advbench.load_dataset("mnist-5k", "test")
    for cell, key in load_manifest(tmp_path / "run")["cell_files"].items():
        x_adv, ids = load_adversarials(tmp_path / "run", key)
        model_name, attack, rest = cell.split(" / ")
        norm, eps = rest.split(" eps=")
        rows = run.rows[(run.rows["model"] == model_name) & (run.rows["attack"] == attack)
                        & (run.rows["norm"] == norm) & (run.rows["eps"] == float(eps))]
        assert len(rows) == len(ids)
        pos = {int(s): i for i, s in enumerate(ids.tolist())}
        order = torch.tensor([pos[int(s)] for s in rows["sample_id"]])
        adv, x = x_adv[order], x_all[torch.tensor(rows["sample_id"].to_numpy().copy())]
        norms = (adv - x).double().flatten(1).abs().amax(dim=1)
        assert torch.allclose(norms, torch.tensor(rows["perturbation_norm"].to_numpy().copy()), atol=1e-9)
        assert (norms <= torch.tensor(rows["eps"].to_numpy().copy()) + 1e-6).all()
        with torch.no_grad():
            pred = model(adv).argmax(dim=1)
        success = torch.tensor(rows["success"].to_numpy().copy())
        assert (pred[success] != torch.tensor(rows["label"].to_numpy().copy())[success]).all()


def test_a_full_disk_while_spilling_stops_the_run_and_keeps_its_finished_cells(tmp_path, monkeypatch):
    import errno

    import advbench.engine.spill as spill_module
    from advbench.errors import StorageError
    from advbench.results import load_manifest

    real, calls = spill_module.AdversarialFile._create, []

    def full_at_the_third_file(path, x, sample_ids, fill):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, x, sample_ids, fill)

    monkeypatch.setattr(spill_module.AdversarialFile, "_create", staticmethod(full_at_the_third_file))
    with pytest.raises(StorageError, match=r"^no space left on device writing .*\.spill.*: free space or pass another --out"):
        advbench.evaluate("cnn.mnist5k_std", "fgsm", "0.05,0.1,0.2", n_samples=20, out=tmp_path / "run")
    manifest = load_manifest(tmp_path / "run")
    assert "no space left" in manifest["stopped"]["reason"]
    assert len(list((tmp_path / "run" / "cells").glob("*.parquet"))) == 2  # the two cells before it are kept
    assert not (tmp_path / "run" / ".spill").exists()


def test_a_truncated_stored_file_is_refused_when_opened(tmp_path):
    path = tmp_path / "stored.safetensors"
    save_file({"x_adv": torch.rand(6, 1, 3, 3), "sample_id": torch.arange(6)}, str(path))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(OSError, match="shorter than its header"):
        AdversarialFile.open(path)
