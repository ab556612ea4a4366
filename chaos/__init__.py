"""The chaos suite: customer lifecycles under injected faults and worker kills (``python -m chaos``)."""
