"""Example strategies; each runs with `python -m ibframe.run config/<name>.yaml`."""
