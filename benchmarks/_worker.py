"""Measurements that need a fresh interpreter: ``python -m benchmarks._worker MODULE:FUNCTION ARGS...``.

Calls ``benchmarks.MODULE.FUNCTION(*ARGS)`` (each argument a string) and prints its result,
one JSON object, as the last line of stdout.
"""

from __future__ import annotations

import importlib
import json
import sys


def main(argv: list[str]) -> None:
    target, *args = argv
    module_name, _, function_name = target.partition(":")
    module = importlib.import_module(f"benchmarks.{module_name}")
    result = getattr(module, function_name)(*args)
    sys.stdout.flush()
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
