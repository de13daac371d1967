"""clientreg benchmarks: ``python -m benchmarks [--quick]`` measures clientreg next to the plain ways.

Every comparison runs side by side in one run, as medians over repeated rounds with their
spread; see ``benchmarks/RESULTS.md`` for a real run and the machine it ran on.
"""
