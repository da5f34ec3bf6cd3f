"""Eps carry-over (:mod:`advbench.engine.carry`): a sample broken at a smaller eps is carried, re-judged and
counted broken at every larger eps of its (attack, norm), and a resumed run gives an uninterrupted run's rows."""

import pandas as pd
import pytest

import advbench
from advbench.results import load_manifest

OPTS = {"pgd": {"steps": 4}}
EPS = "0.05,0.1,0.2"


def _run(**kw):
    kw.setdefault("attack_options", OPTS)
    return advbench.evaluate("cnn.mnist5k_std", kw.pop("attacks", "fgsm,pgd"), kw.pop("eps", EPS), n_samples=40,
                             **kw)


def _comparable(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows without the wall-clock column, in a fixed order."""
    return rows.drop(columns=["seconds"]).sort_values(["attack", "eps", "sample_id"]).reset_index(drop=True)


def test_carried_samples_are_broken_inside_the_larger_ball():
    rows = _run().rows
    carried = rows[rows["carried"]]
    assert len(carried) > 0
    assert carried["success"].all() and not carried["robust"].any()
    assert (carried["perturbation_norm"] <= carried["eps"] + 1e-6).all()
    for (attack, eps), group in carried.groupby(["attack", "eps"]):
        smaller = rows[(rows["attack"] == attack) & (rows["eps"] < eps)]
        broken_before = set(smaller.loc[smaller["success"], "sample_id"])
        assert set(group["sample_id"]) <= broken_before  # carried only what a smaller eps broke
    # per sample, a break at eps1 stays a break at every larger eps
    for _, group in rows.groupby(["attack", "sample_id"]):
        success = group.sort_values("eps")["success"].tolist()
        assert success == sorted(success)
    assert not rows.loc[rows["eps"] == 0.05, "carried"].any()


def test_carry_is_in_the_fingerprint_and_can_be_turned_off():
    opts = {"bim": {"steps": 2}}
    on, off = _run(attacks="bim", attack_options=opts).rows, _run(attacks="bim", attack_options=opts, carry=False).rows
    assert on["carried"].any() and not off["carried"].any()
    fp_on, fp_off = (r.groupby("eps")["fingerprint"].first() for r in (on, off))
    assert fp_on[0.05] == fp_off[0.05]  # the smallest eps carries nothing: same cell
    assert fp_on[0.1] != fp_off[0.1] and fp_on[0.2] != fp_off[0.2]
    # bim alone at 0.2 may miss what it found at 0.1; with carry-over it never does
    assert on.loc[on["eps"] == 0.2, "robust"].sum() <= off.loc[off["eps"] == 0.2, "robust"].sum()


def test_a_single_step_attack_runs_afresh_at_every_eps():
    """FGSM's robust accuracy rising with eps is the gradient-masking probe: carry-over must not hide it."""
    on, off = _run(attacks="fgsm", attack_options={}).rows, _run(attacks="fgsm", attack_options={}, carry=False).rows
    assert not on["carried"].any()
    pd.testing.assert_frame_equal(_comparable(on), _comparable(off))


@pytest.mark.parametrize("save", [True, False])
def test_resume_after_the_smaller_eps_gives_the_uninterrupted_rows(tmp_path, save):
    whole = _run(out=tmp_path / "whole", save_adversarials=save).rows
    _run(out=tmp_path / "part", eps="0.05", save_adversarials=save)  # interrupted after the smallest eps
    resumed = _run(out=tmp_path / "part", resume=True, save_adversarials=save)
    log = load_manifest(tmp_path / "part")["resume"]
    if save:  # the carry comes from the stored cell's adversarials
        assert len(log["reused"]) == 2 and not log["recomputed"]
    else:  # not saved: pgd's smaller cell is recomputed to carry from it; fgsm carries nothing and is reused
        assert log["reused"] == ["cnn.mnist5k_std / fgsm / linf eps=0.05"]
        assert log["recomputed"] and all("carry" in r["reason"] or "adversarials" in r["reason"]
                                         for r in log["recomputed"])
    pd.testing.assert_frame_equal(_comparable(resumed.rows), _comparable(whole))


def test_the_attack_that_feeds_the_transferability_matrix_runs_afresh_at_every_eps():
    """Its adversarials at eps 0.2 must be crafted at 0.2: a carried one is the smaller eps's."""
    kw = dict(attack_options={"pgd": {"steps": 4}, "bim": {"steps": 2}}, n_samples=30)
    both = advbench.evaluate("cnn.mnist5k_std,linear.mnist5k_std", "bim,pgd", EPS, transfer_attack="pgd", **kw)
    rows = both.rows
    assert not rows.loc[rows["attack"] == "pgd", "carried"].any()
    assert rows.loc[rows["attack"] == "bim", "carried"].any()
    alone = advbench.evaluate("cnn.mnist5k_std,linear.mnist5k_std", "bim,pgd", EPS, transfer_attack="pgd",
                              carry=False, **kw).rows
    pgd = lambda r: _comparable(r[r["attack"] == "pgd"])  # noqa: E731
    pd.testing.assert_frame_equal(pgd(rows), pgd(alone))
    assert set(both.transfer["eps"]) == {0.05, 0.1, 0.2}
