"""DVC stage: preflight. Validates params.yaml and the tracking store before any other stage runs."""

import sys

from labflow.stages import main, preflight

if __name__ == "__main__":
    sys.exit(main(preflight, sys.argv[1:], "python stages/preflight.py"))
