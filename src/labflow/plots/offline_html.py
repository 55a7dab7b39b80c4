"""Build an HTML template for `dvc plots show/diff` with vega inlined, so plots render offline.

DVC's default page loads vega, vega-lite and vega-embed from a CDN and stays blank without
internet. Usage: ``python -m labflow.plots.offline_html FOLDER`` where FOLDER holds the npm
packages (``npm install --prefix FOLDER vega@5 vega-lite@5 vega-embed@6``); writes
FOLDER/template.html for ``dvc plots show --html-template FOLDER/template.html``.
"""

from __future__ import annotations

import sys
from pathlib import Path

BUNDLES = ("vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js", "vega-embed/build/vega-embed.min.js")


def build(folder: Path) -> Path:
    modules = folder / "node_modules"
    scripts = []
    for bundle in BUNDLES:
        path = modules / bundle
        if not path.exists():
            raise SystemExit(f"{path} is missing: run `npm install --prefix {folder} vega@5 vega-lite@5 vega-embed@6`")
        # A literal "</script>" inside the bundle would end the tag early.
        scripts.append("<script>\n" + path.read_text().replace("</script>", "<\\/script>") + "\n</script>")
    page = (
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>labflow plots</title>\n"
        + "\n".join(scripts)
        + "\n<style>table { border-spacing: 15px; }</style>\n</head>\n<body>\n{plot_divs}\n</body>\n</html>\n"
    )
    out = folder / "template.html"
    out.write_text(page)
    return out


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else ".cache/vega")))
