"""`python -m ibframe.replay`: see cli.py."""
import sys

from .cli import main

sys.exit(main())
