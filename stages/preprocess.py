"""DVC stage: preprocess. Usage: python stages/preprocess.py LAB"""

import sys

from labflow.stages import preprocess, main

if __name__ == "__main__":
    sys.exit(main(preprocess, sys.argv[1:], "python stages/preprocess.py LAB"))
