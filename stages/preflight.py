"""DVC stage: preflight. Validates params.yaml and the tracking store before any other stage runs.

Runs in a warm stage runner when one answers (see labflow.frame.runner), else in this process,
and then starts a runner in the background for the stages that follow.
"""

import sys

from labflow.frame.runner import run_stage

if __name__ == "__main__":
    sys.exit(run_stage("preflight", sys.argv[1:]))
