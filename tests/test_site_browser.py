"""The published site as a person sees it: Debian's chromium, driven by Playwright, opens index.html from the
file system (no server, no network) and uses it.

Playwright's own browser download cannot work here, so the test drives the system chromium through
``executable_path``; it skips, saying why, only where no chromium or no Playwright can be installed (.ci/run
installs both).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import HOSTILE

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright")
    if not Path(CHROMIUM).is_file():
        pytest.skip("no chromium browser: apt-get install -y chromium (Debian) to run the browser test")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, published_site):
    """index.html opened from file://, with every dialog (an alert a hostile name might raise) recorded."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.requests = []
    page.on("request", lambda r: page.requests.append(r.url))
    page.goto(published_site.as_uri())
    page.wait_for_load_state("load")
    yield page
    page.close()


def _column(page, table: str, index: int) -> list[str]:
    return page.eval_on_selector_all(f"#{table} tbody tr", f"rows => rows.map(r => r.cells[{index}].textContent)")


def test_tables_and_images_are_there(page):
    assert page.title().startswith("Leaderboards")
    boards = page.query_selector_all("table.sortable[id^=board-]")
    assert len(boards) == 2  # linf 0.1 and 0.3
    models = set(_column(page, "board-1", 1))
    assert {"cnn.mnist5k_std", "cnn.mnist5k_pgdat", *HOSTILE} <= models  # hostile names shown as text
    assert all("-" in ci for ci in _column(page, "board-1", 4))  # every robust accuracy has its interval
    for name in ("curves.html", "gallery.html", "transfer.html", "saliency.html"):
        page.goto(page.url.rsplit("/", 1)[0] + "/" + name)
        images = page.query_selector_all("main img")
        assert images, name
        # naturalWidth is 0 for an image that did not load (a missing or broken file)
        widths = [page.evaluate("img => img.naturalWidth", img) for img in images]
        assert min(widths) > 0, name
    assert not page.dialogs
    assert all(url.startswith("file://") for url in page.requests)  # nothing asked of the network


def test_clicking_a_header_sorts(page):
    before = _column(page, "board-1", 1)
    page.click("#board-1 thead th:nth-child(2)")  # model name, ascending
    ascending = _column(page, "board-1", 1)
    assert ascending == sorted(before, key=str.lower) and ascending != before
    page.click("#board-1 thead th:nth-child(2)")
    assert _column(page, "board-1", 1) == ascending[::-1]
    page.click("#board-1 thead th:nth-child(4)")  # robust %, numeric ascending
    robust = [float(v) for v in _column(page, "board-1", 3)]
    assert robust == sorted(robust)


def test_typing_in_the_filter_hides_rows(page, tmp_path):
    page.fill("input[data-table=board-1]", "pgdat")
    visible = page.eval_on_selector_all("#board-1 tbody tr", "rows => rows.filter(r => !r.hidden).length")
    hidden = page.eval_on_selector_all("#board-1 tbody tr", "rows => rows.filter(r => r.hidden).length")
    assert visible == 1 and hidden == 3
    page.fill("input[data-table=board-1]", "")
    assert page.eval_on_selector_all("#board-1 tbody tr", "rows => rows.filter(r => r.hidden).length") == 0
    shot = tmp_path / "site.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert not page.dialogs, f"a dialog fired: {page.dialogs}"


def test_hostile_names_never_run_script(page):
    for name in ("index.html", "gallery.html", "provenance.html", "leaderboard-mnist-5k-linf-0.3.html"):
        page.goto(page.url.rsplit("/", 1)[0] + "/" + name)
        assert page.query_selector("main script") is None
        assert page.query_selector("main img[src=x]") is None
    assert not page.dialogs, f"a dialog fired: {page.dialogs}"


ZOO_SITE = Path(__file__).resolve().parents[1] / "leaderboards" / "mnist-5k" / "index.html"


def test_the_published_zoo_site_opens_with_tables_intervals_plots_and_galleries(browser, tmp_path):
    """The committed leaderboard of the shipped zoo (leaderboards/make.sh), as a visitor opens it from a clone."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(ZOO_SITE.as_uri())
    boards = page.query_selector_all("table.sortable[id^=board-]")
    assert len(boards) == 9  # mnist-5k linf x3, l2 x3, and the GAN discriminator's linf x3
    robust_board = next(b.get_attribute("id") for b in boards
                        if "cnn.mnist5k_pgdat_large" in b.inner_text() and "ensemble" in b.inner_text())
    assert all(" - " in ci for ci in _column(page, robust_board, 4))  # every robust accuracy has its interval
    for name, selector in (("curves.html", "main img"), ("transfer.html", "main img"), ("gallery.html", "main img"),
                           ("saliency.html", "main img"), ("gan.html", "main img")):
        page.goto(ZOO_SITE.parent.joinpath(name).as_uri())
        images = page.query_selector_all(selector)
        assert images, name
        assert min(page.evaluate("img => img.naturalWidth", img) for img in images) > 0, name
    assert all(url.startswith("file://") for url in requests)
    page.screenshot(path=str(tmp_path / "gan.png"))
    page.close()
