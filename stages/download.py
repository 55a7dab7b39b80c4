"""DVC stage: download. Usage: python stages/download.py DATASET

Runs in a warm stage runner when one answers (see labflow.frame.runner), else in this process.
"""

import sys

from labflow.frame.runner import run_stage

if __name__ == "__main__":
    sys.exit(run_stage("download", sys.argv[1:]))
