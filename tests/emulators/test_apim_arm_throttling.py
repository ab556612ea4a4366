"""ARM-style throttling of the API Management stand-in, through the real azure-mgmt-apimanagement client: buckets per
principal and kind, the x-ms-ratelimit-remaining-subscription-* headers on every answer, 429 + Retry-After when empty,
and the app's ApimGateway pacing on those headers."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.policies import RetryPolicy
from azure.identity import ManagedIdentityCredential
from azure.mgmt.apimanagement import ApiManagementClient

from emulators.apim import ApimStandIn
from emulators.control import StandInControl
from emulators.identity import IdentityStandIn
from emulators.tls import ensure_tls_files
from emulators.tokens import TokenIssuer

pytestmark = pytest.mark.timeout(60)

RG, SVC = "rg-local", "apim-local"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tls = ensure_tls_files(tmp_path_factory.mktemp("tls"))
    issuer = TokenIssuer()
    identity = IdentityStandIn(issuer).start()
    apim = ApimStandIn(issuer, tls=tls, arm_limits={"reads": (5.0, 3), "writes": (2.0, 2)}).start()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IDENTITY_ENDPOINT", identity.endpoint)
        mp.setenv("IDENTITY_HEADER", identity.header_secret)
        for var in ("IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET"):
            mp.delenv(var, raising=False)
        yield SimpleNamespace(tls=tls, apim=apim, credential=ManagedIdentityCredential(),
                              ctl=StandInControl(apim.url, verify=str(tls.ca_cert)))
    apim.stop()
    identity.stop()


def raw(pipeline_response, body, headers):
    return pipeline_response.http_response.status_code, pipeline_response.http_response.headers


def client(stack) -> ApiManagementClient:
    return ApiManagementClient(stack.credential, stack.apim.subscription_id, base_url=stack.apim.url,
                               connection_verify=str(stack.tls.ca_cert), retry_policy=RetryPolicy(retry_total=0))


def test_reads_carry_the_remaining_count_and_an_empty_bucket_answers_429(stack):
    stack.ctl.config(arm_limits={"reads": [5.0, 3], "writes": [2.0, 2]})  # new, full buckets
    mgmt = client(stack)
    remaining = []
    for _ in range(3):
        status, headers = mgmt.api_management_service.get(RG, SVC, cls=raw)
        remaining.append(int(headers["x-ms-ratelimit-remaining-subscription-reads"]))
    assert remaining == [2, 1, 0]
    with pytest.raises(HttpResponseError) as info:
        mgmt.api_management_service.get(RG, SVC)
    assert info.value.status_code == 429
    assert info.value.error.code == "TooManyRequests"
    assert 1 <= int(info.value.response.headers["Retry-After"]) <= 2
    # writes have a bucket of their own
    status, headers = mgmt.subscription.create_or_update(
        RG, SVC, "arm-1", {"scope": "/products/oem", "display_name": "x", "state": "active"}, cls=raw)
    assert headers["x-ms-ratelimit-remaining-subscription-writes"] == "1"
    assert stack.ctl.config()["arm_throttled"] >= 1


def test_the_gateway_paces_on_the_headers_and_meets_no_429(stack):
    from shared.adapters.apim_gateway import ApimGateway
    stack.ctl.config(arm_limits={"reads": [10.0, 4], "writes": [2.0, 2]})
    gateway = ApimGateway(stack.credential, stack.apim.subscription_id, RG, SVC,
                          management_endpoint=stack.apim.url, ca_bundle=str(stack.tls.ca_cert),
                          arm_buckets={"reads": (4.0, 10.0), "writes": (2.0, 2.0)})  # (size, rate)
    before = stack.ctl.config()["arm_throttled"]
    started = time.monotonic()
    try:
        results = [gateway.has_authorization_server(f"none-{i}") for i in range(12)]
    finally:
        gateway.close()
    assert results == [False] * 12
    assert stack.ctl.config()["arm_throttled"] == before  # paced below the bucket: nothing refused
    elapsed = time.monotonic() - started
    assert elapsed >= 0.5  # 12 reads from a bucket of 4 at 10/s cannot all go at once


def test_the_command_line_takes_rate_and_burst_or_off():
    import argparse

    from emulators.__main__ import _arm_limits, rate_burst
    assert rate_burst("10/200") == (10.0, 200)
    assert rate_burst("off") is None
    for bad in ("10", "x/1", "0/5", "5/0"):
        with pytest.raises(argparse.ArgumentTypeError):
            rate_burst(bad)
    args = SimpleNamespace(arm_reads=(25.0, 250), arm_writes=None, arm_deletes=(10.0, 200))
    assert _arm_limits(args) == {"reads": (25.0, 250), "deletes": (10.0, 200)}
    assert _arm_limits(SimpleNamespace(arm_reads=None, arm_writes=None, arm_deletes=None)) is None
