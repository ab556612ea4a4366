"""How the adapters classify SDK failures and bound the SDKs' in-call retries (no network: SDK objects only)."""
from __future__ import annotations

import time

import pytest
from azure.core.exceptions import (ClientAuthenticationError, HttpResponseError, ResourceNotFoundError,
                                   ServiceRequestError, ServiceResponseError)
from azure.core.rest import HttpRequest
from azure.identity import CredentialUnavailableError

from shared.adapters.azure_errors import ShortRetryPolicy, classify
from shared.adapters.failure_rules import is_transient_status, redact, retry_after_seconds
from shared.domain.errors import PermanentError, TransientError


class FakeResponse:
    def __init__(self, status: int, body: str = "", headers: dict | None = None, reason: str = "Reason"):
        self.status_code, self.reason, self.headers = status, reason, headers or {}
        self._body = body
        self.request = None
        self.content_type = "application/json"

    def text(self, encoding=None):
        return self._body


def http_error(status: int, code: str = "Code", message: str = "what happened", headers=None, cls=HttpResponseError):
    body = f'{{"error": {{"code": "{code}", "message": "{message}"}}}}'
    return cls(response=FakeResponse(status, body, headers))


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 409, 412])
def test_statuses_worth_retrying_are_transient(status):
    err = classify(http_error(status), service="apim", operation="set_subscription")
    assert isinstance(err, TransientError)
    assert (err.status, err.service, err.operation) == (status, "apim", "set_subscription")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_statuses_are_permanent_with_code_and_message(status):
    err = classify(http_error(status, "ValidationError", "displayName is too long"), service="apim",
                   operation="set_authorization_server")
    assert isinstance(err, PermanentError) and not isinstance(err, TransientError)
    assert err.message == f"{status} ValidationError: displayName is too long"


def test_throttling_carries_the_retry_after():
    err = classify(http_error(429, headers={"Retry-After": "7"}), service="keyvault", operation="set_secret")
    assert err.retry_after == 7.0


def test_no_response_is_transient():
    assert isinstance(classify(ServiceRequestError("refused"), service="s", operation="o"), TransientError)
    assert isinstance(classify(ServiceResponseError("reset"), service="s", operation="o"), TransientError)


def test_credential_failures():
    missing = classify(CredentialUnavailableError("no managed identity endpoint"), service="s", operation="o")
    assert isinstance(missing, PermanentError) and "no Azure credential" in missing.message
    flaky = classify(ClientAuthenticationError("identity endpoint timed out"), service="s", operation="o")
    assert isinstance(flaky, TransientError)


def test_known_secrets_are_redacted_from_messages():
    err = classify(http_error(400, message="value hunter2-secret is not allowed"), service="keyvault",
                   operation="set_secret", secrets=("hunter2-secret",))
    assert "hunter2-secret" not in err.message and "***" in err.message


def test_a_subclass_keeps_its_status():
    err = classify(http_error(404, cls=ResourceNotFoundError), service="apim", operation="get")
    assert isinstance(err, PermanentError) and err.status == 404


def test_retry_after_header_forms():
    assert retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_seconds({"Retry-After": "3"}) == 3.0
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    assert 55 < retry_after_seconds({"Retry-After": date}) <= 60
    assert retry_after_seconds({}) is None


class _PipelineResponse:
    def __init__(self, status: int, headers: dict, method: str = "PUT"):
        self.http_response = FakeResponse(status, headers=headers)
        self.http_request = HttpRequest(method, "https://example.invalid/")


def test_the_in_call_retry_is_short_and_never_sleeps_a_long_retry_after():
    policy = ShortRetryPolicy()
    settings = policy.configure_retries({})
    assert settings["total"] == 2 and settings["backoff"] == 0.2
    assert policy.is_retry(settings, _PipelineResponse(503, {}))
    assert policy.is_retry(settings, _PipelineResponse(429, {"Retry-After": "1"}))
    assert not policy.is_retry(settings, _PipelineResponse(429, {"Retry-After": "30"}))
    assert not policy.is_retry(settings, _PipelineResponse(400, {}))


def test_a_429_prefers_the_rate_limit_reset():
    now = 1_000_000.0
    assert retry_after_seconds({"x-ratelimit-reset": str(int(now) + 4), "retry-after": "9"}, status=429,
                               now=now) == 4.0
    assert retry_after_seconds({"X-RateLimit-Reset": str(int(now) - 5)}, status=429, now=now) == 0.0
    assert retry_after_seconds({"Retry-After": "9"}, status=429, now=now) == 9.0
    assert retry_after_seconds({}, status=429, now=now) is None


def test_a_5xx_ignores_the_rate_limit_reset_that_auth0_sends_on_every_answer():
    now = 1_000_000.0
    assert retry_after_seconds({"x-ratelimit-reset": str(int(now) + 4)}, status=503, now=now) is None
    assert retry_after_seconds({"x-ratelimit-reset": str(int(now) + 4), "Retry-After": "30"}, status=503,
                               now=now) == 30.0


def test_one_transient_rule_and_one_redaction():
    assert [s for s in (None, 200, 400, 404, 408, 409, 429, 500, 503) if is_transient_status(s)] == \
        [None, 408, 429, 500, 503]
    assert redact("token hunter2-secret\nsecond   line", ("hunter2-secret", "abc")) == "token *** second line"
