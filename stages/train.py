"""DVC stage: train. Usage: python stages/train.py LAB VARIANT"""

import sys

from labflow.stages import train, main

if __name__ == "__main__":
    sys.exit(main(train, sys.argv[1:], "python stages/train.py LAB VARIANT"))
