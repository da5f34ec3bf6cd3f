"""advbench publish: the tables' numbers and intervals, merging several runs (and refusing), escaping, galleries."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from advbench.errors import AdvbenchError
from advbench.leaderboard import main_tables, tie_ranks
from advbench.leaderboard.intervals import median_interval, wilson_interval
from advbench.results import load_runs
from advbench.runcheck import MixedRunError
from tests.conftest import HOSTILE


def test_ties_join_the_group_leader_only():
    # b's interval reaches a's: tie; c's reaches b's but not a's (the leader): a new rank at its position
    low, high = np.array([0.80, 0.74, 0.70, 0.40]), np.array([0.90, 0.84, 0.78, 0.50])
    assert tie_ranks(low, high) == [1, 1, 3, 4]
    assert tie_ranks(np.array([0.5, 0.5]), np.array([0.6, 0.6])) == [1, 1]


def test_leaderboard_files_are_named_by_threat_model_safely_and_never_collide():
    from advbench.publish.site import leaderboard_stem

    taken: set[str] = set()
    assert leaderboard_stem("mnist-5k", "linf", 8 / 255, taken) == "leaderboard-mnist-5k-linf-0.0313725"
    assert leaderboard_stem("../<b>evil</b> set", "l2", 1.0, taken) == "leaderboard-b_evil_b_set-l2-1"
    assert leaderboard_stem("<b>evil</b> set", "l2", 1.0, taken) == "leaderboard-b_evil_b_set-l2-1-2"
    assert all("/" not in stem and "<" not in stem for stem in taken)


def test_median_interval_covers_the_median_at_least_95_percent():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(400):
        low, high = median_interval(rng.exponential(size=40))  # population median ln 2
        hits += low <= math.log(2) <= high
    assert hits / 400 >= 0.93  # exact coverage is >= 95%; 400 draws leave ~1 pp of noise
    assert all(math.isnan(v) for v in median_interval([1, 2, 3, 4, 5]))  # too few samples for 95%
    assert median_interval([1.0] * 3 + [math.inf] * 7)[1] == math.inf  # "not found" can be the median


def test_main_table_is_the_per_sample_worst_case_with_its_wilson_interval(site_runs):
    runs = load_runs(list(site_runs))
    table = main_tables(runs.rows, runs.flags)[("mnist-5k", "linf", 0.3)]
    assert list(table.columns[:6]) == ["rank", "model", "clean", "robust", "low", "high"]
    rows = runs.rows[(runs.rows["eps"] == 0.3)]
    for r in table.itertuples():
        mine = rows[rows["model"] == r.model]
        robust = mine.groupby("sample_id")["robust"].all()  # robust only if robust under every attack
        assert r.robust == pytest.approx(robust.mean())
        assert (r.low, r.high) == pytest.approx(wilson_interval(int(robust.sum()), len(robust)))
        assert r.robust <= min(r.fgsm, r.pgd) + 1e-12
        assert r.run == ("a" if r.model.startswith("cnn.") else "b")
    assert list(table["robust"]) == sorted(table["robust"], reverse=True)
    assert table["rank"].iloc[0] == 1


@pytest.fixture(scope="module")
def other_seed(site_runs, tmp_path_factory):
    """cnn.mnist5k_std under fgsm on other samples (seed 1): its cells clash with run a's."""
    import advbench

    out = tmp_path_factory.mktemp("seed1") / "c"
    advbench.evaluate(["cnn.mnist5k_std"], attacks="fgsm", eps=(0.1, 0.3), n_samples=48, seed=1, device="cpu", out=out)
    return out


def test_merging_refuses_the_same_cell_computed_on_other_samples(site_runs, other_seed):
    with pytest.raises(MixedRunError) as info:
        load_runs([site_runs[0], other_seed])
    message = str(info.value)
    assert "\n" not in message
    assert "cnn.mnist5k_std / fgsm / linf eps=0.1" in message and "cnn.mnist5k_std / fgsm / linf eps=0.3" in message


def test_merging_refuses_other_models_on_other_samples(site_runs, other_seed):
    with pytest.raises(MixedRunError, match=r"run part differs: .*seed 0 -> 1"):
        load_runs([site_runs[1], other_seed])


def test_a_model_added_by_a_later_run_merges_and_a_rerun_cell_counts_once(site_runs):
    a, b = site_runs
    runs = load_runs([a, b, a.parent / ".." / a.parent.name / "a"])  # run a again under another spelling
    assert set(runs.rows["model"]) == {"cnn.mnist5k_std", "cnn.mnist5k_pgdat", *HOSTILE}
    assert not runs.rows.duplicated(["model", "attack", "norm", "eps", "sample_id"]).any()


