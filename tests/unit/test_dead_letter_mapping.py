"""functions.settlement: which raised error is dead-lettered at once, with which code and description."""
from __future__ import annotations

import pytest

from functions.settlement import MAX_DESCRIPTION, dead_letter_for, describe
from shared.domain.errors import (ClaimLost, InvalidEvent, PermanentError, RetryBudgetSpent, TransientError,
                                  UnknownProfile)


@pytest.mark.parametrize("error, code", [
    (InvalidEvent("data.customerId", "is required"), "InvalidEvent"),
    (UnknownProfile("platinum", ["oem", "partner-web"]), "UnknownProfile"),
    (RetryBudgetSpent(TransientError("503 Service Unavailable", service="auth0", operation="create"), 5),
     "RetryBudgetSpent"),
    (PermanentError("400 Bad Request: callbacks must be https", service="auth0", operation="create"),
     "PermanentFailure"),
])
def test_permanent_failures_are_dead_lettered_with_a_stable_code_and_the_rule(error, code):
    dead = dead_letter_for(error)
    assert dead.reason == code
    assert dead.description == error.reason


def test_the_spent_budget_names_the_last_failure():
    dead = dead_letter_for(RetryBudgetSpent(TransientError("503", service="auth0", operation="clients.create"), 3))
    assert dead.description == "retry budget spent after 3 retries; last failure: auth0.clients.create: 503"


@pytest.mark.parametrize("error", [TransientError("schedule refused", service="servicebus"), ClaimLost("fenced"),
                                   RuntimeError("a bug"), KeyError("x")])
def test_transient_failures_and_bugs_are_left_to_the_hosts_redeliveries(error):
    assert dead_letter_for(error) is None


def test_the_description_is_one_bounded_printable_line():
    rule = "data.\x1b]0;owned\x07\ud800: is not allowed\n" + "x" * 5000
    text = describe(rule)
    assert len(text) == MAX_DESCRIPTION and text.endswith("…")
    assert text.isprintable()
    assert text.startswith("data.\\x1b]0;owned\\x07\\ud800: is not allowed\\x0a")
    text.encode("utf-8")  # no lone surrogate left
