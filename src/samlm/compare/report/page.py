"""The report as pages: ``report.md`` (plots linked), ``report.html`` (plots inlined as
PNG data, no scripts, no fonts from elsewhere), and ``write_report``, which writes both."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from .analysis import Analysis, analyse
from .answer import MEANING, TITLE, answer_lines
from .plots import CAPTIONS, plots
from .tables import NO_RESULTS, markdown_table, sections, status_lines

ANSWER_PLOT = "gain_by_stratum"  # shown with the answer; the other plots at the end


def markdown(a: Analysis, images: dict[str, str]) -> str:
    def image(name: str) -> str:
        return f"![{CAPTIONS.get(name, name)}]({name}.png)"

    parts = ["# SAM against its baseline", "", f"## {TITLE}", ""]
    parts += [f"- {line}" for line in answer_lines(a)] + ["", MEANING, ""]
    parts += [image(ANSWER_PLOT), ""] if ANSWER_PLOT in images else []
    for title, text, rows in sections(a):
        parts += [f"## {title}", "", text, "", markdown_table(rows), ""]
    if status_lines(a):
        parts += ["## Status", "", *[f"- {s}" for s in status_lines(a)], ""]
    parts += ["## Plots", ""]
    parts += [image(name) for name in images if name != ANSWER_PLOT] or [NO_RESULTS]
    return "\n".join(parts) + "\n"


def html_page(a: Analysis, images: dict[str, bytes]) -> str:
    def table(rows: list[dict[str, str]]) -> str:
        if not rows:
            return f"<p>{NO_RESULTS}</p>"
        head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r.values()) + "</tr>"
            for r in rows
        )
        return f"<table><tr>{head}</tr>{body}</table>"

    def figure(name: str) -> str:
        return (
            f'<figure><img alt="{name}" src="data:image/png;base64,'
            f'{base64.b64encode(images[name]).decode()}"><figcaption>'
            f"{html.escape(CAPTIONS.get(name, name.replace('_', ' ')))}</figcaption></figure>"
        )

    figures = "".join(figure(n) for n in images if n != ANSWER_PLOT) or f"<p>{NO_RESULTS}</p>"
    status = "".join(f"<li>{html.escape(s)}</li>" for s in status_lines(a))
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:"
        "collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
        "img{max-width:100%}"
    )
    answer = "".join(f"<li>{html.escape(line)}</li>" for line in answer_lines(a))
    answer = f"<h2>{TITLE}</h2><ul>{answer}</ul><p>{html.escape(MEANING)}</p>"
    answer += figure(ANSWER_PLOT) if ANSWER_PLOT in images else ""
    body = answer + "".join(
        f"<h2>{html.escape(title)}</h2><p>{html.escape(text)}</p>{table(rows)}"
        for title, text, rows in sections(a)
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>samlm report</title>"
        f"<style>{style}</style></head><body><h1>SAM against its baseline</h1>{body}"
        f"{'<h2>Status</h2><ul>' + status + '</ul>' if status else ''}"
        f"<h2>Plots</h2>{figures}</body></html>"
    )


def write_report(folder: str | Path) -> Analysis:
    """Write ``report.md``, its PNGs and ``report.html`` into ``folder``; return the analysis."""
    folder = Path(folder)
    a = analyse(folder)
    images = plots(a)
    for name, png in images.items():
        (folder / f"{name}.png").write_bytes(png)
    (folder / "report.md").write_text(markdown(a, images))
    (folder / "report.html").write_text(html_page(a, images))
    return a
