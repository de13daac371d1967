"""clientreg benchmarks: ``python -m benchmarks`` measures clientreg next to the plain SDKs and Langroid.

Every figure is measured side by side with its baselines in one run, as medians over repeated
rounds with their spread, and judged against its target. ``benchmarks/RESULTS.md`` (written
by the full run) has the last table, the machine and each figure's conditions; ``run.py``
says how to run it.
"""
