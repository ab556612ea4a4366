"""The on-call engineer's tool for the customer-events dead-letter queue: list, show, replay, export, purge.

``python -m opstool --help``; the procedure for an incident is docs/RUNBOOK.md.
"""
