"""The bad-input corpus: message bodies the app must refuse, each with the field its reason must name.

``REJECTED`` cases end in the dead-letter queue, audited *rejected* with a reason that starts with ``field``, and
cause no call to Auth0, Key Vault or API Management. ``VALID_LOOKALIKES`` are ids that look alike once lower-cased
or stripped of punctuation: they are valid and distinct customers, and must not collide in any derived name.

Bodies are bytes (sent as they are), or a dict (sent as JSON). ``time`` placeholders are filled in at send time.
"""
from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from dataclasses import dataclass


def _now(offset_seconds: float = 0) -> str:
    t = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=offset_seconds)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def created(customer_id: str = "corpus-ok", **data_changes) -> dict:
    data = {"customerId": customer_id, "displayName": "Corpus Customer", "profile": "oem"}
    data.update(data_changes)
    return {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/tests/corpus", "type": "customer.created",
            "time": _now(), "datacontenttype": "application/json", "data": data}


def removed(customer_id: str = "corpus-ok", **data_changes) -> dict:
    data = {"customerId": customer_id, **data_changes}
    return {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/tests/corpus", "type": "customer.removed",
            "time": _now(), "datacontenttype": "application/json", "data": data}


def _with(event: dict, **changes) -> dict:
    event = copy.deepcopy(event)
    for key, value in changes.items():
        if value is _DROP:
            event.pop(key, None)
        else:
            event[key] = value
    return event


def _without_data(event: dict, key: str) -> dict:
    event = copy.deepcopy(event)
    event["data"].pop(key)
    return event


_DROP = object()


@dataclass(frozen=True)
class BadInput:
    name: str
    body: bytes | dict
    field: str  # the JSON path the rejection reason must start with

    def encode(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode("utf-8")


def rejected_cases() -> list[BadInput]:
    c = created
    oversized = c(displayName="Big")
    oversized["padding"] = "x" * (65 * 1024)  # also an unknown attribute: the size rule must win (checked first)
    return [
        # -- not JSON, not an object -------------------------------------------------------------------------
        BadInput("malformed JSON", b'{"specversion": "1.0", "id": ', "$"),
        BadInput("trailing garbage after JSON", json.dumps(c()).encode() + b" }", "$"),
        BadInput("non-UTF-8 bytes", b'{"specversion": "1.0", "id": "\xff\xfe", "data": {}}', "$"),
        BadInput("Latin-1 display name", json.dumps(c(displayName="Caf\u00e9")).encode("utf-8").replace(
            b"Caf\\u00e9", b"Caf\xe9"), "$"),
        BadInput("empty body", b"", "$"),
        BadInput("JSON array body", json.dumps([c()]).encode(), "$"),
        BadInput("JSON string body", b'"customer.created"', "$"),
        BadInput("JSON null body", b"null", "$"),
        BadInput("oversized body (> 64 KiB)", oversized, "$"),
        # -- CloudEvents attributes --------------------------------------------------------------------------
        BadInput("wrong specversion", _with(c(), specversion="0.3"), "specversion"),
        BadInput("specversion as a number", _with(c(), specversion=1.0), "specversion"),
        BadInput("missing id", _with(c(), id=_DROP), "id"),
        BadInput("id is a number", _with(c(), id=12345), "id"),
        BadInput("id with a control character", _with(c(), id="evt-\x07-1"), "id"),
        BadInput("missing type", _with(c(), type=_DROP), "type"),
        BadInput("unknown event type", _with(c(), type="customer.renamed"), "type"),
        BadInput("missing time", _with(c(), time=_DROP), "time"),
        BadInput("time without a zone", _with(c(), time="2026-01-15T10:00:00"), "time"),
        BadInput("time 10 minutes in the future", _with(c(), time=_now(600)), "time"),
        BadInput("time not a date", _with(c(), time="yesterday"), "time"),
        BadInput("data_base64 instead of data", _with(c(), data=_DROP, data_base64="eyJjdXN0b21lcklkIjoieCJ9"),
                 "data_base64"),
        BadInput("unknown top-level attribute", _with(c(), customerId="corpus-ok"), "customerId"),
        BadInput("data is a string", _with(c(), data='{"customerId": "corpus-ok"}'), "data"),
        BadInput("data missing", _with(c(), data=_DROP), "data"),
        BadInput("wrong datacontenttype", _with(c(), datacontenttype="text/xml"), "datacontenttype"),
        # -- data fields ---------------------------------------------------------------------------------------
        BadInput("missing customerId", _without_data(c(), "customerId"), "data.customerId"),
        BadInput("customerId is a number", c(customerId=42), "data.customerId"),
        BadInput("customerId with a path", c(customerId="../../etc/passwd"), "data.customerId"),
        BadInput("customerId with a script tag", c(customerId="<script>alert(1)</script>"), "data.customerId"),
        BadInput("customerId with U+202E", c(customerId="acme\u202egpj.exe"), "data.customerId"),
        BadInput("customerId with a newline", c(customerId="acme\nadmin"), "data.customerId"),
        BadInput("customerId too long", c(customerId="a" * 65), "data.customerId"),
        BadInput("missing displayName", _without_data(c("corpus-noname"), "displayName"), "data.displayName"),
        BadInput("displayName with a script tag", c("corpus-xss", displayName="<script>alert(1)</script>"),
                 "data.displayName"),
        BadInput("displayName with U+202E", c("corpus-bidi", displayName="Acme \u202eCorp"), "data.displayName"),
        BadInput("displayName with U+2066 isolate", c("corpus-bidi2", displayName="Acme \u2066Corp"),
                 "data.displayName"),
        BadInput("displayName with a control character", c("corpus-ctl", displayName="Acme\x1b[31m Corp"),
                 "data.displayName"),
        BadInput("displayName nested object", c("corpus-nested", displayName={"en": "Acme"}), "data.displayName"),
        BadInput("missing profile", _without_data(c("corpus-noprofile"), "profile"), "data.profile"),
        BadInput("unknown profile", c("corpus-unknown-profile", profile="platinum"), "data.profile"),
        BadInput("profile with a path", c("corpus-profile-path", profile="../oem"), "data.profile"),
        BadInput("extra data field", c("corpus-extra", isAdmin=True), "data.isAdmin"),
        BadInput("huge number as plan", c("corpus-huge", plan=10 ** 400), "data.plan"),
        BadInput("redirect URI over http", c("corpus-http", profile="partner-web",
                                             redirectUris=["http://evil.example/cb"]), "data.redirectUris[0]"),
        BadInput("redirect URIs nested list", c("corpus-nested-uris", profile="partner-web",
                                                redirectUris=[["https://a.example/cb"]]), "data.redirectUris[0]"),
        BadInput("removed with created's fields", removed("corpus-removed-extra", profile="oem"), "data.profile"),
    ]


#: Valid ids that differ only in case or punctuation: each is its own customer, with its own names everywhere.
VALID_LOOKALIKES = ["acme", "Acme", "ACME", "a.cme", "a-cme", "a_cme"]
