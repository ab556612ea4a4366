"""The result events' JSON Schema, its samples and the constructors that build the events say the same thing: every
field a constructor writes is in the schema for its type, every required one is written, and each sample is what
the constructor makes of it. (The full JSON Schema validation of the samples runs in tests/infra, with jsonschema.)"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from shared.domain import results

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schemas" / "result-event.schema.json").read_text(encoding="utf-8"))
T = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.timezone.utc)
SOURCE = dict(customer_id="acme", event_id="e-1", event_type="customer.created", event_time=T, now=T)

BUILT = {
    "provisioned": results.provisioned(**SOURCE, profile="oem", display_name="Acme", plan=None, client_id="c",
                                       grant_id="g", secret_uri="https://v/secrets/s", secret_version="1",
                                       authorization_server_id="a", subscription_id="s"),
    "updated": results.updated(**SOURCE, profile="oem", display_name="Acme", plan="p", client_id="c",
                               scopes=("read:data",), changed=("plan",), apim_product="oem", subscription_id="s"),
    "deprovisioned": results.deprovisioned(**SOURCE, client_id="c"),
    "provisioning-failed": results.provisioning_failed(**SOURCE, code="InvalidEvent", rule="data.x: is required",
                                                       dead_lettered=True, message_id="m"),
    "drift-detected": results.drift_detected(customer_id="acme", finding="missing", service="apim",
                                             resource="subscription customer-acme", detail="gone",
                                             detection_id="run-1", now=T),
    "credentials-rotated": results.credentials_rotated(**SOURCE, client_id="c", secret_uri="https://v/secrets/s",
                                                       secret_version="2", authorization_server_id="a"),
}


@pytest.mark.parametrize("kind", sorted(BUILT))
def test_each_type_writes_what_its_schema_lists(kind):
    definition = SCHEMA["$defs"][kind]
    event = BUILT[kind].to_cloudevent()
    assert event["type"] == f"customer.{kind}" and event["id"].startswith(f"{kind}-")
    assert set(event) <= set(SCHEMA["properties"]) and set(SCHEMA["required"]) <= set(event)
    assert set(event["data"]) <= set(definition["properties"]), set(event["data"]) - set(definition["properties"])
    assert set(definition["required"]) <= set(event["data"])


@pytest.mark.parametrize("kind", sorted(BUILT))
def test_each_sample_has_the_shape_of_a_built_event(kind):
    sample = json.loads((ROOT / "schemas" / "samples" / f"result-customer-{kind}.json").read_text(encoding="utf-8"))
    built = BUILT[kind].to_cloudevent()
    assert set(sample) == set(built) and set(sample["data"]) == set(built["data"])


def test_ids_follow_the_outcome_not_the_delivery():
    again = results.provisioned(**{**SOURCE, "now": T + dt.timedelta(hours=1)}, profile="oem", display_name="Acme",
                                plan=None, client_id="c", grant_id="g", secret_uri=None, secret_version=None,
                                authorization_server_id=None, subscription_id=None)
    assert again.message_id == BUILT["provisioned"].message_id
    assert len({e.message_id for e in BUILT.values()}) == len(BUILT)
    failed_other_code = results.provisioning_failed(**SOURCE, code="UnknownProfile", rule="r", dead_lettered=True)
    assert failed_other_code.message_id != BUILT["provisioning-failed"].message_id
