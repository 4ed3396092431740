"""`python -m ibframe.report JOURNAL|RECORDING [--out DIR] [--config CFG] [--fills recorded|simulated]`: see cli.py."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
