"""Pacing of ARM calls on ARM's own rate-limit headers: an azure-core pipeline policy for the APIM management plane.

Azure Resource Manager throttles each principal with token buckets per operation kind (Microsoft's "Understand how
Azure Resource Manager throttles requests": reads 250 refilled at 25/s, writes 200 at 10/s, deletes 200 at 10/s) and
says what is left on every answer (``x-ms-ratelimit-remaining-subscription-reads``/``-writes``/``-deletes``); an
empty bucket answers 429 with ``Retry-After``. Every instance of the app uses the same managed identity, so they share
these buckets: each paces on the headers with a :class:`RateGovernor` per kind (documented size and rate, since ARM
sends no reset time), and holds every call of the kind after a 429.

The policy sits after azure-core's retry policy (passed as the client's ``custom_hook_policy``, which the generated
management clients place there), so each attempt, a retry included, takes its turn and is seen.
"""
from __future__ import annotations

from typing import Callable

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy

from .failure_rules import retry_after_seconds
from .rate_governor import RateGovernor, number

#: (bucket size, refill per second) per principal, Microsoft's documented regional token buckets
ARM_BUCKETS = {"reads": (250.0, 25.0), "writes": (200.0, 10.0), "deletes": (200.0, 10.0)}
HEADER = "x-ms-ratelimit-remaining-subscription-{}"


def kind_of(method: str) -> str:
    method = method.upper()
    if method in ("GET", "HEAD", "OPTIONS"):
        return "reads"
    return "deletes" if method == "DELETE" else "writes"


class ArmPacingPolicy(SansIOHTTPPolicy):
    def __init__(self, *, buckets: dict[str, tuple[float, float]] | None = None,
                 governor: Callable[..., RateGovernor] = RateGovernor, max_wait: float = 30.0):
        """``max_wait``: per attempt; the policy runs once for each of an Azure call's attempts."""
        self.governors = {kind: governor(f"arm.{kind}", limit=size, rate=rate, max_wait=max_wait)
                          for kind, (size, rate) in (buckets or ARM_BUCKETS).items()}

    def on_request(self, request: PipelineRequest) -> None:
        self.governors[kind_of(request.http_request.method)].acquire("arm." + kind_of(request.http_request.method))

    def on_response(self, request: PipelineRequest, response: PipelineResponse) -> None:
        headers = response.http_response.headers
        kind = kind_of(request.http_request.method)
        for name, gov in self.governors.items():
            value = number(headers.get(HEADER.format(name)))
            if value is not None or name == kind:  # this kind's answer without its header: nothing to pace on
                gov.observe(remaining=value)
        if response.http_response.status_code == 429:
            wait = retry_after_seconds(headers, status=429)
            self.governors[kind].hold(1.0 if wait is None else wait)
