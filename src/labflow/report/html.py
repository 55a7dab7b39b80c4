"""Static HTML for the offline report: no scripts from the network, no external files.

Each page carries its style inline and its figures as files beside it, so the folder opens
from disk (or a zip, or any static host) in any browser. One short inline script marks the
page when a figure fails to load, so a broken page says so instead of showing an empty box.
"""

from __future__ import annotations

from html import escape
from typing import Any

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#1b1f24}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:.6rem 0;font-size:13px}th,td{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:right}
th{background:#f6f8fa}td:first-child,th:first-child{text-align:left}
.meta{color:#57606a;font-size:13px}.course{background:#fff8c5;border:1px solid #d4a72c;padding:.5rem .8rem;border-radius:6px}
.figs{display:flex;flex-wrap:wrap;gap:1rem}figure{margin:0;max-width:520px}figure img{max-width:100%;border:1px solid #d0d7de}
figcaption{font-size:12px;color:#57606a}.missing{color:#a40e26;font-weight:600}
#figure-warning{display:none;background:#ffebe9;border:1px solid #a40e26;padding:.5rem;margin:1rem 0}
a{color:#0969da}
"""

# Marks the page once every image has settled: data-figures="loaded/total" on <body>, and a
# visible warning naming the figures that did not load.
CHECK_FIGURES = """
<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  document.body.setAttribute('data-figures', (imgs.length - broken.length) + '/' + imgs.length);
  if (broken.length) {
    var w = document.getElementById('figure-warning');
    w.style.display = 'block';
    w.textContent = broken.length + ' figure(s) did not load: ' +
      broken.map(function (i) { return i.getAttribute('src'); }).join(', ') +
      '. Rerun `labflow report` after `dvc repro`.';
  }
});
</script>
"""


def page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>\n"
        "<div id=\"figure-warning\" role=\"alert\"></div>\n"
        f"{body}\n{CHECK_FIGURES}</body></html>\n"
    )


def fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        if value.strip().lstrip("-").isdigit():
            return value
        return f"{number:.4g}"
    return str(value)


def table(rows: list[dict[str, Any]], *, css_class: str = "") -> str:
    if not rows:
        return "<p class=\"meta\">(no rows)</p>"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{escape(str(c))}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(fmt(r.get(c)))}</td>" for c in cols) + "</tr>" for r in rows
    )
    cls = f" class=\"{css_class}\"" if css_class else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def markdown_tables(text: str) -> str:
    """The seed tables (pipe tables and plain lines, as seed_bands.markdown writes them) as HTML."""
    out, rows = [], []

    def flush():
        if rows:
            head, body = rows[0], [r for r in rows[1:] if not set("".join(r)) <= set("-: ")]
            out.append(table([dict(zip(head, r)) for r in body], css_class="seeds"))
            rows.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
            continue
        flush()
        if line.strip():
            out.append(f"<p>{escape(line)}</p>")
    flush()
    return "\n".join(out)


def figure(src: str, caption: str) -> str:
    return (f"<figure><img src=\"{escape(src)}\" alt=\"{escape(caption)}\" loading=\"eager\">"
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def link(href: str, text: str) -> str:
    return f"<a href=\"{escape(href)}\">{escape(text)}</a>"
