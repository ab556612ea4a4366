"""The event contract: CloudEvents 1.0 in structured JSON mode, three types, strict data.

The JSON Schema in ``schemas/customer-event.schema.json`` says the same for senders; this module is what the app
enforces. Every rejection names the field (as a JSON path) and the rule it broke, because the CRM team reads these
in the dead-letter queue and must be able to fix the sender without reading our code.
Source: https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md and formats/json-format.md
"""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field

from .errors import InvalidEvent, MetadataCollision
from .redirect_uris import syntax_problem as redirect_uri_problem
from .json_body import (MAX_EVENT_BYTES, MAX_NESTING, MAX_NUMBER_CHARS, MAX_PATH_CHARS, fail as _fail,
                        has_surrogate as _has_surrogate, key_path as _key_path, load_body as _load, nesting_depth)
from .trace_context import TraceContext, read_trace_context

__all__ = ["CLIENT_ID", "CREATED", "CUSTOMER_ID", "EVENT_TYPES", "FORMULA_START", "MAX_EVENT_BYTES", "MAX_NESTING", "MAX_NUMBER_CHARS",
           "MAX_PATH_CHARS", "REMOVED", "ROTATION_REQUESTED", "UPDATED", "CredentialsRotationRequested",
           "CustomerCreated", "CustomerEvent", "CustomerRemoved", "CustomerUpdated", "nesting_depth", "parse_event",
           "peek_identity", "peek_trace_context"]

#: events older than this are a broken clock, and every store (Table Storage's DateTime starts in 1601) can hold it
EARLIEST_TIME = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
#: how far in the future an event time may lie (clock skew between the CRM and us), in seconds
MAX_CLOCK_SKEW = 300

CREATED = "customer.created"
UPDATED = "customer.updated"
REMOVED = "customer.removed"
ROTATION_REQUESTED = "customer.credentials-rotation-requested"
#: every event type the app applies, in the order rejections list them
EVENT_TYPES = (CREATED, UPDATED, REMOVED, ROTATION_REQUESTED)

