"""DVC stage: train. Usage: python stages/train.py LAB VARIANT [SEED]

Runs in a warm stage runner when one answers (see labflow.frame.runner), else in this process.
Under torchrun (RANK/WORLD_SIZE/LOCAL_RANK set) each rank runs in its own process, as torchrun
expects of its workers; params.yaml's ``distributed.processes`` > 1 relaunches it that way.
"""

import os
import sys

from labflow.frame.runner import run_in_process, run_stage

if __name__ == "__main__":
    if all(key in os.environ for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK")):
        sys.exit(run_in_process("train", sys.argv[1:]))
    sys.exit(run_stage("train", sys.argv[1:]))
