"""The bad-input corpus: message bodies the app must refuse, each with the field its reason must name.

``REJECTED`` cases end in the dead-letter queue on their first delivery, with the dead-letter reason ``code`` and the
rule as its description, audited *rejected* with a reason that starts with ``field``, and cause no call to Auth0,
Key Vault or API Management. The hostile ones (issue 12) are bodies that used to crash the parser or slip past it:
deep nesting, huge numbers, times at the edge of the calendar, lone surrogates in every string field, escape
sequences in names and values. ``VALID_LOOKALIKES`` are ids that look alike once lower-cased
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
    code: str = "InvalidEvent"  # the dead-letter reason the app gives it

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
        BadInput("a key twice: another reader would see the first value",
                 json.dumps(c()).encode().replace(b'"id": ', b'"id": "decoy", "id": ', 1), "$"),
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
        # The Functions host copies a JSON body's top-level properties over the message's metadata of the same name
        # (any case): these would change what the app is told about its message.
        BadInput("extension named like DeliveryCount", _with(c(), deliverycount="1"), "deliverycount"),
        BadInput("extension named like MessageId", _with(c(), messageid="forged"), "messageid"),
        BadInput("extension named like SessionId", _with(c(), sessionid="corpus-other"), "sessionid"),
        BadInput("extension named like ContentType", _with(c(), contenttype="text/plain"), "contenttype"),
        # ... and with values of the wrong type, which would fail the binding before the function ran, were the
        # body bound as a string (the app binds bytes).
        BadInput("DeliveryCount as text", _with(c(), DeliveryCount="abc"), "DeliveryCount"),
        BadInput("UserProperties as a string", _with(c(), UserProperties="x"), "UserProperties"),
        BadInput("EnqueuedTimeUtc not a date", _with(c(), EnqueuedTimeUtc="yesterday"), "EnqueuedTimeUtc"),
        BadInput("ApplicationProperties as a number", _with(c(), ApplicationProperties=5), "ApplicationProperties"),
        BadInput("a forged LockToken", _with(c(), LockToken="6f0d8ac0-4d5e-4c8d-9a2c-5b0f2e1d7a91"), "LockToken"),
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
        BadInput("unknown profile", c("corpus-unknown-profile", profile="platinum"), "data.profile",
                 code="UnknownProfile"),
        BadInput("profile with a path", c("corpus-profile-path", profile="../oem"), "data.profile"),
        BadInput("extra data field", c("corpus-extra", isAdmin=True), "data.isAdmin"),
        BadInput("huge number as plan", c("corpus-huge", plan=10 ** 400), "data.plan"),
        BadInput("redirect URI over http", c("corpus-http", profile="partner-web",
                                             redirectUris=["http://evil.example/cb"]), "data.redirectUris[0]"),
        BadInput("redirect URIs nested list", c("corpus-nested-uris", profile="partner-web",
                                                redirectUris=[["https://a.example/cb"]]), "data.redirectUris[0]"),
        BadInput("removed with created's fields", removed("corpus-removed-extra", profile="oem"), "data.profile"),
        *hostile_cases(),
        *url_and_formula_cases(),
    ]


def _raw(event: dict, old: bytes, new: bytes) -> bytes:
    """The event as JSON with ``old`` replaced by ``new``: for what json.dumps will not write."""
    encoded = json.dumps(event).encode("utf-8")
    assert old in encoded, old
    return encoded.replace(old, new, 1)


#: every string attribute of an event, and every string field of a created event's data
STRING_ATTRIBUTES = ("specversion", "id", "source", "type", "time", "datacontenttype", "subject")
STRING_DATA_FIELDS = ("customerId", "displayName", "profile")


def hostile_cases() -> list[BadInput]:
    c = created
    cases = [
        # Nesting within the 64 KiB size limit: 1,000 and 30,000 deep (60,000 bytes), and deep inside an event.
        BadInput("arrays nested 1,000 deep", b"[" * 1000 + b"]" * 1000, "$"),
        BadInput("arrays nested 30,000 deep", b"[" * 30000 + b"]" * 30000, "$"),
        BadInput("a data field nested 1,000 deep",
                 _raw(c("corpus-deep"), b'"profile": "oem"', b'"profile": "oem", "plan": ' + b"[" * 1000 + b"]" * 1000),
                 "$"),
        BadInput("a 5,000-digit number", _raw(c("corpus-digits", plan=0), b'"plan": 0', b'"plan": ' + b"9" * 5000),
                 "data.plan"),
        BadInput("a 5,000-digit specversion", _raw(c("corpus-digits-2"), b'"specversion": "1.0"',
                                                    b'"specversion": ' + b"9" * 5000), "specversion"),
        # The edges of the calendar: year 1 and year 9999 shifted past them by the zone, a day and a second that
        # do not exist, and times that parse but that no sender's clock says.
        BadInput("year 1 at +01:00", _with(c("corpus-year-1"), time="0001-01-01T00:00:00+01:00"), "time"),
        BadInput("year 9999 at -01:00", _with(c("corpus-year-9999"), time="9999-12-31T23:59:59-01:00"), "time"),
        BadInput("year 1 UTC", _with(c("corpus-year-1z"), time="0001-01-01T00:00:00Z"), "time"),
        BadInput("the last instant of 9999", _with(c("corpus-year-9999z"), time="9999-12-31T23:59:59.999999Z"), "time"),
        BadInput("30 February", _with(c("corpus-feb-30"), time="2026-02-30T00:00:00Z"), "time"),
        BadInput("a leap second", _with(c("corpus-leap"), time="2026-12-31T23:59:60Z"), "time"),
        # Escape sequences in names and values (clear screen, window title).
        BadInput("escape codes in a data field's name",
                 _with(c("corpus-esc-key"), data={**c("corpus-esc-key")["data"], "\x1b[2J\x1b]0;owned\x07": "v"}),
                 "data['\\x1b[2J\\x1b]0;owned\\x07']"),
        BadInput("escape codes in id", _with(c("corpus-esc-id"), id="\x1b]0;owned\x07"), "id"),
        BadInput("escape codes in source", _with(c("corpus-esc-src"), source="/crm\x1b[2J"), "source"),
        BadInput("escape codes in subject", _with(c("corpus-esc-subject"), subject="\x1b[31mred"), "subject"),
        BadInput("a lone surrogate in a data field's name",
                 _with(c("corpus-sur-key"), data={**c("corpus-sur-key")["data"], "x\ud800": "v"}),
                 "data['x\\ud800']"),
        BadInput("a lone surrogate as raw bytes (not UTF-8)",
                 _raw(c("corpus-sur-bytes"), b'"Corpus Customer"', b'"Corpus \xed\xa0\x80Customer"'), "$"),
    ]
    # A lone surrogate (the JSON escape \ud800: valid JSON, not valid Unicode) in each string field.
    for name in STRING_ATTRIBUTES:
        cases.append(BadInput(f"a lone surrogate in {name}", _with(c(f"corpus-sur-{name}"), **{name: "x\ud800"}),
                              name))
    for name in STRING_DATA_FIELDS:
        customer = f"corpus-sur-{name.lower()}"
        cases.append(BadInput(f"a lone surrogate in data.{name}", c(customer, **{name: "x\ud800"}), f"data.{name}"))
    cases.append(BadInput("a lone surrogate in a removal's customerId", removed("x\ud800"), "data.customerId"))
    return cases


#: Issue 23, cases 8 and 9: redirect URIs that passed the pattern and became Auth0 callbacks, and display names a
#: spreadsheet would run. Each is refused before anything is created.
BAD_REDIRECT_URIS = {
    "port 99999": "https://a.example:99999/cb", "port 0": "https://a.example:0/cb", "host -": "https://-/cb",
    "host .": "https://./cb", "markup in the path": 'https://a.example/"><script>alert(1)</script>',
    "a zero-width space": "https://a.example/c\u200bb", "localhost for a third party": "https://localhost/cb",
    "a loopback address for a third party": "https://127.0.0.1/cb",
    "a private address for a third party": "https://10.0.0.7/cb",
}
FORMULA_NAMES = {"=HYPERLINK": '=HYPERLINK("https://evil.example","click")', "+cmd": "+cmd|' /C calc'!A0",
                 "@SUM": "@SUM(1+1)*cmd|' /C calc'!A0", "-2+3": "-2+3+cmd|' /C calc'!A0"}


def url_and_formula_cases() -> list[BadInput]:
    cases = [BadInput(f"redirect URI with {name}", created(f"corpus-uri-{i}", profile="partner-web",
                                                           redirectUris=["https://ok.example/cb", uri]),
                      "data.redirectUris[1]") for i, (name, uri) in enumerate(BAD_REDIRECT_URIS.items())]
    cases += [BadInput(f"displayName starting {name}", created(f"corpus-formula-{i}", displayName=value),
                       "data.displayName") for i, (name, value) in enumerate(FORMULA_NAMES.items())]
    return cases


#: Valid ids that differ only in case or punctuation: each is its own customer, with its own names everywhere.
VALID_LOOKALIKES = ["acme", "Acme", "ACME", "a.cme", "a-cme", "a_cme"]
