"""`python -m ibframe`: the same as the `ibframe` command (ibframe/cli.py)."""
import sys

from .cli import main

sys.exit(main())
