"""DVC stage: evaluate. Usage: python stages/evaluate.py LAB"""

import sys

from labflow.stages import evaluate, main

if __name__ == "__main__":
    sys.exit(main(evaluate, sys.argv[1:], "python stages/evaluate.py LAB"))
