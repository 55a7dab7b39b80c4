"""``labflow report``: one static page per lab and an index, from the pipeline's own outputs.

The report copies the figures beside its pages and links the runs in the MLflow UI (in its
Model training mode). It reads; it never trains: a lab that has not run says so on its page.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from labflow.report import html
from labflow.report.collect import LabPage, collect_lab, variant_run_ids
from labflow.tracking import links


MARKER = ".labflow-report"
"""Written into every report: the folder is labflow's own, so the next report may replace it whole."""


class ReportFolderError(Exception):
    """``--out`` names a folder that is not a report's: nothing is deleted."""

    def __init__(self, out: Path, reason: str):
        super().__init__(f"{out} {reason}")
        self.reason = reason


def _is_legacy_report(entries: list[Path]) -> bool:
    """A report written before the marker existed: index.html and labNN folders, nothing else."""
    names = {p.name for p in entries}
    return "index.html" in names and all(
        (p.name == "index.html" and p.is_file()) or (re.fullmatch(r"lab\d\d", p.name) and p.is_dir()) for p in entries)


def check_out_folder(out: Path) -> None:
    """Refuse ``out`` unless it is new, an empty folder, or a report (marked, or of the old layout).

    ``--out .`` would otherwise replace the repository, ``--out ~`` the home folder.
    """
    if out.is_symlink():  # swapping would replace the link, not the folder it names
        raise ReportFolderError(out, "is a symbolic link: choose an empty or new folder")
    if out.exists() and not out.is_dir():
        raise ReportFolderError(out, "is not a folder: choose an empty or new folder")
    if not out.exists():
        return
    entries = sorted(out.iterdir())
    if not entries or (out / MARKER).is_file() or _is_legacy_report(entries):
        return
    names = [p.name for p in entries]
    holds = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    raise ReportFolderError(out, f"is not a labflow report folder (it holds {holds}): choose an empty or new folder")


def _swap_in(built: Path, out: Path) -> None:
    """Put the finished ``built`` folder at ``out``, replacing the old report only once the new one is whole."""
    check_out_folder(out)  # again: the folder may have changed while the report was built
    if not out.exists():
        os.rename(built, out)
        return
    old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
    os.rename(out, old)  # onto the empty folder mkdtemp made
    try:
        os.rename(built, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old)


def build_report(root: Path, out: Path, *, ui: str = links.DEFAULT_UI, with_links: bool = True) -> Path:
    """Write ``out/index.html`` and ``out/<lab>/index.html``; return the index path.

    The pages are built in a fresh folder beside ``out`` (same filesystem) and swapped in whole:
    a failed build leaves the previous report as it was. ``out`` must be new, empty or a report
    (ReportFolderError otherwise, before any work).
    """
    check_out_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    built = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.new-"))
    try:
        _write_pages(root, built, ui=ui, with_links=with_links)
        os.chmod(built, 0o755)  # mkdtemp's folder is private; a report is for reading
        _swap_in(built, out)
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise
    return out / "index.html"


def _write_pages(root: Path, out: Path, *, ui: str, with_links: bool) -> None:
    """Every page, its figures and the marker, into the empty folder ``out``."""
    from labflow.frame.config import load_params
    from labflow.labs import LABS, lab_module
    from labflow.tracking.tags import git_state

    (out / MARKER).write_text("Written by `labflow report`; the next report replaces this folder whole.\n")
    params = load_params(root / "params.yaml")
    pages = []
    for lab_id in LABS:
        title = getattr(lab_module(lab_id), "TITLE", lab_id)
        pages.append(collect_lab(root, lab_id, title, params.lab(lab_id), seed=params.seed))
    store_note = _add_links(root, pages, params, ui) if with_links else "MLflow links left out (--no-links)."

    git = git_state(root)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = (f"Git commit <code>{html.escape(git['git.commit'])}</code>"
            f"{' (with uncommitted changes)' if git['git.dirty'] == 'true' else ''} · "
            f"profile <code>{html.escape(params.profile)}</code> · seed {params.seed} · written {stamp}")
    for page in pages:
        (out / page.lab_id).mkdir()
        (out / page.lab_id / "index.html").write_text(_lab_html(page, out / page.lab_id, meta))
    (out / "index.html").write_text(_index_html(pages, meta, store_note))


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


def _lessons_html(record: dict) -> str:
    """What the course says the lab shows, and whether it held: the first thing on the lab's page."""
    if not record["claims"]:
        return f"<h2>Lessons</h2><p class=\"lessons\">No claim to check: {html.escape(record['no_claim'])}</p>"
    seeds = record.get("seeds") or []
    rows = [{"claim": c["says"], "verdict": c["verdict_text"], "measured": "; ".join(c["measured"]),
             "the course": c["course"]} for c in record["claims"]]
    noise = "one training seed: no estimate of seed noise" if len(seeds) < 2 else f"training seeds {', '.join(map(str, seeds))}"
    return (f"<h2>Lessons</h2><p class=\"meta\">What the course says this lab shows, checked on our metrics ({noise}).</p>"
            + html.table(rows, css_class="lessons"))


def _lab_html(page: LabPage, folder: Path, meta: str) -> str:
    parts = [f"<p class=\"meta\"><a href=\"../index.html\">all labs</a> · {meta}</p>",
             f"<h1>{html.escape(page.lab_id)}: {html.escape(page.title)}</h1>"]
    if page.course:
        c = page.course
        flaw = f" <em>Note:</em> {html.escape(c.flaw)}." if c.flaw else ""
        parts.append(f"<p class=\"course\"><strong>The course reports</strong> {html.escape(c.reported)} "
                     f"on {html.escape(c.on)}.{flaw}</p>")
    if page.lessons is not None:
        parts.append(_lessons_html(page.lessons))
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


def _lessons_count(record: dict | None) -> str:
    """``2 hold, 1 reversed`` for the index: how the lab's claims came out."""
    if record is None:
        return ""
    if not record["claims"]:
        return "none"
    counts: dict[str, int] = {}
    for claim in record["claims"]:
        counts[claim["verdict"]] = counts.get(claim["verdict"], 0) + 1
    return ", ".join(f"{n} {verdict}" for verdict, n in counts.items())


def _index_html(pages: list[LabPage], meta: str, store_note: str) -> str:
    rows = []
    for page in pages:
        status = "not run yet" if page.missing else f"{len(page.table)} rows, {len(page.figures)} figures"
        course = page.course.reported if page.course else ""
        lessons = _lessons_count(page.lessons)
        rows.append(
            f"<tr><td>{html.link(f'{page.lab_id}/index.html', page.lab_id)}</td>"
            f"<td>{html.escape(page.title)}</td><td>{html.escape(lessons)}</td><td>{html.escape(status)}</td>"
            f"<td>{html.escape(course)}</td></tr>"
        )
    body = (
        "<h1>labflow report</h1>"
        f"<p class=\"meta\">{meta}</p><p class=\"meta\">{store_note}</p>"
        "<table class=\"labs\"><thead><tr><th>lab</th><th>compares</th><th>the course's claims</th><th>results</th>"
        "<th>the course reports</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )
    return html.page("labflow report", body)