def test_published_html_holds_hostile_names_only_escaped(published_site):
    site = published_site.parent
    pages = {p.name: p.read_text() for p in site.glob("*.html")}
    assert {"index.html", "curves.html", "transfer.html", "gallery.html", "provenance.html"} <= set(pages)
    for name, text in pages.items():
        assert "<script>alert" not in text and "<img src=x" not in text, name
        assert re.findall(r"<script\b[^>]*>", text) == ['<script src="static/site.js" defer>'], name
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages["index.html"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages["index.html"]
    md = (site / "tables" / "leaderboard-mnist-5k-linf-0.3.md").read_text()
    assert "<img" not in md and "&lt;img src=x onerror=alert(1)&gt;" in md


def test_published_tables_carry_provenance_and_agree_with_the_csv(published_site):
    tables = published_site.parent / "tables"
    data = json.loads((tables / "leaderboard-mnist-5k-linf-0.3.json").read_text())
    prov = data["provenance"]
    assert prov["advbench"] and {r["name"] for r in prov["runs"]} == {"a", "b"}
    assert all(r["run_fingerprint"] and r["device"] == "cpu" and r["command"].startswith("advbench run")
               for r in prov["runs"])
    csv = pd.read_csv(tables / "leaderboard-mnist-5k-linf-0.3.csv")
    assert list(csv["model"]) == [r["model"] for r in data["rows"]]
    assert csv["robust"].tolist() == pytest.approx([r["robust"] for r in data["rows"]])


def test_galleries_keep_the_first_successes_by_sample_id(site_runs):
    from advbench.results import load_gallery, load_rows

    rows = load_rows(site_runs[0])
    galleries = load_gallery(site_runs[0])
    assert galleries and all(cell["eps"] == 0.3 for cell, _ in galleries)  # the largest eps only
    for cell, tensors in galleries:
        mine = rows[(rows["model"] == cell["model"]) & (rows["attack"] == cell["attack"]) & (rows["eps"] == 0.3)]
        expected = sorted(mine.loc[mine["success"], "sample_id"])[:6]
        assert tensors["sample_id"].tolist() == expected
        assert (tensors["adv_pred"] != tensors["label"]).all()
        assert float((tensors["adv"] - tensors["clean"]).abs().max()) <= 0.3 + 1e-6


def test_gallery_of_a_discriminator_keeps_both_labels():
    from advbench.engine.gallery import gallery_indices

    rows = pd.DataFrame({"sample_id": range(20), "label": [1] * 10 + [0] * 10, "success": [True] * 20})
    picked = rows.iloc[gallery_indices(rows, per_group=3)]
    assert list(picked["sample_id"]) == [0, 1, 2, 10, 11, 12]


def test_publish_without_matplotlib_says_how_to_install_it(site_runs, tmp_path, monkeypatch):
    import sys

    from advbench.publish import publish

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(AdvbenchError, match=r"pip install 'advbench\[publish\]'"):
        publish(list(site_runs), tmp_path / "site")
    assert not (tmp_path / "site").exists()


def test_the_gan_page_shows_real_judged_fake_and_generated_judged_real(tmp_path):
    pytest.importorskip("matplotlib")
    import advbench
    from advbench.publish import publish

    advbench.evaluate(["dcgan_d.mnist5k"], dataset="mnist5k-gan", attacks="fgsm", eps=0.1, n_samples=24, device="cpu",
                      out=tmp_path / "gan")
    index = publish([tmp_path / "gan"], tmp_path / "site", saliency=False)
    page = (index.parent / "gan.html").read_text()
    assert "real images judged fake" in page and "generated images judged real" in page
    assert "adversarial: fake" in page and "adversarial: real" in page


def test_runs_on_different_datasets_publish_together_one_leaderboard_per_dataset(site_runs, tmp_path):
    pytest.importorskip("matplotlib")
    import advbench
    from advbench.publish import publish

    # other samples, n_samples and dataset than site_runs: refused on one dataset, fine across two
    advbench.evaluate(["dcgan_d.mnist5k"], dataset="mnist5k-gan", attacks="fgsm", eps=0.1, n_samples=24, device="cpu",
                      out=tmp_path / "gan")
    index = publish([site_runs[0], tmp_path / "gan"], tmp_path / "site", saliency=False)
    tables = {p.name for p in (index.parent / "tables").glob("leaderboard-*.csv")}
    assert {"leaderboard-mnist-5k-linf-0.1.csv", "leaderboard-mnist-5k-linf-0.3.csv",
            "leaderboard-mnist5k-gan-linf-0.1.csv"} <= tables
    gan = pd.read_csv(index.parent / "tables" / "leaderboard-mnist5k-gan-linf-0.1.csv")
    assert list(gan["model"]) == ["dcgan_d.mnist5k"]
    assert (index.parent / "gan.html").is_file()
    assert "mnist-5k: 2 model(s), 48 samples; mnist5k-gan: 1 model(s), 24 samples" in index.read_text()
