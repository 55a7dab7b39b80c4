"""DVC stage: train. Usage: python stages/train.py LAB VARIANT [SEED]

Runs in a warm stage runner when one answers (see labflow.stage_runner), else in this process.
"""

import sys

from labflow.stage_runner import run_stage

if __name__ == "__main__":
    sys.exit(run_stage("train", sys.argv[1:]))
