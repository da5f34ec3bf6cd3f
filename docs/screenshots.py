"""Screenshots of a published site for the README: Debian's chromium driven by Playwright (as the browser test).

    python docs/screenshots.py leaderboards/mnist-5k            # writes docs/site.png and docs/site-gallery.png

Needs ``pip install playwright`` and a ``chromium`` on the PATH (Playwright's own browser download cannot work
here). Each page is opened from the file system and cut to ``--height`` pixels of its top.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
PAGES = {"index.html": "site.png", "gallery.html": "site-gallery.png"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("site", type=Path, help="the directory `advbench publish --to` wrote")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent, help="where the PNGs go (docs/)")
    parser.add_argument("--height", type=int, default=1100, help="pixels of each page's top to keep")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not (args.site / "index.html").is_file():
        print(f"error: {args.site}/index.html does not exist: run `advbench publish RUN_DIR --to {args.site}` first",
              file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": args.height})
        for name, png in PAGES.items():
            page.goto((args.site / name).resolve().as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(args.out / png), clip={"x": 0, "y": 0, "width": 1280, "height": args.height})
            print(f"wrote {args.out / png}")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
