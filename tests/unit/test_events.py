"""The event contract: every rule rejects with the JSON path of the field it concerns."""
from __future__ import annotations

import copy
import datetime as dt
import json

import pytest

from shared.domain.errors import InvalidEvent, PermanentError
from shared.domain.events import (CREATED, MAX_EVENT_BYTES, REMOVED, CredentialsRotationRequested, CustomerCreated,
                                  CustomerRemoved, parse_event, peek_identity)

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.timezone.utc)
CREATED_DOC = {
    "specversion": "1.0", "id": "evt-1", "source": "/crm/customers", "type": "customer.created",
    "time": "2026-11-26T11:59:00Z", "datacontenttype": "application/json",
    "data": {"customerId": "acme", "displayName": "Acme Corp", "profile": "oem", "plan": "gold",
             "contactEmail": "ops@acme.example", "redirectUris": ["https://acme.example/cb"]},
}
REMOVED_DOC = {
    "specversion": "1.0", "id": "evt-2", "source": "/crm/customers", "type": "customer.removed",
    "time": "2026-11-26T11:59:30Z", "data": {"customerId": "acme", "reason": "contract ended"},
}


def parse(doc, **kw):
    body = doc if isinstance(doc, (str, bytes)) else json.dumps(doc)
    return parse_event(body, now=NOW, **kw)


def with_(doc, path: str, value, *, delete: bool = False):
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    target = doc
    for p in parents:
        target = target[p]
    if delete:
        del target[last]
    else:
        target[last] = value
    return doc


def rejected(doc, **kw) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as err:
        parse(doc, **kw)
    assert isinstance(err.value, PermanentError)
    assert str(err.value).startswith(f"{err.value.field}: ")
    return err.value


def test_valid_created_event():
    ev = parse(CREATED_DOC)
    assert isinstance(ev, CustomerCreated) and ev.type == CREATED
    assert (ev.event_id, ev.source, ev.customer_id, ev.display_name, ev.profile, ev.plan, ev.contact_email) == (
        "evt-1", "/crm/customers", "acme", "Acme Corp", "oem", "gold", "ops@acme.example")
    assert ev.redirect_uris == ("https://acme.example/cb",)
    assert ev.time == dt.datetime(2026, 11, 26, 11, 59, tzinfo=dt.timezone.utc)
    assert ev.time_iso == "2026-11-26T11:59:00.000000Z"


def test_valid_removed_event_and_optional_fields():
    ev = parse(REMOVED_DOC)
    assert isinstance(ev, CustomerRemoved) and ev.type == REMOVED and ev.reason == "contract ended"
    minimal = with_(CREATED_DOC, "data", {"customerId": "a", "displayName": "A", "profile": "oem"})
    ev = parse(with_(minimal, "datacontenttype", None, delete=True))
    assert ev.plan is None and ev.contact_email is None and ev.redirect_uris == ()


def test_time_is_normalised_to_utc_and_accepts_offsets_and_nanoseconds():
    assert parse(with_(CREATED_DOC, "time", "2026-11-26T12:59:00+01:00")).time == parse(CREATED_DOC).time
    ev = parse(with_(CREATED_DOC, "time", "2026-11-26T11:59:00.123456789Z"))
    assert ev.time.microsecond == 123456
    assert parse(with_(CREATED_DOC, "time", "2026-11-26t11:59:00z")).time == parse(CREATED_DOC).time


def test_type_prefix():
    doc = with_(CREATED_DOC, "type", "com.contoso.customer.created")
    assert parse(doc, type_prefix="com.contoso.").type == CREATED
    err = rejected(CREATED_DOC, type_prefix="com.contoso.")
    assert err.field == "type" and "com.contoso.customer.created" in err.rule


def test_extension_attributes_are_allowed():
    assert parse(with_(CREATED_DOC, "traceparent", "00-abc")).event_id == "evt-1"


