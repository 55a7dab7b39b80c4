"""DVC stage: download. Usage: python stages/download.py DATASET"""

import sys

from labflow.stages import download, main

if __name__ == "__main__":
    sys.exit(main(download, sys.argv[1:], "python stages/download.py DATASET"))
