"""``labflow report``: one static page per lab and an index, from the pipeline's own outputs.

The report copies the figures beside its pages and links the runs in the MLflow UI (in its
Model training mode). It reads; it never trains: a lab that has not run says so on its page.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

from labflow.report import html
from labflow.report.collect import LabPage, collect_lab, variant_run_ids
from labflow.tracking import links


def build_report(root: Path, out: Path, *, ui: str = links.DEFAULT_UI, with_links: bool = True) -> Path:
    """Write ``out/index.html`` and ``out/<lab>/index.html``; return the index path."""
    from labflow.config import load_params
    from labflow.labs import LABS, lab_module
    from labflow.tracking.tags import git_state

    params = load_params(root / "params.yaml")
    pages = []
    for lab_id in LABS:
        title = getattr(lab_module(lab_id), "TITLE", lab_id)
        pages.append(collect_lab(root, lab_id, title, params.lab(lab_id), seed=params.seed))
    store_note = _add_links(root, pages, params, ui) if with_links else "MLflow links left out (--no-links)."

    if out.exists():
        shutil.rmtree(out)  # a stale page of a lab that no longer exists must not linger
    out.mkdir(parents=True)
    git = git_state(root)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = (f"Git commit <code>{html.escape(git['git.commit'])}</code>"
            f"{' (with uncommitted changes)' if git['git.dirty'] == 'true' else ''} · "
            f"profile <code>{html.escape(params.profile)}</code> · seed {params.seed} · written {stamp}")
    for page in pages:
        (out / page.lab_id).mkdir()
        (out / page.lab_id / "index.html").write_text(_lab_html(page, out / page.lab_id, meta))
    index = out / "index.html"
    index.write_text(_index_html(pages, meta, store_note))
    return index


def _add_links(root: Path, pages: list[LabPage], params, ui: str) -> str:
    """Fill each page's MLflow addresses; returns one line about the store for the index."""
    from labflow.tracking.store import tracking_uri

    uri = tracking_uri()
    from labflow.tracking.store import sqlite_path

    if sqlite_path(uri) is not None and not sqlite_path(uri).exists():
        return f"No MLflow store at {uri}: run the pipeline first; the pages have no run links."
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    prefix = params.tracking.experiment_prefix
    from labflow.tracking.store import experiment_name

    try:
        ids = links.find_experiments(client, {p.lab_id: experiment_name(prefix, p.lab_id) for p in pages})
    except Exception as err:  # an unreachable server must not cost the report
        return f"MLflow store {uri} did not answer ({type(err).__name__}); the pages have no run links."
    for page in pages:
        exp_id = ids.get(page.lab_id)
        if exp_id is None:
            continue
        page.links["all runs of this lab"] = links.experiment_url(ui, exp_id)
        runs = variant_run_ids(root, page.lab_id, [params.seed, *(s for s in params.seeds if s != params.seed)])
        parent = links.comparison_run_for(client, exp_id, list(runs.values()))
        if parent:
            page.links["comparison (parent) run"] = links.run_url(ui, exp_id, parent)
        for variant, run_id in runs.items():
            page.links[f"variant {variant}"] = links.run_url(ui, exp_id, run_id)
    return (f"Run links open the MLflow UI at {ui} in its Model training mode; start it with "
            f"<code>labflow ui</code> (store: <code>{html.escape(uri)}</code>).")


def _copy_figures(figures: list[Path], dest: Path, prefix: str) -> list[tuple[str, str]]:
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for fig in figures:
        name = f"{prefix}{fig.name}"
        shutil.copy2(fig, dest / name)
        out.append((f"figures/{name}", fig.stem.replace("_", " ")))
    return out


def _lab_html(page: LabPage, folder: Path, meta: str) -> str:
    parts = [f"<p class=\"meta\"><a href=\"../index.html\">all labs</a> · {meta}</p>",
             f"<h1>{html.escape(page.lab_id)}: {html.escape(page.title)}</h1>"]
    if page.course:
        c = page.course
        flaw = f" <em>Note:</em> {html.escape(c.flaw)}." if c.flaw else ""
        parts.append(f"<p class=\"course\"><strong>The course reports</strong> {html.escape(c.reported)} "
                     f"on {html.escape(c.on)}.{flaw}</p>")
    if page.missing:
        parts.append(f"<p class=\"missing\">{html.escape(page.missing)}</p>")
    else:
        parts.append("<h2>Comparison</h2>" + html.table(page.table, css_class="comparison"))
        if page.seeds_md:
            parts.append("<h2>Seeds</h2>" + html.markdown_tables(page.seeds_md))
    varying = [{"variant": v, **vals} for v, vals in page.differing_params.items()]
    if varying:
        parts.append("<h2>What differs between the variants</h2>" + html.table(varying, css_class="params"))
    if page.shared_train:
        parts.append("<details><summary>Training settings every variant shares</summary>"
                     + html.table([{"setting": k, "value": v} for k, v in page.shared_train.items()])
                     + "</details>")
    if page.links:
        items = "".join(f"<li>{html.link(href, label)}</li>" for label, href in page.links.items())
        parts.append(f"<h2>Runs in MLflow</h2><ul class=\"runs\">{items}</ul>")
    if page.figures:
        figs = _copy_figures(page.figures, folder / "figures", "")
        parts.append("<h2>Figures</h2><div class=\"figs\">"
                     + "".join(html.figure(src, cap) for src, cap in figs) + "</div>")
    for variant, figures in page.variant_figures.items():
        if figures:
            figs = _copy_figures(figures, folder / "figures", f"{variant}__")
            parts.append(f"<details><summary>Figures of variant {html.escape(variant)}</summary><div class=\"figs\">"
                         + "".join(html.figure(src, cap) for src, cap in figs)
                         + "</div></details>")
    return html.page(f"{page.lab_id}: {page.title}", "\n".join(parts))


def _index_html(pages: list[LabPage], meta: str, store_note: str) -> str:
    rows = []
    for page in pages:
        status = "not run yet" if page.missing else f"{len(page.table)} rows, {len(page.figures)} figures"
        course = page.course.reported if page.course else ""
        rows.append(
            f"<tr><td>{html.link(f'{page.lab_id}/index.html', page.lab_id)}</td>"
            f"<td>{html.escape(page.title)}</td><td>{html.escape(status)}</td><td>{html.escape(course)}</td></tr>"
        )
    body = (
        "<h1>labflow report</h1>"
        f"<p class=\"meta\">{meta}</p><p class=\"meta\">{store_note}</p>"
        "<table class=\"labs\"><thead><tr><th>lab</th><th>compares</th><th>results</th>"
        "<th>the course reports</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )
    return html.page("labflow report", body)
