"""The cloud queue, topic and subscription have the local stack's properties (emulators/servicebus/config.json):
MaxDeliveryCount, LockDuration, duplicate detection and its window, TTL, dead-lettering on expiry, sessions."""
from __future__ import annotations

import json

import pytest

import iac_checks


@pytest.mark.parametrize("sessions", [False, True])
def test_servicebus_entities_match_the_local_stack(templates, sessions):
    assert not iac_checks.servicebus_findings(iac_checks.named(templates, "servicebus.bicep"), sessions)


def test_main_does_not_override_the_queue_properties(main_template, templates):
    """main.bicep passes only what is per deployment; the properties keep the defaults compared above."""
    params = main_template.modules["serviceBus"]["config"]["params"]
    properties = set(iac_checks.QUEUE_PROPERTIES.values()) | {"queueName", "resultEventsTopicName"}
    assert not properties & params.keys()
    assert params["sessionsEnabled"] == "customerEventsSessions"
    assert main_template.resolve("customerEventsSessions") is False


def test_the_default_queue_is_the_sample_settings_queue(templates):
    sb = iac_checks.named(templates, "servicebus.bicep")
    sample = json.loads(iac_checks.SAMPLE_SETTINGS.read_text(encoding="utf-8"))["Values"]
    assert sb.resolve("queueName", {"sessionsEnabled": False}) == sample["CUSTOMER_EVENTS_QUEUE"]


def test_the_namespace_is_standard_tier_or_above_without_keys(templates):
    sb = iac_checks.named(templates, "servicebus.bicep")
    (_, namespace), = sb.resources_of_type("Microsoft.ServiceBus/namespaces").items()
    assert namespace["config"]["sku"]["name"] in ("Standard", "Premium")
    assert namespace["config"]["properties"]["disableLocalAuth"] is True


@pytest.mark.parametrize("old, new, expected", [
    ("param maxDeliveryCount int = 5", "param maxDeliveryCount int = 10", "maxDeliveryCount is 10"),
    ("param lockDuration string = 'PT30S'", "param lockDuration string = 'PT1M'", "lockDuration is 'PT1M'"),
    ("param deadLetteringOnMessageExpiration bool = true", "param deadLetteringOnMessageExpiration bool = false",
     "deadLetteringOnMessageExpiration is False"),
    ("    requiresDuplicateDetection: requiresDuplicateDetection\n", "",
     "requiresDuplicateDetection is None"),
], ids=["max-delivery-count", "lock-duration", "dead-lettering-on-expiry", "duplicate-detection-dropped"])
def test_a_drift_from_the_local_stack_is_reported(mutated, old, new, expected):
    templates, _ = mutated("modules/servicebus.bicep", old, new)
    findings = iac_checks.servicebus_findings(iac_checks.named(templates, "servicebus.bicep"), False)
    assert any(expected in f for f in findings), findings
