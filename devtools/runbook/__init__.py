"""docs/RUNBOOK.md's sample outputs, captured from real runs (``python -m devtools.runbook``)."""
