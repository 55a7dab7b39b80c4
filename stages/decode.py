"""DVC stage: decode. Usage: python stages/decode.py LAB VARIANT [SEED]

Runs one variant of a lab that decodes one trained model (labs.SHARED_MODEL), without training it.

Runs in a warm stage runner when one answers (see labflow.frame.runner), else in this process.
"""

import sys

from labflow.frame.runner import run_stage

if __name__ == "__main__":
    sys.exit(run_stage("decode", sys.argv[1:]))
