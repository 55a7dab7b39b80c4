"""DVC stage: evaluate. Usage: python stages/evaluate.py LAB

Runs in a warm stage runner when one answers (see labflow.stage_runner), else in this process.
"""

import sys

from labflow.stage_runner import run_stage

if __name__ == "__main__":
    sys.exit(run_stage("evaluate", sys.argv[1:]))