CUSTOMER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PROFILE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
#: an Auth0 client id as the Management API issues them (32 letters and digits, ``tpc_`` before a third-party one);
#: looser than that on purpose (older tenants), but never anything that could leave a URL path segment
CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: what a display name must not start with: what spreadsheets (Excel, LibreOffice, Google Sheets) take as the
#: start of a formula, and their full-width forms; tab and carriage return, also on OWASP's list, are control
#: characters, refused anywhere in a name
FORMULA_START = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20")
EMAIL = re.compile(r"^[^@\s<>\"]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
# RFC 3339 date-time: the zone is mandatory (Z or +hh:mm); fractional seconds optional.
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


#: The Functions host adds the top-level properties of a JSON body to the trigger's metadata, in place of the
#: message's own of the same name in any case (the Service Bus extension's keys, below): an extension attribute
#: named like one of them would change what the function is told about its message (lock token, delivery count,
#: message id, application properties), so none may be named so. ``subject``, a CloudEvents attribute, replaces
#: only the message's Subject, which the app does not read.
HOST_METADATA_NAMES = frozenset(name.lower() for name in (
    "MessageReceiver", "MessageSession", "MessageActions", "SessionActions", "ReceiveActions", "Client",
    "DeliveryCount", "DeadLetterSource", "LockToken", "ExpiresAtUtc", "ExpiresAt", "EnqueuedTimeUtc", "EnqueuedTime",
    "MessageId", "ContentType", "ReplyTo", "SequenceNumber", "To", "Label", "CorrelationId", "ApplicationProperties",
    "UserProperties", "SessionId", "ReplyToSessionId", "PartitionKey", "TransactionPartitionKey"))
CONTEXT_ATTRIBUTES = {"specversion", "id", "source", "type", "time", "datacontenttype", "dataschema", "subject",
                      "data"}
CREATED_DATA = {"customerId", "displayName", "profile", "plan", "contactEmail", "redirectUris", "existingClientId"}
REMOVED_DATA = {"customerId", "reason"}
#: what a customer.updated may change; fields left out keep their value
UPDATED_DATA = {"customerId", "displayName", "profile", "plan", "contactEmail", "redirectUris"}
ROTATION_DATA = {"customerId", "reason"}
DATA_FIELDS = {CREATED: CREATED_DATA, UPDATED: UPDATED_DATA, REMOVED: REMOVED_DATA, ROTATION_REQUESTED: ROTATION_DATA}


@dataclass(frozen=True)
class CustomerEvent:
    event_id: str
    source: str
    type: str  # CREATED or REMOVED, without the configured prefix
    time: dt.datetime  # timezone-aware, UTC
    customer_id: str
    #: the sender's W3C trace context (the CloudEvents distributed-tracing extension), when it gave a valid one
    trace_context: TraceContext | None = field(default=None, compare=False, kw_only=True)
    #: why a traceparent/tracestate the sender gave was ignored ("traceparent: <rule>"), else None
    trace_context_problem: str | None = field(default=None, compare=False, kw_only=True)

    @property
    def time_iso(self) -> str:
        return self.time.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class CustomerCreated(CustomerEvent):
    display_name: str = ""
    profile: str = ""
    plan: str | None = None
    contact_email: str | None = None
    redirect_uris: tuple[str, ...] = field(default_factory=tuple)
    #: an Auth0 application made by hand that the app adopts instead of creating one
    existing_client_id: str | None = None


@dataclass(frozen=True)
class CustomerUpdated(CustomerEvent):
    """Only the fields the event carries change; ``None`` keeps the current value."""
    display_name: str | None = None
    profile: str | None = None
    plan: str | None = None
    contact_email: str | None = None
    redirect_uris: tuple[str, ...] | None = None


@dataclass(frozen=True)
class CustomerRemoved(CustomerEvent):
    reason: str | None = None


@dataclass(frozen=True)
class CredentialsRotationRequested(CustomerEvent):
    """Rotate the customer's client secret (on a schedule, or on demand after a leak)."""
    reason: str | None = None


def _ledger_safe(value, max_len: int) -> str | None:
    """``value`` when it is a string fit for a ledger key or a log line: 1 to ``max_len`` printable characters
    (no control, format, separator or lone surrogate), valid UTF-8; else None."""
    if not isinstance(value, str) or not 0 < len(value) <= max_len or not value.isprintable():
        return None
    return None if _has_surrogate(value) else value


def peek_identity(body) -> tuple[str | None, str | None, str | None]:
    """Best-effort (customer id, event id, event type) of a body that failed validation, to file its rejection under
    the right customer. Total like :func:`parse_event`: any body gives a triple, never an exception. Only values
    safe as ledger keys come back: a customer id that follows the customer id rule, an event id of 1-128 and a type
    of 1-200 printable characters; anything else is None."""
    try:
        doc = _load(body, check_tree=False)
    except (InvalidEvent, ValueError, RecursionError):
        return None, None, None
    if not isinstance(doc, dict):
        return None, None, None
    data = doc.get("data")
    cid = _ledger_safe(data.get("customerId"), 64) if isinstance(data, dict) else None
    cid = cid if cid is not None and CUSTOMER_ID.fullmatch(cid) else None
    return cid, _ledger_safe(doc.get("id"), 128), _ledger_safe(doc.get("type"), 200)


def peek_trace_context(body) -> TraceContext | None:
    """The valid trace context of a body that failed validation, so that even its rejection is traced in the
    sender's trace; None for anything else. Total like :func:`peek_identity`."""
    try:
        doc = _load(body, check_tree=False)
    except (InvalidEvent, ValueError, RecursionError):
        return None
    return read_trace_context(doc)[0] if isinstance(doc, dict) else None


def _string(obj: dict, key: str, path: str, *, required: bool, max_len: int, min_len: int = 1) -> str | None:
    if key not in obj or obj[key] is None:
        if required:
            _fail(path, "is required")
        return None
    value = obj[key]
    if not isinstance(value, str):
        _fail(path, f"must be a string, not {type(value).__name__}")
    if not min_len <= len(value) <= max_len:
        _fail(path, f"must be {min_len} to {max_len} characters long (got {len(value)})")
    _check_text(value, path)
    return value


def _check_text(value: str, path: str) -> None:
    # Control characters break logs and portals; bidirectional overrides make a name read differently from
    # what it is (Trojan Source, CVE-2021-42574). Neither has a place in an id or a display name. A lone surrogate
    # cannot even be written as UTF-8 (json_body refuses it first; this keeps the rule local too).
    for ch in value:
        cat = unicodedata.category(ch)
        if cat == "Cs":
            _fail(path, f"is not valid Unicode (found a lone surrogate U+{ord(ch):04X})")
        if cat == "Cc":
            _fail(path, f"must not contain control characters (found U+{ord(ch):04X})")
        if cat == "Cf" and unicodedata.bidirectional(ch) in ("LRE", "RLE", "LRO", "RLO", "PDF", "LRI", "RLI",
                                                              "FSI", "PDI") or ch in "\u200e\u200f\u061c":
            _fail(path, f"must not contain bidirectional control characters (found U+{ord(ch):04X})")


def _time(obj: dict, now: dt.datetime) -> dt.datetime:
    raw = _string(obj, "time", "time", required=True, max_len=40)
    if not RFC3339.match(raw):
        _fail("time", "must be an RFC 3339 timestamp with a zone, e.g. 2026-11-26T14:00:00Z")
    text = raw.upper().replace("Z", "+00:00")
    # Python's fromisoformat takes at most 6 fractional digits; RFC 3339 allows more.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        value = dt.datetime.fromisoformat(text).astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):  # OverflowError: 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        _fail("time", "is not a valid date and time")
    if value < EARLIEST_TIME:
        _fail("time", f"is before {EARLIEST_TIME.year}; check the sender's clock")
    if value > now + dt.timedelta(seconds=MAX_CLOCK_SKEW):
        _fail("time", f"is more than {MAX_CLOCK_SKEW} s in the future; check the sender's clock")
    return value


def parse_event(body: bytes | str, *, type_prefix: str = "", now: dt.datetime | None = None,
                known_profiles: frozenset[str] | None = None) -> CustomerEvent:
    """Parse and validate one message body. Raises :class:`InvalidEvent` naming the field and the rule, and
    nothing else, whatever the body holds; every string of the event returned is valid Unicode (UTF-8 strict)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    doc = _load(body)
    if not isinstance(doc, dict):
        _fail("$", f"must be a JSON object (a CloudEvent in structured mode), not {type(doc).__name__}")

    # First of all, in any case: such a name has already changed the message's metadata (HOST_METADATA_NAMES).
    collided = sorted(key for key in doc if key.lower() in HOST_METADATA_NAMES)
    if collided:
        path = _key_path("", collided[0])
        raise MetadataCollision(path[:MAX_PATH_CHARS], "is the name of a Service Bus message property, which the "
                                "Functions host replaces with this attribute's value; choose another extension name")
    # Before the attribute names: data_base64 is a valid CloudEvents member, just not one we accept.
    if "data_base64" in doc:
        _fail("data_base64", "is not accepted; send data as a JSON object")
    for key in doc:
        if key not in CONTEXT_ATTRIBUTES and not EXTENSION_NAME.fullmatch(key):
            _fail(_key_path("", key),
                  "is not a CloudEvents attribute; extension names are 1-20 lower-case letters or digits")
    if doc.get("specversion") != "1.0":
        _fail("specversion", "must be \"1.0\"")
    event_id = _string(doc, "id", "id", required=True, max_len=128)
    source = _string(doc, "source", "source", required=True, max_len=512)
    ctype = _string(doc, "datacontenttype", "datacontenttype", required=False, max_len=100)
    if ctype is not None and ctype.split(";")[0].strip().lower() != "application/json":
        _fail("datacontenttype", "must be application/json when present")
    raw_type = _string(doc, "type", "type", required=True, max_len=200)
    if type_prefix and raw_type.startswith(type_prefix):
        event_type = raw_type[len(type_prefix):]
    else:
        event_type = raw_type
    if event_type not in EVENT_TYPES or (type_prefix and not raw_type.startswith(type_prefix)):
        expected = ", ".join(f"{type_prefix}{t}" for t in EVENT_TYPES[:-1]) + f" or {type_prefix}{EVENT_TYPES[-1]}"
        _fail("type", f"must be {expected} (got {raw_type!r})")
    when = _time(doc, now)
    # Not used by the app, but held to the same text rules: whatever reads the event later (a log, the ops tool,
    # another consumer of a replayed copy) gets no control character from it either.
    _string(doc, "subject", "subject", required=False, max_len=1024)
    _string(doc, "dataschema", "dataschema", required=False, max_len=2048)

    data = doc.get("data")
    if not isinstance(data, dict):
        _fail("data", "is required and must be a JSON object")
    allowed = DATA_FIELDS[event_type]
    for key in data:
        if key not in allowed:
            _fail(_key_path("data", key), f"is not part of {event_type} (allowed: {', '.join(sorted(allowed))})")
    customer_id = _string(data, "customerId", "data.customerId", required=True, max_len=64)
    if not CUSTOMER_ID.fullmatch(customer_id):
        _fail("data.customerId", "must be 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit")
    trace, trace_problem = read_trace_context(doc)
    common = dict(event_id=event_id, source=source, type=event_type, time=when, customer_id=customer_id,
                  trace_context=trace, trace_context_problem=trace_problem)

    if event_type == REMOVED:
        reason = _string(data, "reason", "data.reason", required=False, max_len=200)
        return CustomerRemoved(**common, reason=reason)
    if event_type == ROTATION_REQUESTED:
        reason = _string(data, "reason", "data.reason", required=False, max_len=200)
        return CredentialsRotationRequested(**common, reason=reason)

    if event_type == UPDATED:
        if set(data) == {"customerId"}:
            _fail("data", f"must change at least one of {', '.join(sorted(UPDATED_DATA - {'customerId'}))}")
        fields = _customer_fields(data, required=False, known_profiles=known_profiles)
        return CustomerUpdated(**common, **fields)
    fields = _customer_fields(data, required=True, known_profiles=known_profiles)
    existing = _string(data, "existingClientId", "data.existingClientId", required=False, max_len=64)
    if existing is not None and not CLIENT_ID.fullmatch(existing):
        _fail("data.existingClientId", "must be an Auth0 client id: 1-64 of A-Z a-z 0-9 _ -")
    return CustomerCreated(**common, **{**fields, "redirect_uris": fields["redirect_uris"] or ()},
                           existing_client_id=existing)


def _customer_fields(data: dict, *, required: bool, known_profiles: frozenset[str] | None) -> dict:
    """The fields a created event must give and an updated event may give, under the same rules."""
    display_name = _string(data, "displayName", "data.displayName", required=required, max_len=100)
    if display_name is not None and display_name != display_name.strip():
        _fail("data.displayName", "must not start or end with white space")
    if display_name is not None and any(ch in display_name for ch in "<>"):
        # Auth0 refuses < and > in application names; they are also the start of every HTML injection.
        _fail("data.displayName", "must not contain < or >")
    if display_name is not None and display_name.startswith(FORMULA_START):
        # A spreadsheet runs a cell that starts so as a formula (=HYPERLINK, +cmd|..., @SUM): the name reaches
        # every export and table an operator might open in one (Auth0's, the portal's, ours).
        _fail("data.displayName", f"must not start with {display_name[0]!r}: a spreadsheet would run it as a formula")
    profile = _string(data, "profile", "data.profile", required=required, max_len=40)
    if profile is not None and not PROFILE_NAME.fullmatch(profile):
        _fail("data.profile", "must be a profile name: lower-case letters, digits and -")
    if profile is not None and known_profiles is not None and profile not in known_profiles:
        _fail("data.profile", f"unknown profile {profile!r} (known: {', '.join(sorted(known_profiles))})")
    plan = _string(data, "plan", "data.plan", required=False, max_len=64)
    email = _string(data, "contactEmail", "data.contactEmail", required=False, max_len=254)
    if email is not None and not EMAIL.fullmatch(email):
        _fail("data.contactEmail", "must be an e-mail address")
    uris = data.get("redirectUris")
    redirect_uris: tuple[str, ...] | None = None
    if uris is not None:
        if not isinstance(uris, list) or not 1 <= len(uris) <= 20:
            _fail("data.redirectUris", "must be a list of 1 to 20 https URLs")
        for i, uri in enumerate(uris):
            path = f"data.redirectUris[{i}]"
            if not isinstance(uri, str) or len(uri) > 2000:
                _fail(path, "must be a string of at most 2000 characters")
            _check_text(uri, path)
            problem = redirect_uri_problem(uri)
            if problem:
                _fail(path, problem)
        redirect_uris = tuple(uris)
    return dict(display_name=display_name, profile=profile, plan=plan, contact_email=email,
                redirect_uris=redirect_uris)
