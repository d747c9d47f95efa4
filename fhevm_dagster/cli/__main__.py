"""`python -m fhevm_dagster.cli`: the same command as the `fhevm-dagster` script."""

import sys

from . import main

sys.exit(main())
