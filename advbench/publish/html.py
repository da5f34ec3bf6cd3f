"""HTML of the published site, built from escaped pieces (no template engine).

Every string that reaches a page goes through :func:`h` (text and attribute values: ``& < > " '`` become
entities, control characters are dropped). Model, attack and dataset names come from plugins, paths and
commands from the user: none of them can open a tag or an attribute. Numbers are formatted here, never taken
as markup. Pages link one stylesheet and one script shipped in ``advbench/publish/static`` (no CDN, no network;
they work from ``file://``).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..escape import terminal_text

#: Pages in the navigation bar: (file, label); a page not written (no data) is left out.
NAV = (("index.html", "Leaderboards"), ("curves.html", "Robustness curves"), ("transfer.html", "Transfer"),
       ("queries.html", "Queries"), ("min-norm.html", "Minimum norm"), ("gallery.html", "Gallery"),
       ("saliency.html", "Saliency"), ("gan.html", "GAN discriminator"), ("provenance.html", "Provenance"))


def h(text: object) -> str:
    """``text`` safe inside HTML text and double- or single-quoted attribute values."""
    return html.escape(terminal_text(text), quote=True)


def percent(value: Any) -> str:
    """A fraction as a percentage with one decimal; ``-`` when missing."""
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * float(value):.1f}"


@dataclass
class Cell:
    """One table cell: ``text`` (escaped when rendered), an optional numeric sort ``value``, a CSS ``kind``."""

    text: object
    value: float | None = None
    kind: str = ""


def num(value: Any, text: str | None = None, kind: str = "") -> Cell:
    """A numeric cell sorted by ``value`` (NaN sorts as missing), shown as ``text`` or as a percentage."""
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    return Cell(text if text is not None else percent(value), None if missing else float(value), kind)


def txt(value: Any, kind: str = "text") -> Cell:
    return Cell(value, None, kind)


@dataclass
class Table:
    """A sortable, filterable table: ``headers`` [(label, kind)], rows of :class:`Cell`."""

    ident: str
    headers: list[tuple[str, str]]
    rows: list[list[Cell]] = field(default_factory=list)

    def render(self, filter_box: bool = True) -> str:
        head = "".join(f'<th class="{h(kind)}" scope="col">{h(label)}</th>' for label, kind in self.headers)
        body = "\n".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in self.rows)
        box = (f'<input class="filter" type="search" placeholder="filter rows..." aria-label="filter rows" '
               f'data-table="{h(self.ident)}">' if filter_box else "")
        return (f'{box}<table class="sortable" id="{h(self.ident)}"><thead><tr>{head}</tr></thead>'
                f"<tbody>\n{body}\n</tbody></table>")


def _td(cell: Cell) -> str:
    value = "" if cell.value is None else f' data-value="{cell.value!r}"'
    kind = f' class="{h(cell.kind)}"' if cell.kind else ""
    return f"<td{kind}{value}>{h(cell.text)}</td>"


def figure(src: str, caption: str, alt: str) -> str:
    return f'<figure><img class="plot" src="{h(src)}" alt="{h(alt)}"><figcaption>{h(caption)}</figcaption></figure>'


def paragraph(text: str, kind: str = "note") -> str:
    return f'<p class="{h(kind)}">{h(text)}</p>'


def heading(level: int, text: str, ident: str | None = None) -> str:
    anchor = f' id="{h(ident)}"' if ident else ""
    return f"<h{level}{anchor}>{h(text)}</h{level}>"


def definitions(items: Iterable[tuple[str, object]]) -> str:
    return '<dl class="prov">' + "".join(f"<dt>{h(k)}</dt><dd>{h(v)}</dd>" for k, v in items) + "</dl>"


def page(title: str, body: str, pages: set[str]) -> str:
    """A whole page: the navigation bar (only the pages written), the title and ``body`` (already HTML)."""
    links = "".join(f'<a href="{h(f)}">{h(label)}</a>' for f, label in NAV if f in pages)
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # no network at all: a strict policy also stops anything a name might have smuggled in
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src 'self' data:; "
        "style-src 'self'; script-src 'self'\">"
        f"<title>{h(title)} - advbench</title>"
        '<link rel="stylesheet" href="static/site.css"><script src="static/site.js" defer></script></head>\n'
        f'<body><header class="site"><span class="brand">advbench</span><nav>{links}</nav></header>\n'
        f"<main>{heading(1, title)}\n{body}\n</main></body></html>\n"
    )


__all__ = ["Cell", "NAV", "Table", "definitions", "figure", "h", "heading", "num", "page", "paragraph", "percent", "txt"]
