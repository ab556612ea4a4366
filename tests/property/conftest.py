"""Hypothesis settings for the property tests.

``ci`` (the default, what `make test` runs): a bounded number of examples per test and no example database, so a
run takes seconds and writes nothing. ``long`` (`make fuzz`, or HYPOTHESIS_PROFILE=long): many more examples, and
the database in .hypothesis/ so a failure found once is tried first next time.
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile("ci", max_examples=200, deadline=None, database=None, suppress_health_check=_QUIET,
                          print_blob=True)
settings.register_profile("long", max_examples=5_000, deadline=None, suppress_health_check=_QUIET,
                          print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