@pytest.mark.parametrize("body,rule", [
    (b"\xff\xfe", "not valid UTF-8"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ("x" * (MAX_EVENT_BYTES + 1), "the limit is"),
])
def test_body_level_rules_name_the_root(body, rule):
    err = rejected(body)
    assert err.field == "$" and rule in err.rule


CASES = [
    # (path to change, new value or DELETE, field named, words in the rule)
    ("Foo", 1, "Foo", "not a CloudEvents attribute"),
    ("data_base64", "eA==", "data_base64", "not accepted"),
    ("specversion", "0.3", "specversion", "1.0"),
    ("specversion", "DELETE", "specversion", "1.0"),
    ("id", "DELETE", "id", "is required"),
    ("id", 42, "id", "must be a string"),
    ("id", "", "id", "1 to 128"),
    ("id", "x" * 129, "id", "1 to 128"),
    ("id", "evt\n1", "id", "control characters"),
    ("source", "DELETE", "source", "is required"),
    ("datacontenttype", "text/plain", "datacontenttype", "application/json"),
    ("subject", "\x1b[2Jred", "subject", "control characters"),
    ("subject", 7, "subject", "must be a string"),
    ("dataschema", "https://a.example/\u202e", "dataschema", "bidirectional"),
    ("type", "DELETE", "type", "is required"),
    ("type", "customer.renamed", "type", "customer.created, customer.updated, customer.removed or customer.credentials-"),
    ("time", "DELETE", "time", "is required"),
    ("time", "2026-11-26 11:59:00", "time", "RFC 3339"),
    ("time", "2026-11-26T11:59:00", "time", "RFC 3339"),
    ("time", "2026-02-30T11:59:00Z", "time", "not a valid date"),
    ("time", "2026-11-26T12:10:00Z", "time", "in the future"),
    ("data", "DELETE", "data", "is required"),
    ("data", "text", "data", "JSON object"),
    ("data.extra", 1, "data.extra", "is not part of customer.created"),
    ("data.customerId", "DELETE", "data.customerId", "is required"),
    ("data.customerId", "-acme", "data.customerId", "starting with a letter or digit"),
    ("data.customerId", "ac me", "data.customerId", "A-Z a-z 0-9"),
    ("data.customerId", "a" * 65, "data.customerId", "1 to 64"),
    ("data.displayName", "DELETE", "data.displayName", "is required"),
    ("data.displayName", " Acme", "data.displayName", "white space"),
    ("data.displayName", "Acme <script>", "data.displayName", "< or >"),
    ("data.displayName", "x" * 101, "data.displayName", "1 to 100"),
    ("data.displayName", "Acme\u202eCorp", "data.displayName", "bidirectional"),
    ("data.displayName", "Acme\u200fCorp", "data.displayName", "bidirectional"),
    ("data.displayName", "Acme\x07", "data.displayName", "control characters"),
    ("data.profile", "DELETE", "data.profile", "is required"),
    ("data.profile", "OEM", "data.profile", "lower-case"),
    ("data.plan", 3, "data.plan", "must be a string"),
    ("data.plan", "p" * 65, "data.plan", "1 to 64"),
    ("data.contactEmail", "not-an-email", "data.contactEmail", "e-mail"),
    ("data.redirectUris", [], "data.redirectUris", "1 to 20"),
    ("data.redirectUris", "https://a.example/", "data.redirectUris", "list"),
    ("data.redirectUris", ["https://a.example/"] * 21, "data.redirectUris", "1 to 20"),
    ("data.redirectUris", ["http://a.example/cb"], "data.redirectUris[0]", "https URL"),
    ("data.redirectUris", ["https://a.example/cb", "https://a.example/cb#x"], "data.redirectUris[1]", "fragment"),
    ("data.redirectUris", [7], "data.redirectUris[0]", "string"),
    ("data.redirectUris", ["https://a.example/\u2066x"], "data.redirectUris[0]", "bidirectional"),
    ("data.existingClientId", "", "data.existingClientId", "1 to 64"),
    ("data.existingClientId", "abc/../x", "data.existingClientId", "Auth0 client id"),
    ("data.existingClientId", 7, "data.existingClientId", "must be a string"),
]


@pytest.mark.parametrize("path,value,field,words", CASES, ids=[f"{c[0]}={str(c[1])[:20]}" for c in CASES])
def test_each_rule_names_its_field(path, value, field, words):
    doc = with_(CREATED_DOC, path, None, delete=True) if value == "DELETE" else with_(CREATED_DOC, path, value)
    err = rejected(doc)
    assert err.field == field
    assert words in err.rule


@pytest.mark.parametrize("path,value,field,words", [
    ("data.reason", "r" * 201, "data.reason", "1 to 200"),
    ("data.displayName", "Acme", "data.displayName", "is not part of customer.removed"),
    ("data.customerId", "DELETE", "data.customerId", "is required"),
])
def test_removed_rules_name_their_field(path, value, field, words):
    doc = with_(REMOVED_DOC, path, None, delete=True) if value == "DELETE" else with_(REMOVED_DOC, path, value)
    err = rejected(doc)
    assert (err.field, words in err.rule) == (field, True)


def test_rotation_request_and_adoption_field():
    doc = {"specversion": "1.0", "id": "r1", "source": "/ops", "type": "customer.credentials-rotation-requested",
           "time": "2026-11-26T11:59:00Z", "data": {"customerId": "acme", "reason": "leaked in a ticket"}}
    ev = parse_event(json.dumps(doc), now=NOW)
    assert isinstance(ev, CredentialsRotationRequested) and ev.reason == "leaked in a ticket"
    doc["data"]["profile"] = "oem"
    with pytest.raises(InvalidEvent, match="is not part of customer.credentials-rotation-requested"):
        parse_event(json.dumps(doc), now=NOW)
    created = with_(CREATED_DOC, "data.existingClientId", "tpc_AbC123")
    assert parse_event(json.dumps(created), now=NOW).existing_client_id == "tpc_AbC123"


def test_unknown_profile_is_rejected_when_the_known_set_is_given():
    err = rejected(with_(CREATED_DOC, "data.profile", "gold"), known_profiles=frozenset({"oem", "partner-web"}))
    assert err.field == "data.profile" and "oem, partner-web" in err.rule
    assert parse(CREATED_DOC, known_profiles=frozenset({"oem"})).profile == "oem"


def test_clock_skew_allowance():
    assert parse(with_(CREATED_DOC, "time", "2026-11-26T12:04:59Z")).customer_id == "acme"


# ---- the contract is total: whatever the body, InvalidEvent or an event, nothing else ------------------------------
@pytest.mark.parametrize("body,rule", [
    (b"[" * 1000, "nest 1000 deep; the limit is 32"),
    (b"[" * 30000, "nest 30000 deep"),
    (b'{"a":' * 10000 + b"1" + b"}" * 10000, "nest 10000 deep"),
    (b'{"a": ' + b"9" * 5000 + b"}", "a number of 5000 characters"),
    (b'{"a": NaN}', "NaN, which JSON does not allow"),
    (b'{"a": -Infinity}', "-Infinity, which JSON does not allow"),
    (b'{"a": 1e999}', "too large for a 64-bit float"),
    ("\ud800", "not valid UTF-8"),
    (b"\xed\xa0\x80", "not valid UTF-8"),  # a surrogate encoded as UTF-8 is not UTF-8
    (b"", "not valid JSON"),
])
def test_hostile_bodies_are_refused_not_raised(body, rule):
    err = rejected(body)
    assert rule in err.rule


def test_brackets_inside_strings_do_not_count_as_nesting():
    doc = with_(CREATED_DOC, "comment", "[" * 500 + '{"\\"' * 50)  # an extension attribute: any string
    assert parse(doc).customer_id == "acme"


def test_a_huge_number_is_refused_at_its_field():
    body = json.dumps(CREATED_DOC).replace('"gold"', "1" * 5000)
    err = rejected(body)
    assert err.field == "data.plan" and "the limit is 1000" in err.rule
    # a long number within the limit is read, and refused by the field's own rule
    assert "must be a string, not int" in rejected(with_(CREATED_DOC, "data.plan", 10 ** 400)).rule


@pytest.mark.parametrize("time", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_times_beyond_the_calendar_are_invalid_dates(time):
    err = rejected(with_(CREATED_DOC, "time", time))
    assert err.field == "time" and "not a valid date" in err.rule


@pytest.mark.parametrize("time", ["0001-01-01T00:00:00Z", "1601-01-01T00:00:00Z", "1969-12-31T23:59:59Z"])
def test_times_before_1970_are_a_broken_clock(time):
    err = rejected(with_(CREATED_DOC, "time", time))
    assert err.field == "time" and "before 1970" in err.rule


@pytest.mark.parametrize("path", ["id", "source", "type", "time", "datacontenttype", "data.customerId",
                                  "data.displayName", "data.profile", "data.plan", "data.contactEmail",
                                  "data.redirectUris", "traceparent"])
def test_a_lone_surrogate_in_any_string_is_invalid_unicode(path):
    value = ["https://a.example/\ud800"] if path == "data.redirectUris" else "abc\ud800"
    err = rejected(with_(CREATED_DOC, path, value))
    assert "not valid Unicode" in err.rule
    assert err.field == (path + "[0]" if path == "data.redirectUris" else path)
    str(err).encode("utf-8")


def test_a_lone_surrogate_in_removed_reason_and_in_a_key():
    assert rejected(with_(REMOVED_DOC, "data.reason", "\udfff")).field == "data.reason"
    err = rejected(with_(CREATED_DOC, "data.\ud800", "x"))
    assert err.field == "data['\\ud800']" and "not valid Unicode" in err.rule
    str(err).encode("utf-8")


def test_control_characters_in_a_key_are_shown_escaped_and_bounded():
    key = "\x1b]0;owned\x07\x1b[31m" + "x" * 500
    err = rejected(with_(CREATED_DOC, "data." + key, 1))
    assert err.field.startswith("data['\\x1b]0;owned\\x07\\x1b[31m") and err.field.endswith("\u2026]")
    assert len(err.field) < 80 and "is not part of customer.created" in err.rule
    assert str(err).isprintable()
    top = rejected(with_(CREATED_DOC, "ext\n", "x"))  # a trailing newline must not pass the extension name rule
    assert top.field == "$['ext\\n']" and str(top).isprintable()


def test_a_key_with_a_quote_is_still_one_readable_path():
    err = rejected(with_(CREATED_DOC, "data.it's", 1))
    assert err.field == "data[\"it's\"]"


def test_non_bytes_bodies_are_refused():
    with pytest.raises(InvalidEvent):
        parse_event(12345, now=NOW)  # type: ignore[arg-type]
    assert parse_event(bytearray(json.dumps(CREATED_DOC).encode()), now=NOW).customer_id == "acme"


# ---- peek_identity: the rejected body's customer, event id and type, when safe as ledger keys ---------------------
@pytest.mark.parametrize("body,expected", [
    (json.dumps(CREATED_DOC), ("acme", "evt-1", "customer.created")),
    (json.dumps(with_(CREATED_DOC, "data.profile", 7)), ("acme", "evt-1", "customer.created")),
    (json.dumps(with_(CREATED_DOC, "data.displayName", "\ud800")), ("acme", "evt-1", "customer.created")),
    (json.dumps(with_(CREATED_DOC, "id", "evt\ud800")), ("acme", None, "customer.created")),
    (json.dumps(with_(CREATED_DOC, "id", "evt\x1b[2J")), ("acme", None, "customer.created")),
    (json.dumps(with_(CREATED_DOC, "id", "x" * 129)), ("acme", None, "customer.created")),
    (json.dumps(with_(CREATED_DOC, "id", "evt\u202e1")), ("acme", None, "customer.created")),
    (json.dumps(with_(CREATED_DOC, "data.customerId", "acme\n")), (None, "evt-1", "customer.created")),
    (json.dumps(with_(CREATED_DOC, "data.customerId", "../etc")), (None, "evt-1", "customer.created")),
    (json.dumps(with_(CREATED_DOC, "type", 5)), ("acme", "evt-1", None)),
    (json.dumps(with_(CREATED_DOC, "data", ["acme"])), (None, "evt-1", "customer.created")),
    (b"[" * 30000, (None, None, None)),
    (b'{"id": ' + b"9" * 5000 + b"}", (None, None, None)),
    (b'{"id": "e", "n": 1e999, "data": {"customerId": "acme"}}', ("acme", "e", None)),
    (b"\xff\xfe", (None, None, None)),
    (b"", (None, None, None)),
    ("\ud800", (None, None, None)),
    (None, (None, None, None)),
])
def test_peek_identity(body, expected):
    assert peek_identity(body) == expected


# ---- issue 23, case 8: redirect URIs are read as URLs -----------------------------------------------------------------
@pytest.mark.parametrize("uri,words", [
    ("https://a.example:99999/cb", "port"), ("https://a.example:0/cb", "port"), ("https://a.example:/cb", "port"),
    ("https://-/cb", "DNS name"), ("https://./cb", "DNS name"), ("https://a..example/cb", "DNS name"),
    ("https://a-.example/cb", "DNS name"), ('https://a.example/"><script>alert(1)</script>', "RFC 3986"),
    ("https://a.example/c\u200bb", "RFC 3986"), ("https://a.example/c b", "RFC 3986"),
    ("https://a.example/%zz", "hex digits"), ("https://999.1.1.1/cb", "IPv4"), ("https://1.2.3/cb", "IPv4"),
    ("https://[::1/cb", "IPv6"), ("https://[zz::1]/cb", "IPv6"),
    # what was refused before stays refused
    ("javascript:alert(1)", "https URL"), ("data:text/html,x", "https URL"), ("http://a.example/cb", "https URL"),
    ("https://*.a.example/cb", "DNS name"), ("https://user@a.example/cb", "user information"),
    ("https://%61.example/cb", "DNS name"), ("https://a.example/cb#frag", "fragment"),
])
def test_case08_redirect_uris_that_are_no_url_a_browser_follows_are_refused(uri, words):
    err = rejected(with_(CREATED_DOC, "data.redirectUris", ["https://ok.example/cb", uri]))
    assert err.field == "data.redirectUris[1]" and words in err.rule


@pytest.mark.parametrize("uri", ["https://acme.example/cb", "https://acme.example:8443/oauth/cb?x=1&y=%2F",
                                 "https://xn--bcher-kva.example/cb", "https://203.0.113.9/cb",
                                 "https://[2001:db8::1]:443/cb", "https://acme.example./cb", "https://localhost/cb",
                                 "https://portal.acme.example/a/b/c;v=1/(x)!$'*,~"])
def test_case08_urls_a_browser_follows_are_accepted_by_the_contract(uri):
    assert parse(with_(CREATED_DOC, "data.redirectUris", [uri])).redirect_uris == (uri,)


@pytest.mark.parametrize("uri,local", [
    ("https://localhost/cb", True), ("https://app.localhost/cb", True), ("https://printer.local/cb", True),
    ("https://intranet/cb", True), ("https://127.0.0.1/cb", True), ("https://10.1.2.3/cb", True),
    ("https://192.168.0.1:8443/cb", True), ("https://169.254.1.1/cb", True), ("https://[::1]/cb", True),
    ("https://[fd00::1]/cb", True), ("https://0.0.0.0/cb", True), ("https://acme.example/cb", False),
    ("https://203.0.113.9/cb", True), ("https://8.8.8.8/cb", False), ("https://[2606:4700::1111]/cb", False),
])
def test_case08_local_hosts_are_recognised(uri, local):
    from shared.domain.redirect_uris import is_local
    assert is_local(uri) is local


# ---- issue 23, case 9: display names a spreadsheet would run --------------------------------------------------------
@pytest.mark.parametrize("name", ['=HYPERLINK("https://evil.example","x")', "+cmd|' /C calc'!A0", "@SUM(1+1)",
                                  "-2+3", "\uff1dSUM(1)", "\tAcme", "\rAcme"])
def test_case09_display_names_a_spreadsheet_would_run_are_refused(name):
    for doc in (CREATED_DOC, {**CREATED_DOC, "type": "customer.updated",
                              "data": {"customerId": "acme", "displayName": "x"}}):
        err = rejected(with_(doc, "data.displayName", name))
        assert err.field == "data.displayName"


@pytest.mark.parametrize("name", ["Acme = Corp", "Acme+", "a@b GmbH", "Acme-Corp", "1+1 Consulting"])
def test_case09_such_characters_elsewhere_in_a_name_are_fine(name):
    assert parse(with_(CREATED_DOC, "data.displayName", name)).display_name == name


def test_a_key_twice_in_one_object_is_refused_wherever_it_is():
    # Python keeps the last value of a repeated key, other readers the first: a check upstream could see another
    # event than the one the app would apply.
    for body in (b'{"id": "decoy", "id": "real"}', b'{"data": {"customerId": "a", "customerId": "b"}}'):
        with pytest.raises(InvalidEvent, match=r"^\$: the key .+ appears twice in one object"):
            parse_event(body)
