"""`python -m fhevm_dagster.cli`: the same command as the `fhevm-dagster` script."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
