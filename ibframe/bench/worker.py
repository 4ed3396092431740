"""`python -m ibframe.bench.worker CASE PART [--quick]`: one run of one part, in a fresh process.

Owns: importing the case module, running the part once, and printing its result as one JSON line
(the last line of stdout): {"values": {...}, "verified": bool, "detail": str}.
Must never: print anything else on stdout after the result.
"""
from __future__ import annotations

import importlib
import json
import sys
import traceback


def main(argv: list[str]) -> int:
    case, part = argv[0], argv[1]
    quick = "--quick" in argv[2:]
    try:
        result = importlib.import_module(f"ibframe.bench.{case}").run(part, quick)
    except Exception as exc:
        traceback.print_exc()
        result = {"values": {}, "verified": False, "detail": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
