"""Service Bus semantics on top of the AMQP engine: entities, locks, sessions, timers, management.

All state lives on the stand-in's event-loop thread; nothing here is thread-safe by design, and
nothing needs to be (see ``server.py`` for how other threads reach in).

Sources for the protocol details: /work/shared/notes/servicebus.md (abbreviated "note") and the
installed azure-servicebus 7.15.0 (paths are relative to ``azure/servicebus``); behaviour of the
real service from Microsoft's docs "Service Bus dead-letter queues", "Message sessions",
"Message transfers, locks, and settlement", "AMQP 1.0 in Azure Service Bus: request-response-based
operations". What @azure/service-bus 7.9 needs (string message-ids, abandon without delivery-failed,
service-assigned MessageIds, rule operations) was read from its package and checked by
tests/servicebus/js/interop.test.mjs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import heapq
import hmac
import itertools
import json
import logging
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, quote_plus, urlparse

from azure.servicebus._pyamqp._encode import encode_payload
from azure.servicebus._pyamqp.error import AMQPError
from azure.servicebus._pyamqp.message import Message as PyMessage, Properties
from azure.servicebus._pyamqp.outcomes import Accepted, Modified, Rejected, Released

from . import codec
from .amqp import Connection, Handler, IncomingDelivery, Link, OutgoingDelivery, raw_field
from .codec import AMQPTypes, typed
from .config import EntitySettings, RuleSpec, namespaces, parse_duration
from .persistence import RawJson

_LOG = logging.getLogger("emulators.servicebus")

BATCH_FORMAT = 0x80013700  # note "Send"; ``_pyamqp/message.py`` BatchMessage._code
DEFAULT_MAX_MESSAGE_SIZE = 256 * 1024  # Standard tier / emulator limit; SDK falls back to 1 MiB only without it
DOTNET_EPOCH_TICKS = 621355968000000000  # ``_common/constants.py`` DATETIMEOFFSET_EPOCH
NEXT_AVAILABLE_DEFAULT_WAIT = 60.0  # seconds a NEXT_AVAILABLE attach waits when the client sets no timeout
MAX_FORWARD_HOPS = 4  # auto-forwarding chain limit (Microsoft docs, "autoforwarding")

# Error conditions (``_common/constants.py``)
VENDOR = "com.microsoft:"
E_LOCK_LOST = b"com.microsoft:message-lock-lost"
E_SESSION_LOCK_LOST = b"com.microsoft:session-lock-lost"
E_SESSION_CANNOT_LOCK = b"com.microsoft:session-cannot-be-locked"
E_NOT_FOUND_MSG = b"com.microsoft:message-not-found"
E_TIMEOUT = b"com.microsoft:timeout"
E_ARGUMENT = b"com.microsoft:argument-error"
E_DEAD_LETTER = b"com.microsoft:dead-letter"
E_ALREADY_EXISTS = b"com.microsoft:entity-already-exists"
A_NOT_FOUND = b"amqp:not-found"
A_NOT_ALLOWED = b"amqp:not-allowed"
A_UNAUTHORIZED = b"amqp:unauthorized-access"
A_NOT_IMPLEMENTED = b"amqp:not-implemented"
A_INTERNAL = b"amqp:internal-error"
A_DECODE = b"amqp:decode-error"

SESSION_FILTER = b"com.microsoft:session-filter"
LOCKED_UNTIL_UTC = b"com.microsoft:locked-until-utc"
LINK_TIMEOUT = b"com.microsoft:timeout"

# Message annotations the broker owns (``_common/constants.py``); client values are replaced.
X_SEQ = b"x-opt-sequence-number"
X_ENQ_TIME = b"x-opt-enqueued-time"
X_LOCKED_UNTIL = b"x-opt-locked-until"
X_LOCK_TOKEN = b"x-opt-lock-token"
X_STATE = b"x-opt-message-state"
X_DLQ_SOURCE = b"x-opt-deadletter-source"
X_ENQ_SEQ = b"x-opt-enqueue-sequence-number"
X_SCHEDULED = b"x-opt-scheduled-enqueue-time"
BROKER_ANNOTATIONS = {X_SEQ, X_ENQ_TIME, X_LOCKED_UNTIL, X_LOCK_TOKEN, X_STATE, X_DLQ_SOURCE, X_ENQ_SEQ}

STATE_VERSION = 1  # of the state file's layout (dump_state / load_state)

DLQ_REASON = "DeadLetterReason"
DLQ_DESCRIPTION = "DeadLetterErrorDescription"

STATE_ACTIVE, STATE_DEFERRED, STATE_SCHEDULED = "active", "deferred", "scheduled"
_STATE_CODE = {STATE_ACTIVE: 0, STATE_DEFERRED: 1, STATE_SCHEDULED: 2}  # ServiceBusMessageState

_LOCK_LOST_TEXT = (
    "The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue."
)
_SESSION_LOCK_LOST_TEXT = "The session lock has expired on the MessageSession. Accept a new MessageSession."


def _now() -> float:
    return time.time()


def _ms(t: float) -> int:
    return int(round(t * 1000))


def _text(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value).hex()
    return str(value)


def _compact_booleans(raw_map: bytes) -> bytes:
    """Re-encode ``boolean`` values written with the one-octet form (0x56 0x00/0x01) as 0x42/0x41.

    The Python SDK writes booleans as 0x56 0x01; rhea decodes that form as the number 1. Service
    Bus does not relay application properties byte for byte: it reads them into its own types and
    writes them again on delivery, in the compact forms, so a JavaScript receiver gets ``true``
    from a Python sender. Everything else keeps its bytes (see ``codec``).
    """
    try:
        pairs = codec.map_pairs(raw_map)
    except codec.AmqpDecodeError:
        return raw_map
    if not any(v[:1] == b"\x56" for _, v in pairs):
        return raw_map
    return codec.build_map([(k, (b"\x41" if v[1:2] != b"\x00" else b"\x42") if v[:1] == b"\x56" else v) for k, v in pairs])


def encode_message(header_raw: Optional[bytes], ma_pairs, props_raw: Optional[bytes], ap_raw: Optional[bytes],
                   body_raw: bytes, footer_raw: Optional[bytes]) -> bytes:
    """A message's sections in the order AMQP 1.0 fixes (header, message annotations, properties, application
    properties, body, footer); a section given as None is left out."""
    out = [] if header_raw is None else [codec.encode_section(codec.SECTION_HEADER, header_raw)]
    if ma_pairs is not None:
        out.append(codec.encode_section(codec.SECTION_MESSAGE_ANNOTATIONS, codec.build_map(ma_pairs)))
    if props_raw is not None:
        out.append(codec.encode_section(codec.SECTION_PROPERTIES, props_raw))
    if ap_raw is not None:
        out.append(codec.encode_section(codec.SECTION_APPLICATION_PROPERTIES, ap_raw))
    out.append(body_raw)
    if footer_raw is not None:
        out.append(codec.encode_section(codec.SECTION_FOOTER, footer_raw))
    return b"".join(out)


def _pair(key: bytes, value: Dict[str, Any]) -> Tuple[bytes, bytes]:
    return codec.encode(typed(AMQPTypes.symbol, key)), codec.encode(value)


# --------------------------------------------------------------------------------------------
# messages
# --------------------------------------------------------------------------------------------
class ParsedMessage:
    """An incoming AMQP message split into raw sections plus the few decoded fields we need."""

    __slots__ = (
        "durable", "priority", "ttl_ms", "ma_pairs", "props_raw", "ap_raw", "body_raw", "footer_raw",
        "message_id", "session_id", "correlation_id", "subject", "content_type", "to", "reply_to",
        "reply_to_session_id", "app_props", "scheduled_ms", "size", "dlq_source", "dlq_reason", "dlq_description",
        "header_raw", "kept",
    )

    def __init__(self) -> None:
        self.durable = self.priority = self.ttl_ms = None
        self.ma_pairs: List[Tuple[bytes, bytes]] = []
        self.props_raw: Optional[bytes] = None
        self.ap_raw: Optional[bytes] = None
        self.body_raw = b""
        self.footer_raw: Optional[bytes] = None
        self.message_id = self.session_id = self.correlation_id = self.subject = None
        self.content_type = self.to = self.reply_to = self.reply_to_session_id = None
        self.app_props: Dict[str, Any] = {}
        self.scheduled_ms: Optional[int] = None
        self.size = 0
        # set only on a copy auto-forwarded out of a dead-letter queue
        self.dlq_source: Optional[str] = None
        self.dlq_reason: Optional[str] = None
        self.dlq_description: Optional[str] = None
        self.header_raw: Optional[bytes] = None
        self.kept: Optional[str] = None  # ``encode()`` as a JSON string of base64, cached: every save writes it

    @classmethod
    def parse(cls, payload: bytes) -> "ParsedMessage":
        m = cls()
        m.size = len(payload)
        body: List[bytes] = []
        for code, raw in codec.split_sections(payload):
            if code == codec.SECTION_HEADER:
                m.header_raw = raw
                h = codec.decode_value(raw) or []
                h = (list(h) + [None] * 5)[:5]
                m.durable, m.priority, m.ttl_ms = h[0], h[1], h[2]
            elif code == codec.SECTION_DELIVERY_ANNOTATIONS:
                pass  # hop-by-hop, not stored (AMQP 1.0 messaging 3.2.2)
            elif code == codec.SECTION_MESSAGE_ANNOTATIONS:
                for k, v in codec.map_pairs(raw):
                    name = codec.symbol_key(k)
                    if name in BROKER_ANNOTATIONS:
                        continue
                    if name == X_SCHEDULED:
                        val = codec.decode_value(v)
                        if isinstance(val, int):
                            m.scheduled_ms = val
                    m.ma_pairs.append((k, v))
            elif code == codec.SECTION_PROPERTIES:
                m.props_raw = raw
                p = (list(codec.decode_value(raw) or []) + [None] * 13)[:13]
                m.message_id = _text(p[0])
                m.to = _text(p[2])
                m.subject = _text(p[3])
                m.reply_to = _text(p[4])
                m.correlation_id = _text(p[5])
                m.content_type = _text(p[6])
                m.session_id = _text(p[10])  # group-id carries the SessionId (Service Bus AMQP mapping)
                m.reply_to_session_id = _text(p[12])
            elif code == codec.SECTION_APPLICATION_PROPERTIES:
                m.ap_raw = _compact_booleans(raw)
                decoded = codec.decode_value(raw) or {}
                m.app_props = {(_text(k) or ""): v for k, v in decoded.items()}
            elif code == codec.SECTION_FOOTER:
                m.footer_raw = raw
            else:
                body.append(codec.encode_section(code, raw))
        m.body_raw = b"".join(body)
        return m

    def ensure_message_id(self) -> None:
        """Give a message sent without a message-id one, as a string, like Service Bus does.

        The service stamps a MessageId (a GUID, 32 hex digits) on every message that arrives
        without one, and clients rely on it: @azure/service-bus keys its lock renewal on the
        received message's id and cannot settle a message that has none.
        """
        if self.message_id is not None:
            return
        new_id = uuid.uuid4().hex
        item = codec.encode(typed(AMQPTypes.string, new_id))
        items = codec.list_items(self.props_raw) if self.props_raw is not None else []
        items = items or [b"\x40"]
        items[0] = item
        self.props_raw = codec.build_list(items)
        self.message_id = new_id

    def encode(self) -> bytes:
        """The message as the sender's sections again (the message-id the broker stamped included): what the
        state file keeps, and ``parse`` reads back. Delivery annotations are hop-by-hop and were never kept."""
        return encode_message(self.header_raw, self.ma_pairs or None, self.props_raw, self.ap_raw, self.body_raw,
                              self.footer_raw)


class StoredMessage:
    """A message held by an entity (one copy per queue / subscription)."""

    _ids = itertools.count(1)

    def __init__(self, parsed: ParsedMessage, seq: int):
        self.uid = next(self._ids)
        self.p = parsed
        self.seq = seq
        self.ap_raw = parsed.ap_raw
        self.enqueued_time = _now()
        self.expires_at: Optional[float] = None
        self.scheduled_time: Optional[float] = None
        self.delivery_count = 0
        self.state = STATE_ACTIVE
        self.queued = False
        self.lock_token: Optional[uuid.UUID] = None
        self.locked_until: Optional[float] = None
        self.lock_link: Optional[Link] = None
        self.lock_timer: Optional[asyncio.TimerHandle] = None
        self.expiry_timer: Optional[asyncio.TimerHandle] = None
        self.expired = False
        self.dlq_reason: Optional[str] = parsed.dlq_reason
        self.dlq_description: Optional[str] = parsed.dlq_description
        self.dlq_source: Optional[str] = parsed.dlq_source
        self.sq: Optional["SubQueue"] = None
        self._kept: Optional[Tuple[tuple, str]] = None  # (what record() depends on, its JSON text)

    @property
    def session_id(self) -> Optional[str]:
        return self.p.session_id

    def record(self) -> "RawJson":
        """What the state file keeps of this message, as JSON text (``restore`` reads it back). The message's
        own sections, which never change, are encoded once, and the whole record again only when something of
        it changed: a backlog that waits costs the state file little more than its size. ``locked``: a receiver
        held it when the state was saved; that lock does not outlive the stand-in."""
        p = self.p
        key = (self.sq.kind if self.sq is not None else None, self.state, self.lock_token is not None,
               self.delivery_count, self.enqueued_time, self.expires_at, self.scheduled_time, self.dlq_reason,
               self.dlq_description, self.dlq_source, self.ap_raw)
        if self._kept is not None and self._kept[0] == key:
            return self._kept[1]
        if p.kept is None:
            p.kept = json.dumps(base64.b64encode(p.encode()).decode("ascii"))
        rec: Dict[str, Any] = {
            "sequence_number": self.seq, "sub_queue": self.sq.kind if self.sq is not None else None,
            "state": self.state, "locked": self.lock_token is not None, "delivery_count": self.delivery_count,
            "enqueued_time": self.enqueued_time, "expires_at": self.expires_at, "scheduled_time": self.scheduled_time,
            "dead_letter_reason": self.dlq_reason, "dead_letter_description": self.dlq_description,
            "dead_letter_source": self.dlq_source, "size": p.size,
        }
        if self.ap_raw is not p.ap_raw:  # changed by a settlement (dead-letter reason, propertiesToModify)
            rec["application_properties"] = base64.b64encode(self.ap_raw).decode("ascii") if self.ap_raw else None
        text = RawJson(json.dumps(rec, separators=(",", ":"))[:-1] + ',"message":' + p.kept + "}")
        self._kept = (key, text)
        return text

    @classmethod
    def restore(cls, rec: Dict[str, Any]) -> "StoredMessage":
        p = ParsedMessage.parse(base64.b64decode(rec["message"]))
        p.size, p.kept = int(rec.get("size") or p.size), json.dumps(rec["message"])
        msg = cls(p, int(rec["sequence_number"]))
        if "application_properties" in rec:
            raw = rec["application_properties"]
            msg.ap_raw = base64.b64decode(raw) if raw else None
        msg.state = rec.get("state") or STATE_ACTIVE
        msg.delivery_count = int(rec.get("delivery_count") or 0)
        msg.enqueued_time = float(rec.get("enqueued_time") or msg.enqueued_time)
        msg.expires_at, msg.scheduled_time = rec.get("expires_at"), rec.get("scheduled_time")
        msg.dlq_reason, msg.dlq_description = rec.get("dead_letter_reason"), rec.get("dead_letter_description")
        msg.dlq_source = rec.get("dead_letter_source")
        return msg

    def copy_for(self, seq: int) -> "StoredMessage":
        m = StoredMessage(self.p, seq)
        m.ap_raw = self.ap_raw
        return m

    def cancel_timers(self) -> None:
        for t in (self.lock_timer, self.expiry_timer):
            if t is not None:
                t.cancel()
        self.lock_timer = self.expiry_timer = None

    def set_dead_letter_properties(self, reason: Optional[str], description: Optional[str]) -> None:
        """Write DeadLetterReason/DeadLetterErrorDescription into the application properties.

        The client reads them from there (``_common/message.py`` dead_letter_reason); other
        properties keep their original encoding byte for byte.
        """
        self.dlq_reason, self.dlq_description = reason, description
        pairs = []
        for k, v in codec.map_pairs(self.ap_raw):
            if _text(codec.decode_value(k)) in (DLQ_REASON, DLQ_DESCRIPTION):
                continue
            pairs.append((k, v))
        for name, value in ((DLQ_REASON, reason), (DLQ_DESCRIPTION, description)):
            if value is not None:
                pairs.append((codec.encode(typed(AMQPTypes.string, name)), codec.encode(typed(AMQPTypes.string, value))))
        self.ap_raw = codec.build_map(pairs) if pairs else None

    def modify_properties(self, raw_map: Optional[bytes], skip: Tuple[str, ...] = ()) -> None:
        """Apply a settlement's ``propertiesToModify`` to the application properties.

        Service Bus stores the properties passed to abandon, defer and dead-letter on the message
        (Microsoft docs, ServiceBusReceiver.AbandonMessageAsync ``propertiesToModify``; a later
        receive shows them). They arrive as an encoded map whose keys may be symbols; keys become
        strings, as application-properties require (AMQP 1.0 messaging 3.2.5), and values keep
        their encoding. Values that application properties cannot hold (lists, maps, described
        types) are dropped.
        """
        if not raw_map:
            return
        try:
            changes = []
            for k, v in codec.map_pairs(raw_map):
                name = _text(codec.decode_value(k))
                if not name or name in skip or v[0] in (0x00, 0x45, 0xC0, 0xD0, 0xC1, 0xD1, 0xE0, 0xF0):
                    continue
                changes.append((name, v))
        except codec.AmqpDecodeError:
            _LOG.warning("message %d: ignoring undecodable properties to modify", self.seq)
            return
        if not changes:
            return
        names = {name for name, _ in changes}
        pairs = [(k, v) for k, v in codec.map_pairs(self.ap_raw) if _text(codec.decode_value(k)) not in names]
        pairs += [(codec.encode(typed(AMQPTypes.string, name)), v) for name, v in changes]
        self.ap_raw = codec.build_map(pairs)

    def render(self, locked_until: Optional[float] = None) -> bytes:
        p = self.p
        header = codec.encode_header(p.durable, p.priority, p.ttl_ms, None, self.delivery_count)
        pairs = list(p.ma_pairs)
        pairs.append(_pair(X_SEQ, typed(AMQPTypes.long, self.seq)))
        pairs.append(_pair(X_ENQ_TIME, typed(AMQPTypes.timestamp, _ms(self.enqueued_time))))
        if locked_until is not None:
            pairs.append(_pair(X_LOCKED_UNTIL, typed(AMQPTypes.timestamp, _ms(locked_until))))
        if self.state != STATE_ACTIVE:
            pairs.append(_pair(X_STATE, typed(AMQPTypes.int, _STATE_CODE[self.state])))
        if self.dlq_source:
            pairs.append(_pair(X_DLQ_SOURCE, typed(AMQPTypes.string, self.dlq_source)))
        return encode_message(header, pairs, p.props_raw, self.ap_raw, p.body_raw, p.footer_raw)

    def describe(self) -> Dict[str, Any]:
        state = self.state
        if state == STATE_ACTIVE and self.lock_token is not None:
            state = "locked"
        if self.sq is not None and self.sq.kind != "main":
            state = "dead-lettered" if state in (STATE_ACTIVE,) else state
        return {
            "sequence_number": self.seq,
            "message_id": self.p.message_id,
            "session_id": self.p.session_id,
            "correlation_id": self.p.correlation_id,
            "subject": self.p.subject,
            "content_type": self.p.content_type,
            "delivery_count": self.delivery_count,
            "state": state,
            "enqueued_time_utc": self.enqueued_time,
            "scheduled_enqueue_time_utc": self.scheduled_time,
            "expires_at_utc": self.expires_at,
            "locked_until_utc": self.locked_until if self.lock_token is not None else None,
            "dead_letter_reason": self.dlq_reason,
            "dead_letter_error_description": self.dlq_description,
            "dead_letter_source": self.dlq_source,
            "size": self.p.size,
            # What a subscription's filter may match on (a result event's customerId, type): the plain values only.
            "application_properties": {
                k: _text(v) if isinstance(v, bytes) else v for k, v in self.p.app_props.items()
                if isinstance(v, (bytes, str, int, float, bool))},
        }


# --------------------------------------------------------------------------------------------
# entities
# --------------------------------------------------------------------------------------------
class SessionState:
    def __init__(self, session_id: str):
        self.id = session_id
        self.heap: List[int] = []
        self.state: Optional[bytes] = None
        self.owner: Optional["ReceiverCtx"] = None
        self.locked_until = 0.0
        self.timer: Optional[asyncio.TimerHandle] = None

    def locked(self) -> bool:
        return self.owner is not None and self.locked_until > _now()


class ReceiverCtx:
    def __init__(self, link: Link, sq: "SubQueue"):
        self.link = link
        self.sq = sq
        self.session: Optional[SessionState] = None
        self.session_lost = False


class SubQueue:
    """The main queue, the dead-letter queue or the transfer dead-letter queue of an entity."""

    def __init__(self, broker: "Broker", owner: "MessagingEntity", kind: str):
        self.broker = broker
        self.owner = owner
        self.kind = kind  # "main" | "dlq" | "tdlq"
        self.messages: Dict[int, StoredMessage] = {}
        self.heap: List[int] = []
        self.sessions: Dict[str, SessionState] = {}
        self.receivers: List[ReceiverCtx] = []
        self._rr = 0

    @property
    def settings(self) -> EntitySettings:
        return self.owner.settings

    @property
    def path(self) -> str:
        suffix = {"main": "", "dlq": "/$DeadLetterQueue", "tdlq": "/$Transfer/$DeadLetterQueue"}[self.kind]
        return self.owner.path + suffix

    @property
    def session_enabled(self) -> bool:
        # Sub-queues of a session entity are not sessionful (Microsoft docs, dead-letter queues).
        return self.kind == "main" and self.settings.requires_session

    def session(self, session_id: str) -> SessionState:
        s = self.sessions.get(session_id)
        if s is None:
            s = self.sessions[session_id] = SessionState(session_id)
        return s

    # -- availability -----------------------------------------------------------------------
    def make_available(self, msg: StoredMessage, dispatch: bool = True) -> None:
        msg.state = STATE_ACTIVE if msg.state != STATE_DEFERRED else STATE_DEFERRED
        if msg.state == STATE_DEFERRED:
            return
        if not msg.queued:
            msg.queued = True
            if self.session_enabled:
                heapq.heappush(self.session(msg.session_id or "").heap, msg.seq)
            else:
                heapq.heappush(self.heap, msg.seq)
        if dispatch:
            self.dispatch(msg.session_id if self.session_enabled else None)

    def _pop(self, heap: List[int]) -> Optional[StoredMessage]:
        while heap:
            seq = heap[0]
            msg = self.messages.get(seq)
            if msg is None or not msg.queued or msg.lock_token is not None or msg.state != STATE_ACTIVE:
                heapq.heappop(heap)  # stale entry: message gone, locked, deferred or re-queued later
                continue
            if msg.expires_at is not None and msg.expires_at <= _now():
                heapq.heappop(heap)
                msg.queued = False
                self.broker.expire(msg)
                continue
            heapq.heappop(heap)
            msg.queued = False
            return msg
        return None

    def _peek_available(self, heap: List[int]) -> bool:
        while heap:
            msg = self.messages.get(heap[0])
            if msg is None or not msg.queued or msg.lock_token is not None or msg.state != STATE_ACTIVE:
                heapq.heappop(heap)
                continue
            return True
        return False

    def session_has_messages(self, s: SessionState) -> bool:
        return self._peek_available(s.heap)

    def dispatch(self, session_id: Optional[str] = None) -> None:
        """Hand available messages to receivers that have credit."""
        if self.session_enabled:
            if session_id is not None:
                s = self.sessions.get(session_id)
                if s is not None and s.owner is not None:
                    self._drain_to(s.owner, s.heap)
                elif s is not None:
                    self.broker.offer_session(self, s)
                return
            for s in list(self.sessions.values()):
                if s.owner is not None:
                    self._drain_to(s.owner, s.heap)
                else:
                    self.broker.offer_session(self, s)
            return
        if not self.receivers:
            return
        n = len(self.receivers)
        progress = True
        while progress and self.heap:
            progress = False
            for i in range(n):
                ctx = self.receivers[(self._rr + i) % n]
                if not ctx.link.can_send():
                    continue
                msg = self._pop(self.heap)
                if msg is None:
                    return
                self.broker.deliver(ctx, msg)
                progress = True
            self._rr = (self._rr + 1) % max(1, n)

    def _drain_to(self, ctx: ReceiverCtx, heap: List[int]) -> None:
        if ctx.session_lost:
            return
        while ctx.link.can_send():
            msg = self._pop(heap)
            if msg is None:
                return
            self.broker.deliver(ctx, msg)

    # -- inspection -------------------------------------------------------------------------
    def snapshot(self) -> Dict[str, Any]:
        msgs = sorted(self.messages.values(), key=lambda m: m.seq)
        return {
            "active_count": sum(1 for m in msgs if m.state == STATE_ACTIVE),
            "locked_count": sum(1 for m in msgs if m.lock_token is not None),
            "deferred_count": sum(1 for m in msgs if m.state == STATE_DEFERRED),
            "messages": [m.describe() for m in msgs],
            "sessions": {
                sid: {
                    "locked": s.locked(),
                    "locked_until_utc": s.locked_until if s.locked() else None,
                    "has_state": s.state is not None,
                }
                for sid, s in self.sessions.items()
            },
        }


class MessagingEntity:
    """A queue or a subscription: something that holds messages."""

    def __init__(self, broker: "Broker", path: str, settings: EntitySettings):
        self.broker = broker
        self.path = path
        self.settings = settings
        self.main = SubQueue(broker, self, "main")
        self.dlq = SubQueue(broker, self, "dlq")
        self.tdlq = SubQueue(broker, self, "tdlq")
        self.scheduled: Dict[int, StoredMessage] = {}

    def subqueue(self, kind: str) -> SubQueue:
        return {"main": self.main, "dlq": self.dlq, "tdlq": self.tdlq}[kind]


class Queue(MessagingEntity):
    kind = "queue"

    def __init__(self, broker: "Broker", name: str, settings: EntitySettings):
        super().__init__(broker, name, settings)
        self.name = name
        self.last_seq = 0
        self.dedupe: Dict[str, float] = {}

    def next_seq(self) -> int:
        self.last_seq += 1
        return self.last_seq


class Subscription(MessagingEntity):
    kind = "subscription"

    def __init__(self, broker: "Broker", topic: "Topic", name: str, settings: EntitySettings, rules: List[RuleSpec]):
        super().__init__(broker, f"{topic.name}/Subscriptions/{name}", settings)
        self.topic = topic
        self.name = name
        self.rules = rules or [RuleSpec(name="$Default", kind="true")]

    def next_seq(self) -> int:
        return self.topic.next_seq()

    def matches(self, p: ParsedMessage) -> bool:
        return any(_rule_matches(r, p) for r in self.rules)


def _rule_matches(rule: RuleSpec, p: ParsedMessage) -> bool:
    if rule.kind == "true":
        return True
    if rule.kind == "false":
        return False
    fields = {
        "ContentType": p.content_type,
        "CorrelationId": p.correlation_id,
        "Label": p.subject,
        "Subject": p.subject,
        "MessageId": p.message_id,
        "ReplyTo": p.reply_to,
        "ReplyToSessionId": p.reply_to_session_id,
        "SessionId": p.session_id,
        "To": p.to,
    }
    for key, expected in rule.correlation.items():
        if expected is None or expected == "":
            continue
        if fields.get(key) != str(expected):
            return False
    for key, expected in rule.properties.items():
        if key not in p.app_props:
            return False
        actual = p.app_props[key]
        if isinstance(actual, (bytes, bytearray)):
            actual = _text(actual)
        if isinstance(expected, bool) or isinstance(actual, bool):
            if actual != expected:
                return False
        elif isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
            if actual != expected:
                return False
        elif str(actual) != str(expected):
            return False
    return True


class Topic:
    kind = "topic"

    def __init__(self, broker: "Broker", name: str, props: Dict[str, Any]):
        self.broker = broker
        self.name = name
        self.path = name
        self.default_ttl = parse_duration(props.get("DefaultMessageTimeToLive"))
        self.settings = EntitySettings(
            default_ttl=self.default_ttl,
            requires_duplicate_detection=str(props.get("RequiresDuplicateDetection", "false")).lower() == "true",
            duplicate_window=parse_duration(props.get("DuplicateDetectionHistoryTimeWindow")) or 600.0
            if props.get("DuplicateDetectionHistoryTimeWindow")
            else 600.0,
        )
        self.subscriptions: Dict[str, Subscription] = {}
        self.last_seq = 0
        self.dedupe: Dict[str, float] = {}
        self.scheduled: Dict[int, StoredMessage] = {}

    def next_seq(self) -> int:
        self.last_seq += 1
        return self.last_seq


# --------------------------------------------------------------------------------------------
# the broker
# --------------------------------------------------------------------------------------------
class Broker(Handler):
    def __init__(
        self,
        config: Dict[str, Any],
        loop: asyncio.AbstractEventLoop,
        *,
        sas_key_name: str = "RootManageSharedAccessKey",
        sas_key: str = "SAS_KEY_VALUE",
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ):
        self.loop = loop
        self.sas_key_name = sas_key_name
        self.sas_key = sas_key
        self.max_message_size = max_message_size
        self.queues: Dict[str, Queue] = {}
        self.topics: Dict[str, Topic] = {}
        self.locks: Dict[uuid.UUID, StoredMessage] = {}
        self.pending_session_attaches: List[Tuple[ReceiverCtx, Optional[asyncio.TimerHandle]]] = []
        self.namespace = "sbemulatorns"
        # Called whenever something may have changed what the state file keeps (``persistence.py``).
        self.on_change: Callable[[], None] = lambda: None
        self._load(config)

    # ------------------------------------------------------------------ configuration
    def _load(self, config: Dict[str, Any]) -> None:
        nss = namespaces(config)
        if nss:
            self.namespace = str(nss[0].get("Name") or self.namespace)
        for ns in nss:
            for q in ns.get("Queues") or []:
                name = str(q["Name"])
                self.queues[name.lower()] = Queue(self, name, EntitySettings.from_config(q.get("Properties")))
            for t in ns.get("Topics") or []:
                topic = Topic(self, str(t["Name"]), t.get("Properties") or {})
                for s in t.get("Subscriptions") or []:
                    settings = EntitySettings.from_config(s.get("Properties"))
                    if topic.default_ttl is not None and (settings.default_ttl is None or settings.default_ttl > topic.default_ttl):
                        settings.default_ttl = topic.default_ttl  # effective TTL is the smaller one
                    rules = [RuleSpec.from_config(r) for r in (s.get("Rules") or [])]
                    sub = Subscription(self, topic, str(s["Name"]), settings, rules)
                    topic.subscriptions[sub.name.lower()] = sub
                self.topics[topic.name.lower()] = topic

    # ------------------------------------------------------------------ timers
    def call_later(self, delay: float, fn: Callable[[], None]) -> asyncio.TimerHandle:
        def run() -> None:
            self.on_change()
            try:
                fn()
            except Exception:  # a timer must never take the loop down
                _LOG.exception("timer callback failed")

        return self.loop.call_later(max(0.0, delay), run)

    # ------------------------------------------------------------------ address resolution
    def resolve(self, address: Optional[str]) -> Tuple[Any, str, bool]:
        """Map a link address to (entity, sub-queue kind, is_management).

        Accepts ``amqps://host/<queue>``, ``<queue>/$DeadLetterQueue``, ``<topic>/Subscriptions/<sub>``,
        a trailing ``/$management``; names compare case-insensitively as in Service Bus.
        """
        if not address:
            raise LookupError("empty address")
        path = urlparse(address).path if "://" in address else address
        parts = [p for p in path.strip("/").split("/") if p]
        mgmt = False
        if parts and parts[-1].lower() == "$management":
            mgmt = True
            parts.pop()
        kind = "main"
        if parts and parts[-1].lower() == "$deadletterqueue":
            parts.pop()
            kind = "dlq"
            if parts and parts[-1].lower() == "$transfer":
                parts.pop()
                kind = "tdlq"
        if len(parts) == 1:
            name = parts[0].lower()
            if name in self.queues:
                return self.queues[name], kind, mgmt
            if name in self.topics and kind == "main":
                return self.topics[name], kind, mgmt
        elif len(parts) == 3 and parts[1].lower() == "subscriptions":
            topic = self.topics.get(parts[0].lower())
            if topic is not None:
                sub = topic.subscriptions.get(parts[2].lower())
                if sub is not None:
                    return sub, kind, mgmt
        raise LookupError(f"The messaging entity '{self.namespace}:{path.strip('/')}' could not be found.")

    # ------------------------------------------------------------------ auth (CBS)
    def _authorized(self, conn: Connection, address: str) -> bool:
        path = urlparse(address).path if "://" in address else address
        path = path.strip("/").lower()
        now = _now()
        for prefix, expiry in conn.app.get("auth", []):
            if expiry <= now:
                continue
            if prefix == "" or path == prefix or path.startswith(prefix + "/"):
                return True
        return False

    def _check_token(self, token: str, audience: str) -> Tuple[int, str, Optional[Tuple[str, float]]]:
        """Validate a put-token request the way a namespace with one SAS rule would."""
        if not token.startswith("SharedAccessSignature "):
            # The stand-in has no identity provider; like the official emulator it accepts only
            # the namespace's shared access key.
            return 401, "Only SharedAccessSignature tokens are supported by the stand-in.", None
        fields = {k: v[0] for k, v in parse_qs(token[len("SharedAccessSignature "):], keep_blank_values=True).items()}
        sr, sig, se, skn = fields.get("sr"), fields.get("sig"), fields.get("se"), fields.get("skn")
        if not (sr and sig and se):
            return 401, "InvalidSignature: The token is missing sr, sig or se.", None
        if skn != self.sas_key_name:
            return 401, f"InvalidSignature: The token has an invalid signature (unknown key name {skn!r}).", None
        try:
            expiry = float(int(se))
        except ValueError:
            return 401, "InvalidSignature: se is not a number.", None
        # Signature per ``_pyamqp/utils.py`` generate_sas_token: HMAC-SHA256(key, quote_plus(sr) + "\n" + se).
        expected = base64.b64encode(
            hmac.new(self.sas_key.encode(), f"{quote_plus(sr)}\n{se}".encode(), hashlib.sha256).digest()
        ).decode()
        if not hmac.compare_digest(expected, sig):
            return 401, "InvalidSignature: The token has an invalid signature.", None
        if expiry <= _now():
            return 401, "ExpiredToken: The token is expired.", None
        sr_path = (urlparse(sr).path if "://" in sr else sr).strip("/").lower()
        aud_path = (urlparse(audience).path if "://" in audience else audience).strip("/").lower()
        if sr_path and not (aud_path == sr_path or aud_path.startswith(sr_path + "/")):
            return 401, "InvalidAudience: The token audience does not cover the requested resource.", None
        return 200, "OK", (aud_path, expiry)

    # ------------------------------------------------------------------ engine callbacks
    def on_connection_open(self, connection: Connection) -> None:
        connection.app.setdefault("auth", [])

    def on_connection_closed(self, connection: Connection) -> None:
        pass  # links were already detached one by one (on_detach)

    def on_attach(self, link: Link) -> None:
        self.on_change()  # a session receiver's attach delivers (locks) at once
        address = link.source_address if link.is_sender else link.target_address
        if address and address.strip("/").lower() == "$cbs":
            # CBS needs no prior authorization: it is how authorization happens (note "CBS").
            link.app = _ResponseLink(link, self) if link.is_sender else _CbsRequests()
            link.accept()
            return
        try:
            entity, kind, mgmt = self.resolve(address)
        except LookupError as exc:
            link.reject(A_NOT_FOUND, str(exc))
            return
        if not self._authorized(link.connection, address or ""):
            # Real namespaces refuse links that were not authorized through CBS first.
            link.reject(A_UNAUTHORIZED, f"Unauthorized access. 'Listen'/'Send' claim(s) are required for '{address}'.")
            return
        if mgmt:
            if link.is_sender:
                link.app = _ResponseLink(link, self)
            else:
                link.app = _ManagementRequests(entity, kind)
            link.accept()
            return
        if link.is_sender:
            self._attach_receiver(link, entity, kind)
        else:
            self._attach_sender(link, entity, kind)

    def _attach_sender(self, link: Link, entity: Any, kind: str) -> None:
        if kind != "main" or isinstance(entity, Subscription):
            link.reject(A_NOT_ALLOWED, "Sending to a subscription or a dead-letter queue is not supported.")
            return
        link.app = _EntitySender(entity)
        link.accept(
            max_message_size=self.max_message_size,
            properties={b"com.microsoft:max-message-batch-size": typed(AMQPTypes.ulong, self.max_message_size)},
        )

    def _attach_receiver(self, link: Link, entity: Any, kind: str) -> None:
        if isinstance(entity, Topic):
            link.reject(A_NOT_ALLOWED, "Cannot receive from a topic; receive from one of its subscriptions.")
            return
        sq = entity.subqueue(kind)
        ctx = ReceiverCtx(link, sq)
        filters = link.source_filters
        wants_session = any(bytes(k) == SESSION_FILTER for k in filters) if filters else False
        if sq.session_enabled and not wants_session:
            link.reject(
                A_NOT_ALLOWED,
                "It is not possible for an entity that requires sessions to create a non-sessionful message receiver.",
            )
            return
        if wants_session and not sq.session_enabled:
            link.reject(
                A_NOT_ALLOWED,
                "It is not possible for an entity that does not require sessions to create a sessionful message receiver.",
            )
            return
        link.app = ctx
        if not wants_session:
            sq.receivers.append(ctx)
            link.accept(source=Connection.echo_source(link, None))
            return
        requested = None
        for k, v in filters.items():
            if bytes(k) == SESSION_FILTER:
                requested = _text(v)
        if requested is not None:
            s = sq.session(requested)
            if s.locked():
                link.reject(
                    E_SESSION_CANNOT_LOCK,
                    f"The requested session '{requested}' cannot be accepted. It may be locked by another receiver.",
                )
                return
            self._bind_session(ctx, s)
            return
        # NEXT_AVAILABLE: the service holds the attach until a session has messages or the
        # client's operation timeout passes (``_transport/_pyamqp_transport.py`` create_receive_client).
        for s in sorted(sq.sessions.values(), key=lambda s: s.heap[0] if s.heap else 1 << 62):
            if not s.locked() and sq.session_has_messages(s):
                self._bind_session(ctx, s)
                return
        wait = NEXT_AVAILABLE_DEFAULT_WAIT
        raw_timeout = link.remote_properties.get(LINK_TIMEOUT) if link.remote_properties else None
        if isinstance(raw_timeout, int) and raw_timeout > 0:
            wait = raw_timeout / 1000.0
        entry: List[Any] = [ctx, None]
        entry[1] = self.call_later(wait, lambda: self._next_available_timeout(entry))
        self.pending_session_attaches.append(entry)  # type: ignore[arg-type]

    def _next_available_timeout(self, entry: List[Any]) -> None:
        if entry in self.pending_session_attaches:
            self.pending_session_attaches.remove(entry)
            ctx = entry[0]
            if not ctx.link.detached:
                ctx.link.reject(E_TIMEOUT, "The operation did not complete within the allocated time (no session available).")

    def offer_session(self, sq: SubQueue, s: SessionState) -> None:
        """A session without an owner got messages: hand it to a waiting NEXT_AVAILABLE attach."""
        if s.locked() or not self.pending_session_attaches:
            return
        if not sq.session_has_messages(s):
            return
        for entry in list(self.pending_session_attaches):
            ctx, timer = entry
            if ctx.sq is not sq:
                continue
            self.pending_session_attaches.remove(entry)
            if timer is not None:
                timer.cancel()
            if ctx.link.detached:
                continue
            self._bind_session(ctx, s)
            return

    def _bind_session(self, ctx: ReceiverCtx, s: SessionState) -> None:
        sq = ctx.sq
        s.owner = ctx
        ctx.session = s
        self._set_session_lock(s, _now() + sq.settings.lock_duration)
        ticks = DOTNET_EPOCH_TICKS + int(round(s.locked_until * 10_000_000))
        ctx.link.accept(
            source=Connection.echo_source(ctx.link, {SESSION_FILTER: s.id}),
            properties={LOCKED_UNTIL_UTC: typed(AMQPTypes.long, ticks)},
        )
        sq.receivers.append(ctx)
        sq.dispatch(s.id)

    def _set_session_lock(self, s: SessionState, until: float) -> None:
        s.locked_until = until
        if s.timer is not None:
            s.timer.cancel()
        owner = s.owner
        s.timer = self.call_later(until - _now(), lambda: self._session_lock_expired(s, owner))

    def _session_lock_expired(self, s: SessionState, owner: Optional[ReceiverCtx]) -> None:
        if s.owner is not owner or owner is None or s.locked_until > _now():
            return
        _LOG.info("session %r lock expired", s.id)
        owner.session_lost = True
        self._release_session(owner.sq, s)

    def _release_session(self, sq: SubQueue, s: SessionState) -> None:
        """Drop a session lock; messages still locked under it count a failed delivery."""
        s.owner = None
        if s.timer is not None:
            s.timer.cancel()
            s.timer = None
        s.locked_until = 0.0
        for msg in list(sq.messages.values()):
            if msg.session_id == s.id and msg.lock_token is not None:
                self._unlock(msg, count=True)
        sq.dispatch(s.id)

    def on_credit(self, link: Link) -> None:
        self.on_change()  # credit delivers: locks taken, receive-and-delete removals
        app = link.app
        if isinstance(app, ReceiverCtx):
            if app.session is not None:
                if not app.session_lost and app.session.owner is app:
                    app.sq._drain_to(app, app.session.heap)
            else:
                app.sq.dispatch()
        elif isinstance(app, _ResponseLink):
            app.flush()

    def on_detach(self, link: Link, remote_error: Any) -> None:
        self.on_change()
        app = link.app
        if isinstance(app, ReceiverCtx):
            sq = app.sq
            if app in sq.receivers:
                sq.receivers.remove(app)
            for entry in list(self.pending_session_attaches):
                if entry[0] is app:
                    self.pending_session_attaches.remove(entry)
                    if entry[1] is not None:
                        entry[1].cancel()
            s = app.session
            if s is not None and s.owner is app:
                self._release_session(sq, s)
            # Non-session locks stay until they expire, like the service: a client that vanished
            # gets its messages back (delivery count +1) only when the lock runs out.
        link.app = None

    # ------------------------------------------------------------------ incoming transfers
    def on_transfer(self, link: Link, delivery: IncomingDelivery) -> Any:
        self.on_change()
        app = link.app
        payload = delivery.payload
        if isinstance(app, _EntitySender):
            return self._on_send(link, app.entity, payload, delivery.message_format)
        if isinstance(app, (_ManagementRequests, _CbsRequests)):
            try:
                request = PyRequest.parse(payload)
            except Exception as exc:
                _LOG.warning("undecodable request on %r: %s", link, exc)
                return Rejected(error=AMQPError(condition=A_DECODE, description=f"Cannot decode request: {exc}"))
            if isinstance(app, _CbsRequests):
                response = self._cbs(link.connection, request)
            else:
                response = self._management(link, app, request)
            self._route_response(link, request, response)
            return Accepted()
        return Rejected(error=AMQPError(condition=A_NOT_ALLOWED, description="Transfers are not accepted on this link."))

    def _route_response(self, link: Link, request: "PyRequest", payload: bytes) -> None:
        conn = link.connection
        candidates = []
        node = link.target_address
        for session in conn.sessions.values():
            for other in session.links.values():
                if isinstance(other.app, _ResponseLink) and other.usable:
                    candidates.append(other)
        chosen = None
        for other in candidates:  # reply-to names the response link's target address
            if request.reply_to and other.target_address == request.reply_to:
                chosen = other
                break
        if chosen is None:
            for other in candidates:
                if other.source_address == node:
                    chosen = other
                    break
        if chosen is None:
            _LOG.warning("no response link for request on %r (reply-to %r)", link, request.reply_to)
            return
        chosen.app.queue(payload)

    def _on_send(self, link: Link, entity: Any, payload: bytes, message_format: int) -> Any:
        try:
            if message_format == BATCH_FORMAT:
                # Each data section of a batch is one whole encoded message (note "Send").
                inner = [raw for code, raw in codec.split_sections(payload) if code == codec.SECTION_DATA]
                parsed = [ParsedMessage.parse(bytes(codec.decode_value(raw))) for raw in inner]
            elif message_format == 0:
                parsed = [ParsedMessage.parse(payload)]
            else:
                return Rejected(error=AMQPError(condition=A_NOT_IMPLEMENTED, description=f"Unsupported message format {message_format:#x}."))
        except Exception as exc:
            _LOG.warning("rejecting undecodable message on %r: %s", link, exc)
            return Rejected(error=AMQPError(condition=A_DECODE, description=f"The message could not be decoded: {exc}"))
        settings = entity.settings
        if isinstance(entity, Queue) and settings.requires_session:
            for p in parsed:
                if not p.session_id:
                    return Rejected(
                        error=AMQPError(
                            condition=A_NOT_ALLOWED,
                            description="The SessionId was not set on a message, and it cannot be sent to the entity. "
                            "Entities that have session support enabled can only receive messages that have the "
                            "SessionId set to a valid value.",
                        )
                    )
        for p in parsed:
            self.accept_message(entity, p)
        return Accepted()

    # ------------------------------------------------------------------ enqueue
    def _is_duplicate(self, entity: Any, p: ParsedMessage) -> bool:
        settings = entity.settings
        if not settings.requires_duplicate_detection or not p.message_id:
            return False
        now = _now()
        window = settings.duplicate_window
        history = entity.dedupe
        if len(history) > 1000:
            for k in [k for k, t in history.items() if now - t > window]:
                del history[k]
        seen = history.get(p.message_id)
        if seen is not None and now - seen <= window:
            _LOG.info("%s: duplicate MessageId %r dropped", entity.path, p.message_id)
            return True
        history[p.message_id] = now
        return False

    def accept_message(self, entity: Any, p: ParsedMessage, *, scheduled_ms: Optional[int] = None, hops: int = 0) -> int:
        """Take a message sent to a queue or topic; returns its sequence number (0 if dropped).

        ``hops`` counts auto-forwarding steps (ForwardTo / ForwardDeadLetteredMessagesTo).
        """
        p.ensure_message_id()
        if self._is_duplicate(entity, p):
            return 0  # accepted but dropped (Microsoft docs, "Duplicate detection")
        seq = entity.next_seq()
        when_ms = scheduled_ms if scheduled_ms is not None else p.scheduled_ms
        msg = StoredMessage(p, seq)
        if when_ms is not None and when_ms / 1000.0 > _now():
            msg.state = STATE_SCHEDULED
            msg.scheduled_time = when_ms / 1000.0
            entity.scheduled[seq] = msg
            if isinstance(entity, Queue):
                msg.sq = entity.main
                entity.main.messages[seq] = msg
            msg.expiry_timer = self.call_later(msg.scheduled_time - _now(), lambda: self._activate_scheduled(entity, msg))
            return seq
        if when_ms is not None:
            msg.scheduled_time = when_ms / 1000.0
        self._activate(entity, msg, hops)
        return seq

    def _activate_scheduled(self, entity: Any, msg: StoredMessage) -> None:
        if entity.scheduled.pop(msg.seq, None) is None:
            return  # cancelled
        msg.expiry_timer = None
        if isinstance(entity, Queue):
            entity.main.messages.pop(msg.seq, None)
        msg.state = STATE_ACTIVE
        msg.enqueued_time = _now()
        self._activate(entity, msg)

    def _activate(self, entity: Any, msg: StoredMessage, hops: int = 0) -> None:
        if isinstance(entity, Topic):
            for sub in entity.subscriptions.values():
                if not sub.matches(msg.p):
                    continue
                if sub.settings.requires_session and not msg.session_id:
                    _LOG.warning("%s: message %d has no SessionId; not delivered to session subscription", sub.path, msg.seq)
                    continue
                copy = msg.copy_for(msg.seq)
                copy.enqueued_time = msg.enqueued_time
                copy.scheduled_time = msg.scheduled_time
                self._store(sub, copy, hops)
            return
        self._store(entity, msg, hops)

    def _store(self, entity: MessagingEntity, msg: StoredMessage, hops: int = 0) -> None:
        settings = entity.settings
        forward = settings.forward_to
        if forward and hops < MAX_FORWARD_HOPS:
            target = self._forward_target(entity, forward)
            if target is not None:
                self.accept_message(target, msg.p, hops=hops + 1)
                return
        sq = entity.main
        msg.sq = sq
        msg.state = STATE_ACTIVE
        sq.messages[msg.seq] = msg
        ttl = settings.default_ttl
        if msg.p.ttl_ms:
            ttl = msg.p.ttl_ms / 1000.0 if ttl is None else min(ttl, msg.p.ttl_ms / 1000.0)
        if ttl is not None:
            msg.expires_at = msg.enqueued_time + ttl
            msg.expiry_timer = self.call_later(msg.expires_at - _now(), lambda: self.expire(msg))
        if forward and hops >= MAX_FORWARD_HOPS:
            # Microsoft docs ("Chaining Service Bus entities with autoforwarding"): at most 4 hops;
            # a message that would take more is dead-lettered.
            self.dead_letter(msg, "MaxTransferHopCountExceeded", "The message exceeded the maximum number of forwarding hops.", hops=MAX_FORWARD_HOPS)
            return
        sq.make_available(msg)

    def _forward_target(self, entity: MessagingEntity, name: str) -> Any:
        try:
            target, kind, mgmt = self.resolve(name)
        except LookupError:
            _LOG.warning("%s: forward target %r does not exist; keeping the message", entity.path, name)
            return None
        if kind != "main" or mgmt or isinstance(target, Subscription):
            return None
        return target

    # ------------------------------------------------------------------ expiry / dead-lettering
    def expire(self, msg: StoredMessage) -> None:
        sq = msg.sq
        if sq is None or sq.messages.get(msg.seq) is not msg or sq.kind != "main":
            return
        if msg.lock_token is not None:
            msg.expired = True  # decided when the lock ends (the service never pulls a locked message)
            return
        settings = sq.settings
        if settings.dead_lettering_on_expiration:
            self.dead_letter(msg, "TTLExpiredException", "The message expired and was dead lettered.")
        else:
            self._remove(msg)

    def _remove(self, msg: StoredMessage) -> None:
        sq = msg.sq
        if msg.lock_token is not None:
            self.locks.pop(msg.lock_token, None)
        msg.cancel_timers()
        msg.lock_token = None
        msg.lock_link = None
        msg.queued = False
        if sq is not None:
            sq.messages.pop(msg.seq, None)

    def dead_letter(self, msg: StoredMessage, reason: Optional[str], description: Optional[str], hops: int = 0) -> None:
        sq = msg.sq
        assert sq is not None
        entity = sq.owner
        self._remove(msg)
        msg.set_dead_letter_properties(reason, description)
        msg.expires_at = None
        msg.expired = False
        msg.state = STATE_ACTIVE
        fwd = entity.settings.forward_dead_lettered_to
        if fwd and hops < MAX_FORWARD_HOPS:
            target = self._forward_target(entity, fwd)
            if target is not None:
                # x-opt-deadletter-source is set only for messages auto-forwarded out of a DLQ
                # (Microsoft docs, ServiceBusReceivedMessage.DeadLetterSource).
                p = _copy_parsed(msg.p, ap_raw=msg.ap_raw)
                p.dlq_source, p.dlq_reason, p.dlq_description = entity.path, reason, description
                self.accept_message(target, p, hops=hops + 1)
                return
        dlq = entity.dlq
        msg.sq = dlq
        dlq.messages[msg.seq] = msg
        dlq.make_available(msg)

    # ------------------------------------------------------------------ delivery & locks
    def deliver(self, ctx: ReceiverCtx, msg: StoredMessage) -> None:
        link = ctx.link
        sq = ctx.sq
        if link.receive_and_delete:
            payload = msg.render()
            tag = uuid.uuid4().bytes_le
            self._remove(msg)
            link.send(payload, tag, True)
            return
        token = uuid.uuid4()
        if ctx.session is not None:
            until = ctx.session.locked_until
        else:
            until = _now() + sq.settings.lock_duration
        self._lock(msg, token, until, link, timer=ctx.session is None)
        # Delivery tag = lock token in .NET GUID byte order (``_common/message.py`` lock_token).
        d = link.send(msg.render(locked_until=until), token.bytes_le, False, context=(msg, token))
        if d is None:  # could not send after all: undo
            self._unlock(msg, count=False)

    def _lock(self, msg: StoredMessage, token: uuid.UUID, until: float, link: Optional[Link], timer: bool) -> None:
        msg.lock_token = token
        msg.locked_until = until
        msg.lock_link = link
        msg.queued = False
        self.locks[token] = msg
        if msg.lock_timer is not None:
            msg.lock_timer.cancel()
            msg.lock_timer = None
        if timer:
            msg.lock_timer = self.call_later(until - _now(), lambda: self._lock_expired(msg, token))

    def _lock_expired(self, msg: StoredMessage, token: uuid.UUID) -> None:
        if msg.lock_token != token:
            return
        if msg.locked_until is not None and msg.locked_until > _now() + 0.001:
            msg.lock_timer = self.call_later(msg.locked_until - _now(), lambda: self._lock_expired(msg, token))
            return
        _LOG.info("%s: lock on message %d expired", msg.sq.path if msg.sq else "?", msg.seq)
        self._unlock(msg, count=True)

    def _drop_lock(self, msg: StoredMessage) -> None:
        if msg.lock_token is not None:
            self.locks.pop(msg.lock_token, None)
        if msg.lock_timer is not None:
            msg.lock_timer.cancel()
            msg.lock_timer = None
        msg.lock_token = None
        msg.locked_until = None
        msg.lock_link = None

    def _unlock(self, msg: StoredMessage, count: bool) -> None:
        """End a lock. ``count``: the delivery failed (abandon, lock expiry) rather than released."""
        self._drop_lock(msg)
        sq = msg.sq
        if sq is None or sq.messages.get(msg.seq) is not msg:
            return
        if count:
            msg.delivery_count += 1
            # Microsoft docs (dead-letter queues): once DeliveryCount exceeds MaxDeliveryCount
            # the message moves to the DLQ with reason MaxDeliveryCountExceeded. Not in sub-queues.
            if sq.kind == "main" and msg.delivery_count >= sq.settings.max_delivery_count:
                self.dead_letter(
                    msg,
                    "MaxDeliveryCountExceeded",
                    f"Message could not be consumed after {sq.settings.max_delivery_count} delivery attempts.",
                )
                return
        if msg.expired or (sq.kind == "main" and msg.expires_at is not None and msg.expires_at <= _now()):
            msg.expired = False
            self.expire(msg)
            return
        sq.make_available(msg)

    def _lock_valid(self, msg: Optional[StoredMessage], token: uuid.UUID) -> bool:
        return (
            msg is not None
            and msg.lock_token == token
            and msg.locked_until is not None
            and msg.locked_until > _now()
            and msg.sq is not None
            and msg.sq.messages.get(msg.seq) is msg
        )

    def on_disposition(self, delivery: OutgoingDelivery, state: Any, settled: bool, raw_state: Optional[bytes] = None) -> Any:
        self.on_change()
        msg, token = delivery.context if delivery.context else (None, None)
        if msg is None:
            return None
        outcome = next(iter(state)) if isinstance(state, dict) and state else None
        if outcome is None or outcome == "received":
            return None  # not terminal
        ctx = delivery.link.app if isinstance(delivery.link.app, ReceiverCtx) else None
        session_lost = ctx is not None and ctx.session is not None and (ctx.session_lost or ctx.session.owner is not ctx)
        if not self._lock_valid(msg, token) or session_lost:
            if outcome == "released" or settled:
                return None
            cond, text = (E_SESSION_LOCK_LOST, _SESSION_LOCK_LOST_TEXT) if session_lost else (E_LOCK_LOST, _LOCK_LOST_TEXT)
            return Rejected(error=AMQPError(condition=cond, description=text))
        if outcome == "accepted":
            self._complete(msg)
            return Accepted()
        if outcome == "released":
            self._unlock(msg, count=False)
            return Released()
        if outcome == "modified":
            fields = (list(state["modified"] or []) + [None] * 3)[:3]
            undeliverable_here = bool(fields[1])
            # propertiesToModify of abandon/defer travel as the outcome's message-annotations.
            msg.modify_properties(raw_field(raw_state, 2) if raw_state else None)
            if undeliverable_here:
                # Defer: the Python SDK sends modified(delivery-failed, undeliverable-here) (note
                # table), @azure/service-bus modified(undeliverable-here) alone.
                self._defer(msg)
            else:
                # Abandon. Service Bus counts every abandon as a delivery (DeliveryCount +1, then
                # MaxDeliveryCount dead-letters; Microsoft docs "Message transfers, locks, and
                # settlement", "Service Bus dead-letter queues"), whatever delivery-failed says:
                # the Python SDK sets it, @azure/service-bus (rhea) does not. Only `released`
                # gives a message back without counting.
                self._unlock(msg, count=True)
            return Modified(delivery_failed=fields[0], undeliverable_here=fields[1], message_annotations=None)
        if outcome == "rejected":
            reason = description = None
            err = (state["rejected"] or [None])[0] if state["rejected"] else None
            if err:
                err = (list(err) + [None] * 3)[:3]
                info = err[2] or {}
                for k, v in info.items():
                    key = _text(k)
                    if key == DLQ_REASON:
                        reason = _text(v)
                    elif key == DLQ_DESCRIPTION:
                        description = _text(v)
                if description is None and err[1] is not None:
                    description = _text(err[1])
                # Other entries of the error's info are the client's propertiesToModify.
                raw_error = raw_field(raw_state, 0) if raw_state else None
                msg.modify_properties(raw_field(raw_error, 2) if raw_error else None, skip=(DLQ_REASON, DLQ_DESCRIPTION))
            self.dead_letter(msg, reason, description)
            # A successful dead-letter is echoed as a plain `rejected`: an echoed error would make
            # the SDK raise (``_pyamqp/receiver.py`` check_disposition_outcome).
            return Rejected(error=None)
        return None

    def _complete(self, msg: StoredMessage) -> None:
        self._remove(msg)

    def _defer(self, msg: StoredMessage) -> None:
        self._unlock_keep(msg)
        msg.state = STATE_DEFERRED

    def _unlock_keep(self, msg: StoredMessage) -> None:
        self._drop_lock(msg)
        msg.queued = False

    # ------------------------------------------------------------------ CBS
    def _cbs(self, conn: Connection, req: "PyRequest") -> bytes:
        props = req.app_props
        op = _text(props.get(b"operation"))
        if op != "put-token":
            return _response(req, 400, f"Unsupported CBS operation {op!r}.", status_key="status-code", desc_key="status-description")
        token = _text(req.body) or ""
        audience = _text(props.get(b"name")) or ""
        status, text, grant = self._check_token(token, audience)
        if grant is not None:
            now = _now()
            grants = [g for g in conn.app.get("auth", []) if g[1] > now]  # clients refresh tokens
            grants.append(grant)
            conn.app["auth"] = grants
        # CBS uses status-code/status-description (``_pyamqp/cbs.py``); correlation-id echoes the
        # request's message-id with its AMQP type (``_response``).
        return _response(req, status, text, status_key="status-code", desc_key="status-description")

    # ------------------------------------------------------------------ management
    def _management(self, link: Link, target: "_ManagementRequests", req: "PyRequest") -> bytes:
        op = _text(req.app_props.get(b"operation")) or ""
        handler = _MGMT_OPS.get(op)
        if handler is None:
            return _response(req, 501, f"The operation {op!r} is not supported by the stand-in.", condition=A_NOT_IMPLEMENTED)
        body = req.body if isinstance(req.body, dict) else {}
        try:
            return handler(self, link, target, req, body)
        except _MgmtError as exc:
            return _response(req, exc.status, exc.text, condition=exc.condition)
        except Exception as exc:
            _LOG.exception("management operation %s failed", op)
            return _response(req, 500, f"Internal error: {exc}", condition=A_INTERNAL)

    def _mgmt_subqueue(self, target: "_ManagementRequests") -> SubQueue:
        entity = target.entity
        if isinstance(entity, Topic):
            raise _MgmtError(400, "This operation is not supported on a topic.", A_NOT_ALLOWED)
        return entity.subqueue(target.kind)

    def _session_for_request(self, link: Link, sq: SubQueue, body: Dict[Any, Any], required: bool) -> Optional[SessionState]:
        sid = _text(body.get(b"session-id"))
        if sid is None:
            if required:
                raise _MgmtError(400, "session-id is required.", E_ARGUMENT)
            return None
        if not sq.session_enabled:
            raise _MgmtError(400, "The entity does not require sessions.", A_NOT_ALLOWED)
        s = sq.sessions.get(sid)
        if s is None or not s.locked() or s.owner is None or s.owner.link.connection is not link.connection:
            raise _MgmtError(410, _SESSION_LOCK_LOST_TEXT, E_SESSION_LOCK_LOST)
        return s

    def _locked(self, sq, body):
        """Yield (token, message) for each lock token of a request, in order; a lock not held on this entity
        raises when its turn comes."""
        for t in body.get(b"lock-tokens") or []:
            token = t if isinstance(t, uuid.UUID) else uuid.UUID(str(_text(t)))
            msg = self.locks.get(token)
            if not self._lock_valid(msg, token) or msg.sq.owner is not sq.owner:
                raise _MgmtError(410, _LOCK_LOST_TEXT, E_LOCK_LOST)
            yield token, msg

    def op_renew_lock(self, link, target, req, body) -> bytes:
        sq = self._mgmt_subqueue(target)
        expirations = []
        for token, msg in self._locked(sq, body):
            if sq.session_enabled:
                raise _MgmtError(400, "Renewing message lock is not valid for session messages; renew the session lock.", A_NOT_ALLOWED)
            until = _now() + sq.settings.lock_duration
            self._lock(msg, token, until, msg.lock_link, timer=True)
            expirations.append(typed(AMQPTypes.timestamp, _ms(until)))
        return _response(req, 200, "OK", value={"expirations": typed(AMQPTypes.array, expirations)} if expirations else {})

    def op_peek(self, link, target, req, body) -> bytes:
        entity = target.entity
        start = int(body.get(b"from-sequence-number") or 0)
        count = int(body.get(b"message-count") or 1)
        s_id = _text(body.get(b"session-id"))
        if isinstance(entity, Topic):
            raise _MgmtError(400, "Cannot peek a topic.", A_NOT_ALLOWED)
        sq = entity.subqueue(target.kind)
        msgs = [m for seq, m in sorted(sq.messages.items()) if seq >= start]
        if s_id is not None:
            msgs = [m for m in msgs if m.session_id == s_id]
        msgs = msgs[: max(0, count)]
        if not msgs:
            return _response(req, 204, "No messages")  # the SDK treats 204 as "nothing" (mgmt_handlers.peek_op)
        items = [{"message": typed(AMQPTypes.binary, m.render())} for m in msgs]
        return _response(req, 200, "OK", value={"messages": _array_of_maps(items)})

    def op_receive_by_sequence(self, link, target, req, body) -> bytes:
        sq = self._mgmt_subqueue(target)
        seqs = [int(s) for s in (body.get(b"sequence-numbers") or [])]
        mode = body.get(b"receiver-settle-mode")
        peek_lock = mode is None or int(mode) == 1  # ReceiverSettleMode.Second = PEEK_LOCK
        s = self._session_for_request(link, sq, body, required=False) if sq.session_enabled else None
        found: List[StoredMessage] = []
        missing = []
        for seq in seqs:
            msg = sq.messages.get(seq)
            if msg is None or msg.state != STATE_DEFERRED or msg.lock_token is not None:
                missing.append(seq)
            elif s is not None and msg.session_id != s.id:
                missing.append(seq)
            else:
                found.append(msg)
        if missing:
            raise _MgmtError(
                404,
                "Failed to lock one or more specified messages. Either the message is not deferred, "
                f"or it is locked, or it does not exist. Missing sequence numbers: {', '.join(map(str, missing))}",
                E_NOT_FOUND_MSG,
            )
        items = []
        for msg in found:
            if peek_lock:
                token = uuid.uuid4()
                until = s.locked_until if s is not None else _now() + sq.settings.lock_duration
                self._lock(msg, token, until, None, timer=s is None)
                items.append({"message": typed(AMQPTypes.binary, msg.render(locked_until=until)), "lock-token": typed(AMQPTypes.uuid, token)})
            else:
                items.append({"message": typed(AMQPTypes.binary, msg.render())})
                self._remove(msg)
        return _response(req, 200, "OK", value={"messages": _array_of_maps(items)})

    def op_update_disposition(self, link, target, req, body) -> bytes:
        sq = self._mgmt_subqueue(target)
        status = (_text(body.get(b"disposition-status")) or "").lower()
        if sq.session_enabled:
            self._session_for_request(link, sq, body, required=False)  # refuses a request without the session lock
        msgs = [msg for _, msg in self._locked(sq, body)]
        to_modify = req.raw_entry("properties-to-modify")  # as in a modified outcome (on_disposition)
        for msg in msgs:
            if status in ("abandoned", "defered", "deferred", "suspended"):
                msg.modify_properties(to_modify, skip=(DLQ_REASON, DLQ_DESCRIPTION))
            if status == "completed":
                self._complete(msg)
            elif status == "abandoned":
                self._unlock(msg, count=True)  # a deferred message goes back to deferred
            elif status in ("defered", "deferred"):
                self._defer(msg)
            elif status == "suspended":
                self.dead_letter(msg, _text(body.get(b"deadletter-reason")), _text(body.get(b"deadletter-description")))
            else:
                raise _MgmtError(400, f"Unknown disposition-status {status!r}.", E_ARGUMENT)
        return _response(req, 200, "OK", value={})

    def op_schedule(self, link, target, req, body) -> bytes:
        entity = target.entity
        if target.kind != "main" or isinstance(entity, Subscription):
            raise _MgmtError(400, "Messages can only be scheduled on a queue or topic.", A_NOT_ALLOWED)
        seqs = []
        for item in body.get(b"messages") or []:
            raw = item.get(b"message")
            p = ParsedMessage.parse(bytes(raw))
            if isinstance(entity, Queue) and entity.settings.requires_session and not p.session_id:
                raise _MgmtError(400, "The SessionId was not set on a message, and it cannot be sent to the entity.", A_NOT_ALLOWED)
            when = p.scheduled_ms
            if when is None:
                raise _MgmtError(400, "The message has no ScheduledEnqueueTimeUtc.", E_ARGUMENT)
            seqs.append(self.accept_message(entity, p, scheduled_ms=when))
        value = {"sequence-numbers": typed(AMQPTypes.array, [typed(AMQPTypes.long, s) for s in seqs])} if seqs else {}
        return _response(req, 200, "OK", value=value)

    def op_cancel_scheduled(self, link, target, req, body) -> bytes:
        entity = target.entity
        seqs = [int(s) for s in (body.get(b"sequence-numbers") or [])]
        scheduled = entity.scheduled if hasattr(entity, "scheduled") else {}
        missing = [s for s in seqs if s not in scheduled]
        if missing:
            # Real namespaces answer "Messages not found. Missing sequence numbers: ..."
            # (github.com/Azure/azure-service-bus issue 239).
            raise _MgmtError(404, "Messages not found. Missing sequence numbers: " + ", ".join(map(str, missing)), E_NOT_FOUND_MSG)
        for s in seqs:
            msg = scheduled.pop(s)
            msg.cancel_timers()
            if isinstance(entity, Queue):
                entity.main.messages.pop(s, None)
        return _response(req, 200, "OK", value={})

    def op_get_session_state(self, link, target, req, body) -> bytes:
        sq = self._mgmt_subqueue(target)
        s = self._session_for_request(link, sq, body, required=True)
        state = typed(AMQPTypes.binary, s.state) if s.state is not None else None
        return _response(req, 200, "OK", value={"session-state": state})

    def op_set_session_state(self, link, target, req, body) -> bytes:
        sq = self._mgmt_subqueue(target)
        s = self._session_for_request(link, sq, body, required=True)
        state = body.get(b"session-state")
        s.state = bytes(state) if state is not None else None
        return _response(req, 200, "OK", value={})

    def op_renew_session_lock(self, link, target, req, body) -> bytes:
        sq = self._mgmt_subqueue(target)
        s = self._session_for_request(link, sq, body, required=True)
        until = _now() + sq.settings.lock_duration
        self._set_session_lock(s, until)
        # Messages locked under the session share its lock (the SDK reads no per-message expiry).
        for msg in sq.messages.values():
            if msg.session_id == s.id and msg.lock_token is not None:
                msg.locked_until = until
        return _response(req, 200, "OK", value={"expiration": typed(AMQPTypes.timestamp, _ms(until))})

    def op_get_message_sessions(self, link, target, req, body) -> bytes:
        sq = self._mgmt_subqueue(target)
        ids = [sid for sid, s in sq.sessions.items() if s.state is not None or any(m.session_id == sid for m in sq.messages.values())]
        if not ids:
            return _response(req, 204, "No sessions")
        value = {"skip": typed(AMQPTypes.int, 0), "sessions-ids": typed(AMQPTypes.array, [typed(AMQPTypes.string, i) for i in ids])}
        return _response(req, 200, "OK", value=value)

    # ------------------------------------------------------------------ subscription rules
    # Microsoft docs, "AMQP 1.0 in Azure Service Bus: request-response-based operations": Add Rule,
    # Remove Rule, Get Rules. The Python SDK manages rules over HTTP; @azure/service-bus's
    # ServiceBusRuleManager (and .NET's) use these operations on <topic>/Subscriptions/<sub>/$management.
    @staticmethod
    def _rule_subscription(target: "_ManagementRequests") -> "Subscription":
        if not isinstance(target.entity, Subscription) or target.kind != "main":
            raise _MgmtError(400, "Rules exist only on topic subscriptions.", A_NOT_ALLOWED)
        return target.entity

    def op_add_rule(self, link, target, req, body) -> bytes:
        sub = self._rule_subscription(target)
        name = _text(body.get(b"rule-name"))
        desc = body.get(b"rule-description") or {}
        if not name or not isinstance(desc, dict):
            raise _MgmtError(400, "rule-name and rule-description are required.", E_ARGUMENT)
        if any(r.name.lower() == name.lower() for r in sub.rules):
            raise _MgmtError(409, f"The messaging entity '{sub.path}/Rules/{name}' already exists.", E_ALREADY_EXISTS)
        action = desc.get(b"sql-rule-action")
        if isinstance(action, dict) and _text(action.get(b"expression")):
            raise _MgmtError(501, "SQL rule actions are not supported by the stand-in.", A_NOT_IMPLEMENTED)
        sql, corr = desc.get(b"sql-filter"), desc.get(b"correlation-filter")
        if isinstance(sql, dict):
            expr = _text(sql.get(b"expression")) or ""
            try:
                rule = RuleSpec.from_config({"Name": name, "Properties": {"FilterType": "Sql", "SqlFilter": {"SqlExpression": expr}}})
            except ValueError as exc:
                raise _MgmtError(501, str(exc), A_NOT_IMPLEMENTED) from None
        elif isinstance(corr, dict):
            fields = {}
            for key, value in corr.items():
                field_name = _CORRELATION_FIELDS.get(_text(key) or "")
                if field_name is not None and value is not None:
                    fields[field_name] = _text(value)
            props = corr.get(b"properties") or {}
            app = {(_text(k) or ""): (_text(v) if isinstance(v, (bytes, bytearray)) else v) for k, v in props.items()}
            rule = RuleSpec(name=name, kind="correlation", correlation=fields, properties=app)
        else:
            raise _MgmtError(400, "The rule-description needs a sql-filter or a correlation-filter.", E_ARGUMENT)
        sub.rules.append(rule)
        return _response(req, 200, "OK", value={})

    def op_remove_rule(self, link, target, req, body) -> bytes:
        sub = self._rule_subscription(target)
        name = _text(body.get(b"rule-name")) or ""
        for rule in list(sub.rules):
            if rule.name.lower() == name.lower():
                sub.rules.remove(rule)
                return _response(req, 200, "OK", value={})
        raise _MgmtError(404, f"The messaging entity '{self.namespace}:{sub.path}/Rules/{name}' could not be found.", A_NOT_FOUND)

    def op_get_rules(self, link, target, req, body) -> bytes:
        sub = self._rule_subscription(target)
        skip = int(body.get(b"skip") or 0)
        top = body.get(b"top")
        rules = sub.rules[skip:] if top is None else sub.rules[skip : skip + int(top)]
        if not rules:
            return _response(req, 204, "No rules")
        return _response(req, 200, "OK", value={"rules": _array_of_maps([{"rule-description": _describe_rule(r)} for r in rules])})

    # ------------------------------------------------------------------ kept state (persistence.py)
    def dump_state(self) -> Dict[str, Any]:
        """Everything a restart must not lose: messages of every sub-queue (scheduled and deferred included) with
        their delivery counts and dead-letter reasons, the last sequence number, the duplicate-detection history
        still inside its window, session states. Rules added at run time are not kept: Config.json defines them."""
        now = _now()

        def history(e: Any) -> Dict[str, float]:
            window = e.settings.duplicate_window
            return {mid: t for mid, t in e.dedupe.items() if now - t <= window}

        def entity(e: MessagingEntity) -> Dict[str, Any]:
            return {
                "messages": [m.record() for sq in (e.main, e.dlq, e.tdlq) for m in sq.messages.values()],
                "session_states": {sid: base64.b64encode(s.state).decode("ascii")
                                   for sid, s in e.main.sessions.items() if s.state is not None},
            }

        return {
            "version": STATE_VERSION, "namespace": self.namespace, "saved_at": now,
            "queues": {q.name: {"last_sequence_number": q.last_seq, "duplicate_detection": history(q), **entity(q)}
                       for q in self.queues.values()},
            "topics": {t.name: {"last_sequence_number": t.last_seq, "duplicate_detection": history(t),
                                "scheduled": [m.record() for m in t.scheduled.values()],
                                "subscriptions": {s.name: entity(s) for s in t.subscriptions.values()}}
                       for t in self.topics.values()},
        }

    def load_state(self, doc: Dict[str, Any]) -> int:
        """Take back what ``dump_state`` kept; returns how many messages came back. Entities the configuration
        no longer has are skipped (with a warning). A message that was locked when the state was saved lost its
        lock with the stand-in: it counts one more delivery, as an expired lock does in Service Bus, and so may
        reach MaxDeliveryCount and move to the dead-letter queue."""
        if doc.get("version") != STATE_VERSION:
            raise ValueError(f"unknown state version {doc.get('version')!r} (this stand-in writes {STATE_VERSION})")
        lost_locks: List[StoredMessage] = []
        count = 0
        for name, data in (doc.get("queues") or {}).items():
            q = self.queues.get(name.lower())
            if q is None:
                _LOG.warning("kept state has queue %r, which the configuration no longer has: %d message(s) dropped",
                             name, len(data.get("messages") or []))
                continue
            q.last_seq = max(q.last_seq, int(data.get("last_sequence_number") or 0))
            q.dedupe.update(data.get("duplicate_detection") or {})
            count += self._restore_entity(q, data, lost_locks)
        for name, data in (doc.get("topics") or {}).items():
            t = self.topics.get(name.lower())
            if t is None:
                _LOG.warning("kept state has topic %r, which the configuration no longer has: dropped", name)
                continue
            t.last_seq = max(t.last_seq, int(data.get("last_sequence_number") or 0))
            t.dedupe.update(data.get("duplicate_detection") or {})
            for rec in data.get("scheduled") or []:
                msg = StoredMessage.restore(rec)
                t.scheduled[msg.seq] = msg
                msg.expiry_timer = self.call_later((msg.scheduled_time or 0) - _now(),
                                                   lambda m=msg: self._activate_scheduled(t, m))
                count += 1
            for sub_name, sub_data in (data.get("subscriptions") or {}).items():
                sub = t.subscriptions.get(sub_name.lower())
                if sub is None:
                    _LOG.warning("kept state has subscription %s/%s, which the configuration no longer has: dropped",
                                 name, sub_name)
                    continue
                count += self._restore_entity(sub, sub_data, lost_locks)
        for msg in lost_locks:
            self._unlock(msg, count=True)
        return count

    def _restore_entity(self, entity: MessagingEntity, data: Dict[str, Any], lost_locks: List[StoredMessage]) -> int:
        records = data.get("messages") or []
        for rec in records:
            msg = StoredMessage.restore(rec)
            sq = entity.subqueue(rec.get("sub_queue") or "main")
            msg.sq = sq
            sq.messages[msg.seq] = msg
            if msg.state == STATE_SCHEDULED:
                entity.scheduled[msg.seq] = msg
                msg.expiry_timer = self.call_later((msg.scheduled_time or 0) - _now(),
                                                   lambda m=msg: self._activate_scheduled(entity, m))
                continue
            if sq.kind == "main" and msg.expires_at is not None:
                msg.expiry_timer = self.call_later(msg.expires_at - _now(), lambda m=msg: self.expire(m))
            if rec.get("locked"):
                lost_locks.append(msg)
            elif msg.state == STATE_ACTIVE:
                sq.make_available(msg, dispatch=False)
        for sid, state in (data.get("session_states") or {}).items():
            entity.main.session(sid).state = base64.b64decode(state)
        return len(records)

    # ------------------------------------------------------------------ inspection
    def snapshot(self) -> Dict[str, Any]:
        def entity_view(e: MessagingEntity) -> Dict[str, Any]:
            main = e.main.snapshot()
            dlq = e.dlq.snapshot()
            return {
                "active_count": main["active_count"],
                "locked_count": main["locked_count"],
                "scheduled_count": len(e.scheduled) if isinstance(e, Queue) else 0,
                "deferred_count": main["deferred_count"],
                "dead_letter_count": len(e.dlq.messages),
                "transfer_dead_letter_count": len(e.tdlq.messages),
                # Scheduled messages of a queue sit in its main sub-queue (peek shows them too).
                "messages": main["messages"],
                "dead_letter_messages": dlq["messages"],
                "sessions": main["sessions"],
            }

        out: Dict[str, Any] = {"namespace": self.namespace, "queues": {}, "topics": {}}
        for q in self.queues.values():
            out["queues"][q.name] = entity_view(q)
        for t in self.topics.values():
            out["topics"][t.name] = {
                "scheduled_count": len(t.scheduled),
                "scheduled_messages": [m.describe() for m in sorted(t.scheduled.values(), key=lambda m: m.seq)],
                "subscriptions": {s.name: entity_view(s) for s in t.subscriptions.values()},
            }
        return out


_MGMT_OPS: Dict[str, Callable[..., bytes]] = {
    VENDOR + "renew-lock": Broker.op_renew_lock,
    VENDOR + "peek-message": Broker.op_peek,
    VENDOR + "receive-by-sequence-number": Broker.op_receive_by_sequence,
    VENDOR + "update-disposition": Broker.op_update_disposition,
    VENDOR + "schedule-message": Broker.op_schedule,
    VENDOR + "cancel-scheduled-message": Broker.op_cancel_scheduled,
    VENDOR + "get-session-state": Broker.op_get_session_state,
    VENDOR + "set-session-state": Broker.op_set_session_state,
    VENDOR + "renew-session-lock": Broker.op_renew_session_lock,
    VENDOR + "get-message-sessions": Broker.op_get_message_sessions,
    VENDOR + "add-rule": Broker.op_add_rule,
    VENDOR + "remove-rule": Broker.op_remove_rule,
    VENDOR + "enumerate-rules": Broker.op_get_rules,
}

# add-rule's correlation-filter keys -> the filter fields of RuleSpec (as in Config.json).
_CORRELATION_FIELDS = {
    "correlation-id": "CorrelationId",
    "message-id": "MessageId",
    "to": "To",
    "reply-to": "ReplyTo",
    "label": "Label",
    "session-id": "SessionId",
    "reply-to-session-id": "ReplyToSessionId",
    "content-type": "ContentType",
}

# Descriptors of rule descriptions in Get Rules answers (Microsoft docs, request-response operations).
# SQL filters other than 1=1 / 1=0 are refused at add-rule, so these cover every rule the stand-in holds.
_D_RULE_DESCRIPTION = 0x0000013700000004
_D_EMPTY_RULE_ACTION = 0x0000013700000005
_D_TRUE_FILTER = 0x0000001370000007
_D_FALSE_FILTER = 0x0000001370000008
_D_CORRELATION_FILTER = 0x0000001370000009


def _described(code: int, fields: List[Any]) -> Dict[str, Any]:
    return typed(AMQPTypes.described, (typed(AMQPTypes.ulong, code), typed(AMQPTypes.list, fields)))


def _describe_rule(rule: RuleSpec) -> Dict[str, Any]:
    if rule.kind == "correlation":
        c = rule.correlation

        def text(*keys: str) -> Any:
            for key in keys:
                if c.get(key) not in (None, ""):
                    return typed(AMQPTypes.string, str(c[key]))
            return None

        filt = _described(
            _D_CORRELATION_FILTER,
            [
                text("CorrelationId"), text("MessageId"), text("To"), text("ReplyTo"), text("Label", "Subject"),
                text("SessionId"), text("ReplyToSessionId"), text("ContentType"),
                typed(AMQPTypes.map, dict(rule.properties)),
            ],
        )
    else:
        filt = _described(_D_FALSE_FILTER if rule.kind == "false" else _D_TRUE_FILTER, [])
    return _described(_D_RULE_DESCRIPTION, [filt, _described(_D_EMPTY_RULE_ACTION, []), typed(AMQPTypes.string, rule.name)])


# --------------------------------------------------------------------------------------------
# link contexts and request/response helpers
# --------------------------------------------------------------------------------------------
class _EntitySender:
    def __init__(self, entity: Any):
        self.entity = entity


class _CbsRequests:
    pass


class _ManagementRequests:
    def __init__(self, entity: Any, kind: str):
        self.entity = entity
        self.kind = kind


class _ResponseLink:
    """A link we send responses on ($cbs or $management); queues until the client gives credit."""

    def __init__(self, link: Link, broker: Broker):
        self.link = link
        self.broker = broker
        self.outbox: List[bytes] = []
        self._tags = itertools.count(1)

    def queue(self, payload: bytes) -> None:
        self.outbox.append(payload)
        self.flush()

    def flush(self) -> None:
        while self.outbox and self.link.can_send():
            payload = self.outbox.pop(0)
            self.link.send(payload, next(self._tags).to_bytes(4, "big"), True)


class _MgmtError(Exception):
    def __init__(self, status: int, text: str, condition: bytes):
        super().__init__(text)
        self.status = status
        self.text = text
        self.condition = condition


class PyRequest:
    """A decoded request message on $cbs or $management."""

    def __init__(self, message_id: Any, reply_to: Optional[str], app_props: Dict[Any, Any], body: Any, body_raw: Optional[bytes] = None):
        self.message_id = message_id
        self.reply_to = reply_to
        self.app_props = app_props
        self.body = body
        self.body_raw = body_raw  # the encoded amqp-value, for entries whose AMQP types matter

    def raw_entry(self, key: str) -> Optional[bytes]:
        """The still-encoded value of ``key`` in a map body (None when absent)."""
        try:
            for k, v in codec.map_pairs(self.body_raw):
                if _text(codec.decode_value(k)) == key:
                    return v
        except codec.AmqpDecodeError:
            pass
        return None

    @classmethod
    def parse(cls, payload: bytes) -> "PyRequest":
        message_id = None
        reply_to = None
        app_props: Dict[Any, Any] = {}
        body: Any = None
        body_raw: Optional[bytes] = None
        for code, raw in codec.split_sections(payload):
            if code == codec.SECTION_PROPERTIES:
                items = codec.list_items(raw)
                # Kept with its AMQP type: the response's correlation-id must be the same value of the
                # same type (uuid from the Python SDK, string from rhea-based clients).
                message_id = codec.message_id_value(items[0]) if items else None
                reply_to = _text(codec.decode_value(items[4])) if len(items) > 4 else None
            elif code == codec.SECTION_APPLICATION_PROPERTIES:
                app_props = {bytes(k) if isinstance(k, (bytes, bytearray)) else k: v for k, v in (codec.decode_value(raw) or {}).items()}
            elif code == codec.SECTION_VALUE:
                body = codec.decode_value(raw)
                body_raw = raw
        return cls(message_id, reply_to, app_props, body, body_raw)


def _response(
    req: PyRequest,
    status: int,
    description: str,
    *,
    value: Any = None,
    condition: Optional[bytes] = None,
    status_key: str = "statusCode",
    desc_key: str = "statusDescription",
) -> bytes:
    # $management answers with statusCode/statusDescription and, on failure, errorCondition
    # (``_common/mgmt_handlers.py``, MGMT_RESPONSE_MESSAGE_ERROR_CONDITION).
    app: Dict[str, Any] = {status_key: typed(AMQPTypes.int, status), desc_key: typed(AMQPTypes.string, description)}
    if condition is not None:
        app["errorCondition"] = typed(AMQPTypes.symbol, condition)
    # AMQP 1.0 messaging 3.2.4 / Service Bus request-response: the reply's correlation-id is the
    # request's message-id, same value and same type. The Python SDK sends a uuid and matches it as
    # a uuid; @azure/core-amqp sends a string and looks it up in a Map, so a binary never matches.
    props = Properties(message_id=uuid.uuid4(), correlation_id=req.message_id)
    out = bytearray()
    encode_payload(out, PyMessage(properties=props, application_properties=app, value=value))
    return bytes(out)


def _array_of_maps(items: List[Dict[str, Any]]) -> Any:
    # The service answers with an AMQP array of maps (Microsoft docs, "AMQP request-response
    # operations"); an empty array cannot carry its element constructor, so send a list then.
    if not items:
        return []
    return typed(AMQPTypes.array, [typed(AMQPTypes.map, item) for item in items])


def _copy_parsed(p: ParsedMessage, ap_raw: Optional[bytes]) -> ParsedMessage:
    c = ParsedMessage()
    for name in ParsedMessage.__slots__:
        setattr(c, name, getattr(p, name))
    c.ma_pairs = list(p.ma_pairs)
    c.ap_raw = ap_raw
    return c
