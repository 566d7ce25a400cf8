"""The report as one self-contained HTML page: one template, every value escaped, no script, no network.

A Content-Security-Policy forbids the page from loading anything (scripts, fonts, images from elsewhere):
it works offline and cannot call home. Charts are inline SVG; styles are inline.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import polars as pl

from cilink.disclosure.suppression import SUPPRESSED

#: Marks a noisy (differentially private) count; the page's footnote says what it means.
NOISY = "≈"

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1d1d1d;
  background:#fafafa;line-height:1.4}
main{max-width:1100px;margin:0 auto;padding:24px 32px 64px;background:#fff}
h1{font-size:1.6em;margin:0 0 4px} h2{font-size:1.25em;margin:36px 0 8px;border-bottom:2px solid #1f5f99;
  padding-bottom:4px} h3{font-size:1.05em;margin:20px 0 6px}
.meta{color:#555;font-size:.9em} .note{color:#555;font-size:.85em;margin:4px 0 10px}
.scroll{overflow-x:auto;max-width:100%;margin:6px 0 12px} .scroll table{margin:0}
table{border-collapse:collapse;font-size:.82em;margin:6px 0 12px}
th,td{border-bottom:1px solid #e3e3e3;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f4f8} td.n{text-align:right;font-variant-numeric:tabular-nums} td.s{color:#888}
figure{margin:10px 0 18px;overflow-x:auto;max-width:100%} svg.chart{display:block}
nav ol{columns:2;font-size:.9em} h2.appendix{border-bottom-color:#888;color:#444}
.summary-lead{font-size:1.05em} .summary-lead b{font-size:1.1em}
@media (max-width:600px){main{padding:12px 12px 40px} nav ol{columns:1} h1{font-size:1.3em}}
.box{background:#f0f4f8;border-left:4px solid #1f5f99;padding:8px 12px;
  font-size:.9em} .warn{color:#9a3412}
"""


@dataclass
class Block:
    """A piece of a section: a heading, a paragraph, a table or a chart."""

    kind: str  # "h3" | "p" | "lead" (trusted markup) | "table" | "chart"
    text: str = ""
    frame: pl.DataFrame | None = None
    counts: tuple[str, ...] = ()
    chart: str = ""  # SVG markup, made by cilink.report.charts (trusted: no data text but labels we escape there)
    name: str = ""
    #: count columns holding noisy counts (differential privacy): printed with NOISY in front
    noisy: tuple[str, ...] = ()


@dataclass
class Section:
    id: str
    title: str
    intro: str
    blocks: list[Block]
    #: model internals and bookkeeping, after the sections a partner's director reads
    appendix: bool = False


def _cell(value: object, is_count: bool, is_noisy: bool = False) -> str:
    if is_noisy and isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="n c dp">{NOISY}{value:,}</td>'
    if value is None:
        text, cls = (SUPPRESSED, "n s") if is_count else ("–", "n s")
        return f'<td class="{cls}">{text}</td>'
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, float):
        # probabilities span orders of magnitude (u of an exact SSN match is ~1e-7): three significant digits
        text = f"{value:.3g}" if abs(value) < 1 and value != 0 else f"{value:,.1f}"
        return f'<td class="n">{text}</td>'
    if isinstance(value, int):
        return f'<td class="n c">{value:,}</td>' if is_count else f'<td class="n">{value:,}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def render_table(frame: pl.DataFrame, counts: tuple[str, ...], noisy: tuple[str, ...] = ()) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(_cell(v, c in counts, c in noisy) for c, v in zip(frame.columns, row, strict=True))
                   + "</tr>" for row in frame.iter_rows())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _block(b: Block) -> str:
    if b.kind == "h3":
        return f"<h3>{html.escape(b.text)}</h3>"
    if b.kind == "p":
        return f'<p class="note">{html.escape(b.text)}</p>'
    if b.kind == "lead":
        return f'<p class="summary-lead">{b.text}</p>'  # built by the report from escaped parts
    if b.kind == "table":
        assert b.frame is not None
        # scrolls on a phone, not the page
        return f'<div class="scroll">{render_table(b.frame, b.counts, b.noisy)}</div>'
    return f'<figure data-chart="{html.escape(b.name)}">{b.chart}</figure>'


def render_page(title: str, meta: list[str], summary: str, sections: list[Section]) -> str:
    """The whole page."""
    def heading(s: Section) -> str:
        return ("Appendix: " if s.appendix else "") + s.title

    nav = "".join(f'<li><a href="#{s.id}">{html.escape(heading(s))}</a></li>' for s in sections)
    body = "".join(
        f'<section id="{s.id}"><h2{" class=appendix" if s.appendix else ""}>{html.escape(heading(s))}</h2>'
        f'<p>{html.escape(s.intro)}</p>' + "".join(_block(b) for b in s.blocks) + "</section>" for s in sections)
    meta_html = "<br>".join(html.escape(m) for m in meta)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body><main>"
        f'<h1>{html.escape(title)}</h1><p class="meta">{meta_html}</p>'
        f'<p class="box">{html.escape(summary)}</p><nav><ol>{nav}</ol></nav>{body}</main></body></html>\n'
    )
