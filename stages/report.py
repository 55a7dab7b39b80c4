"""DVC stage: report. Usage: python stages/report.py

Writes the offline HTML report (report/index.html) from every lab's results: the root
dvc.yaml's last stage, so a root `dvc repro` runs every lab first.
"""

import sys

from labflow.cli import main
from labflow.frame.stages import record_imports

if __name__ == "__main__":
    code = main(["report"])
    if code == 0:
        record_imports("report", [])
    sys.exit(code)
