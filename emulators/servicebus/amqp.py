"""A small AMQP 1.0 server-side connection engine on asyncio.

Scope: what an Azure Service Bus namespace needs to serve the azure-servicebus 7.x client (and
other well-behaved AMQP 1.0 clients): SASL ANONYMOUS, open/begin/attach/flow/transfer/
disposition/detach/end/close, multi-frame transfers in both directions, link credit (including
drain and echo), session windows, and heartbeats when the peer asks for them.

Frames and performatives are encoded/decoded with the codec bundled in azure-servicebus 7.15.0
(``azure/servicebus/_pyamqp``). Message payloads are handed to the application as raw bytes
together with the transfer's ``message-format`` -- the one thing python-qpid-proton's binding
does not expose and Service Bus batches need (format 0x80013700, see the note).

Everything here runs on one event loop thread. Application callbacks (``handler``) run inline;
an exception in one is logged and turned into a link detach with ``amqp:internal-error``, never
into a dead server.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import struct
import time
from typing import Any, Callable, Dict, List, Optional

from azure.servicebus._pyamqp import performatives as P
from azure.servicebus._pyamqp._decode import decode_frame
from azure.servicebus._pyamqp._encode import encode_frame
from azure.servicebus._pyamqp.endpoints import Source, Target
from azure.servicebus._pyamqp.error import AMQPError
from azure.servicebus._pyamqp.outcomes import Rejected

from .codec import list_items, skip_value

_LOG = logging.getLogger("emulators.servicebus.amqp")

SASL_HEADER = b"AMQP\x03\x01\x00\x00"
AMQP_HEADER = b"AMQP\x00\x01\x00\x00"

# Frame size we accept. Service Bus advertises larger frames; 64 KiB keeps buffers small and is
# what the SDK itself proposes by default (``_pyamqp/constants.py`` MAX_FRAME_SIZE_BYTES is 1 MiB
# for its own open, but it honours ours when splitting transfers, ``session.py``).
MAX_FRAME_SIZE = 65536
MIN_MAX_FRAME_SIZE = 512  # AMQP 1.0 core 2.7.1: frame size before/without open
CHANNEL_MAX = 4999
HANDLE_MAX = 255
INCOMING_WINDOW = 5000
OUTGOING_WINDOW = 5000
RX_LINK_CREDIT = 1000  # credit granted to client senders, topped up at half

ROLE_SENDER = False  # AMQP role: false = sender, true = receiver
ROLE_RECEIVER = True
SND_UNSETTLED, SND_SETTLED, SND_MIXED = 0, 1, 2
RCV_FIRST, RCV_SECOND = 0, 1

_UINT_MASK = 0xFFFFFFFF
_conn_ids = itertools.count(1)


def _s(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _pad(fields: Optional[List[Any]], n: int) -> List[Any]:
    fields = list(fields or [])
    return (fields + [None] * n)[:n]


def raw_field(performative: bytes, index: int) -> Optional[bytes]:
    """The still-encoded field ``index`` of an encoded performative (None when absent).

    The SDK decoder maps string, symbol and binary all to ``bytes``; where the broker must keep what
    the peer sent with its types (properties to modify in a disposition's outcome), it reads this.
    """
    try:
        items = list_items(performative[skip_value(performative, 1):]) if performative[:1] == b"\x00" else []
    except Exception:  # malformed: the decoded fields already passed, so treat as absent
        return None
    return items[index] if len(items) > index else None


class ProtocolError(Exception):
    def __init__(self, condition: bytes, description: str):
        super().__init__(description)
        self.condition = condition
        self.description = description


class OutgoingDelivery:
    """A transfer we sent that the peer has not settled yet."""

    __slots__ = ("link", "delivery_id", "tag", "context")

    def __init__(self, link: "Link", delivery_id: int, tag: bytes, context: Any):
        self.link = link
        self.delivery_id = delivery_id
        self.tag = tag
        self.context = context


class IncomingDelivery:
    __slots__ = ("delivery_id", "tag", "message_format", "settled", "chunks", "size")

    def __init__(self, delivery_id: int, tag: bytes, message_format: int, settled: bool):
        self.delivery_id = delivery_id
        self.tag = tag
        self.message_format = message_format
        self.settled = settled
        self.chunks: List[bytes] = []
        self.size = 0

    @property
    def payload(self) -> bytes:
        return b"".join(self.chunks)


class Link:
    """One attached link, seen from the server side.

    ``is_sender`` is *our* role: True when we send messages to the client (client receiver).
    """

    def __init__(self, session: "Session", name: str, remote_handle: int, attach_fields: List[Any]):
        self.session = session
        self.connection = session.connection
        self.name = name
        self.remote_handle = remote_handle
        self.local_handle: Optional[int] = None
        f = attach_fields
        self.is_sender = f[2] == ROLE_RECEIVER  # client is receiver -> we send
        self.snd_settle_mode = f[3] if f[3] is not None else SND_MIXED
        self.rcv_settle_mode = f[4] if f[4] is not None else RCV_FIRST
        self.source_fields = _pad(f[5], 11) if f[5] is not None else None
        self.target_fields = _pad(f[6], 7) if f[6] is not None else None
        self.remote_initial_delivery_count = f[9]
        self.remote_max_message_size = f[10]
        self.remote_properties: Dict[Any, Any] = f[13] or {}
        self.source_address = _s(self.source_fields[0]) if self.source_fields else None
        self.target_address = _s(self.target_fields[0]) if self.target_fields else None
        # our sender side
        self.credit = 0
        self.delivery_count = 0
        self.drain = False
        # our receiver side
        self.rx_delivery_count = f[9] or 0
        self.rx_credit = 0
        self.max_message_size: Optional[int] = None
        self.incoming: Optional[IncomingDelivery] = None
        # lifecycle
        self.attached = False  # our attach sent
        self.detach_sent = False
        self.detached = False  # fully gone for the application
        self.app: Any = None  # application context

    # -- convenience -----------------------------------------------------------------------
    @property
    def source_filters(self) -> Dict[Any, Any]:
        if not self.source_fields:
            return {}
        return self.source_fields[7] or {}

    @property
    def receive_and_delete(self) -> bool:
        return self.snd_settle_mode == SND_SETTLED

    @property
    def usable(self) -> bool:
        return self.attached and not self.detach_sent and not self.detached and not self.connection.closed

    def can_send(self) -> bool:
        return self.usable and self.is_sender and self.credit > 0 and self.session.remote_incoming_window > 0

    # -- actions (delegate to the connection) ----------------------------------------------
    def accept(self, **kwargs: Any) -> None:
        self.connection.accept_attach(self, **kwargs)

    def reject(self, condition: bytes, description: str) -> None:
        self.connection.reject_attach(self, condition, description)

    def detach(self, condition: Optional[bytes] = None, description: Optional[str] = None) -> None:
        self.connection.detach_link(self, condition, description)

    def send(self, payload: bytes, tag: bytes, settled: bool, context: Any = None) -> Optional[OutgoingDelivery]:
        return self.connection.send_transfer(self, payload, tag, settled, context)

    def __repr__(self) -> str:
        role = "out" if self.is_sender else "in"
        return f"<Link {self.name!r} {role} src={self.source_address!r} tgt={self.target_address!r}>"


class Session:
    def __init__(self, connection: "Connection", remote_channel: int, local_channel: int, begin: List[Any]):
        self.connection = connection
        self.remote_channel = remote_channel
        self.local_channel = local_channel
        self.next_incoming_id = begin[1] or 0
        self.incoming_window = INCOMING_WINDOW
        self.next_outgoing_id = 0
        self.outgoing_window = OUTGOING_WINDOW
        self.remote_incoming_window = begin[2] or 0
        self.remote_outgoing_window = begin[3] or 0
        self.next_delivery_id = 0
        self.links: Dict[int, Link] = {}  # by remote handle
        self.local_handles: Dict[int, Link] = {}
        self.unsettled: Dict[int, OutgoingDelivery] = {}  # by delivery id

    def alloc_handle(self) -> int:
        for h in range(HANDLE_MAX + 1):
            if h not in self.local_handles:
                return h
        raise ProtocolError(b"amqp:resource-limit-exceeded", "no free link handle")


class Handler:
    """Application callbacks; the broker implements these."""

    def on_connection_open(self, connection: "Connection") -> None: ...
    def on_attach(self, link: Link) -> None: ...
    def on_transfer(self, link: Link, delivery: IncomingDelivery) -> Any: ...
    def on_credit(self, link: Link) -> None: ...
    def on_disposition(self, delivery: OutgoingDelivery, state: Any, settled: bool, raw_state: Optional[bytes] = None) -> Any: ...
    def on_detach(self, link: Link, remote_error: Any) -> None: ...
    def on_connection_closed(self, connection: "Connection") -> None: ...


class Connection(asyncio.Protocol):
    def __init__(self, handler: Handler, loop: asyncio.AbstractEventLoop):
        self.handler = handler
        self.loop = loop
        self.id = next(_conn_ids)
        self.transport: Optional[asyncio.Transport] = None
        self.buf = bytearray()
        self.phase = "proto-sasl"
        self.closed = False
        self.sessions: Dict[int, Session] = {}  # by remote channel
        self.local_channels: Dict[int, Session] = {}
        self.ended_channels: set = set()
        self.remote_max_frame_size = MIN_MAX_FRAME_SIZE
        self.remote_container_id: Optional[str] = None
        self.remote_idle_timeout: Optional[float] = None
        self._heartbeat: Optional[asyncio.TimerHandle] = None
        self.last_sent = time.monotonic()
        self.peer = "?"
        self.app: Dict[str, Any] = {}  # application state (e.g. CBS authorizations)
        self.on_teardown: Optional[Callable[["Connection"], None]] = None

    # ------------------------------------------------------------------ asyncio protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        try:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.peer = str(transport.get_extra_info("peername"))
        except OSError:
            pass
        _LOG.debug("conn %d: accepted from %s", self.id, self.peer)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.buf += data
        try:
            self._process()
        except ProtocolError as exc:
            _LOG.warning("conn %d: protocol error: %s", self.id, exc.description)
            self._close_with_error(exc.condition, exc.description)
        except Exception as exc:  # never let bad input kill the loop
            _LOG.exception("conn %d: unexpected error while processing input", self.id)
            self._close_with_error(b"amqp:internal-error", f"internal error: {exc}")

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        _LOG.debug("conn %d: connection lost (%s)", self.id, exc)
        self._teardown()

    # ------------------------------------------------------------------ output helpers
    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            self.last_sent = time.monotonic()

    def _send(self, channel: int, frame: Any, frame_type: bytes = b"\x00") -> None:
        if _LOG.isEnabledFor(logging.DEBUG):
            _LOG.debug("conn %d ch %d -> %s", self.id, channel, type(frame).__name__)
        header, body = encode_frame(frame, frame_type=frame_type)
        data = header + struct.pack(">H", channel) + (bytes(body) if body is not None else b"")
        self._write(data)

    def _close_with_error(self, condition: bytes, description: str) -> None:
        if self.closed:
            return
        if self.phase == "opened":
            try:
                self._send(0, P.CloseFrame(error=AMQPError(condition=condition, description=description)))
            except Exception:  # pragma: no cover - best effort
                pass
        if self.transport is not None:
            self.transport.close()
        self._teardown()

    def close(self) -> None:
        self._close_with_error(b"amqp:connection:forced", "The stand-in is shutting down.")

    # ------------------------------------------------------------------ input
    def _process(self) -> None:
        while not self.closed:
            if self.phase in ("proto-sasl", "proto-amqp"):
                if len(self.buf) < 8:
                    return
                hdr = bytes(self.buf[:8])
                del self.buf[:8]
                if self.phase == "proto-sasl":
                    # Service Bus always authenticates through SASL (the SDK opens with the SASL
                    # header, ``_pyamqp/sasl.py``); a plain AMQP or TLS header is answered with the
                    # header we do speak and the connection is closed, AMQP 1.0 core 2.2.
                    self._write(SASL_HEADER)
                    if hdr != SASL_HEADER:
                        _LOG.info("conn %d: unsupported protocol header %r", self.id, hdr)
                        self._hangup()
                        return
                    self._send(0, P.SASLMechanism(sasl_server_mechanisms=[b"ANONYMOUS"]), frame_type=b"\x01")
                    self.phase = "sasl"
                else:
                    self._write(AMQP_HEADER)
                    if hdr != AMQP_HEADER:
                        self._hangup()
                        return
                    self.phase = "open"
                continue
            if len(self.buf) < 8:
                return
            size, doff, ftype, channel = struct.unpack_from(">IBBH", self.buf, 0)
            limit = MAX_FRAME_SIZE if self.phase == "opened" else max(MIN_MAX_FRAME_SIZE, MAX_FRAME_SIZE)
            if size < 8 or doff < 2 or doff * 4 > size:
                raise ProtocolError(b"amqp:connection:framing-error", "malformed frame header")
            if size > limit:
                raise ProtocolError(b"amqp:connection:framing-error", f"frame of {size} bytes exceeds max-frame-size")
            if len(self.buf) < size:
                return
            body = bytes(self.buf[doff * 4 : size])
            del self.buf[:size]
            if not body:
                continue  # empty frame = heartbeat
            if self.phase == "sasl":
                if ftype != 1:
                    raise ProtocolError(b"amqp:connection:framing-error", "expected a SASL frame")
                self._on_sasl(body)
            else:
                if ftype != 0:
                    raise ProtocolError(b"amqp:connection:framing-error", "expected an AMQP frame")
                self._on_frame(channel, body)

    def _hangup(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self._teardown()

    def _on_sasl(self, body: bytes) -> None:
        code, fields = decode_frame(memoryview(body))
        if code != 0x41:  # sasl-init
            raise ProtocolError(b"amqp:connection:framing-error", "expected sasl-init")
        mechanism = bytes(fields[0] or b"")
        if mechanism == b"ANONYMOUS":
            # Authorization happens per entity through CBS put-token (see broker.py).
            self._send(0, P.SASLOutcome(code=0, additional_data=None), frame_type=b"\x01")
            self.phase = "proto-amqp"
        else:
            self._send(0, P.SASLOutcome(code=1, additional_data=None), frame_type=b"\x01")  # auth failure
            self._hangup()

    def _on_frame(self, channel: int, body: bytes) -> None:
        code, fields = decode_frame(memoryview(body))
        if _LOG.isEnabledFor(logging.DEBUG):
            _LOG.debug("conn %d ch %d <- 0x%x %r", self.id, channel, code, fields[:6])
        if code == 0x10:
            self._on_open(channel, fields)
            return
        if self.phase != "opened":
            raise ProtocolError(b"amqp:illegal-state", "frame received before open")
        if code == 0x11:
            self._on_begin(channel, fields)
        elif code == 0x18:
            self._on_close(fields)
        else:
            session = self.sessions.get(channel)
            if session is None and channel in self.ended_channels:
                # pyamqp 7.15 may detach a management link after it ended the session; the
                # frame refers to nothing any more, so it is ignored rather than fatal.
                _LOG.debug("conn %d: ignoring 0x%x on ended channel %d", self.id, code, channel)
                return
            if session is None:
                raise ProtocolError(b"amqp:connection:framing-error", f"frame on unmapped channel {channel}")
            if code == 0x12:
                self._on_attach(session, fields)
            elif code == 0x13:
                self._on_flow(session, fields)
            elif code == 0x14:
                self._on_transfer(session, fields)
            elif code == 0x15:
                self._on_disposition(session, fields, body)
            elif code == 0x16:
                self._on_detach(session, fields)
            elif code == 0x17:
                self._on_end(session, fields)
            else:
                raise ProtocolError(b"amqp:not-implemented", f"unexpected performative 0x{code:x}")

    # ------------------------------------------------------------------ performatives
    def _on_open(self, channel: int, f: List[Any]) -> None:
        if self.phase != "open":
            raise ProtocolError(b"amqp:illegal-state", "unexpected open")
        self.remote_container_id = _s(f[0])
        self.remote_max_frame_size = max(MIN_MAX_FRAME_SIZE, min(f[2] or _UINT_MASK, _UINT_MASK))
        self.remote_idle_timeout = (f[4] / 1000.0) if f[4] else None
        self._send(
            0,
            P.OpenFrame(
                container_id="servicebus-standin",
                hostname=None,
                max_frame_size=MAX_FRAME_SIZE,
                channel_max=CHANNEL_MAX,
                idle_timeout=None,
                outgoing_locales=None,
                incoming_locales=None,
                offered_capabilities=None,
                desired_capabilities=None,
                properties=None,
            ),
        )
        self.phase = "opened"
        if self.remote_idle_timeout:
            self._schedule_heartbeat()
        self.handler.on_connection_open(self)

    def _schedule_heartbeat(self) -> None:
        # AMQP 1.0 core 2.4.5: send something at least every idle-timeout; we use half of it,
        # as the SDK does for its own heartbeats (``_connection.py``).
        interval = max(0.5, self.remote_idle_timeout / 2.0)  # type: ignore[operator]

        def beat() -> None:
            if self.closed:
                return
            if time.monotonic() - self.last_sent >= interval * 0.9:
                self._write(struct.pack(">IBBH", 8, 2, 0, 0))
            self._heartbeat = self.loop.call_later(interval, beat)

        self._heartbeat = self.loop.call_later(interval, beat)

    def _on_begin(self, channel: int, f: List[Any]) -> None:
        if f[0] is not None:
            raise ProtocolError(b"amqp:not-allowed", "the stand-in does not initiate sessions")
        if channel in self.sessions:
            raise ProtocolError(b"amqp:connection:framing-error", f"channel {channel} already in use")
        local = next(c for c in range(CHANNEL_MAX + 1) if c not in self.local_channels)
        session = Session(self, channel, local, f)
        self.ended_channels.discard(channel)
        self.sessions[channel] = session
        self.local_channels[local] = session
        self._send(
            local,
            P.BeginFrame(
                remote_channel=channel,
                next_outgoing_id=session.next_outgoing_id,
                incoming_window=session.incoming_window,
                outgoing_window=session.outgoing_window,
                handle_max=HANDLE_MAX,
                offered_capabilities=None,
                desired_capabilities=None,
                properties=None,
            ),
        )

    def _on_attach(self, session: Session, f: List[Any]) -> None:
        name = _s(f[0]) or ""
        handle = f[1]
        if handle in session.links:
            raise ProtocolError(b"amqp:session:handle-in-use", f"handle {handle} already attached")
        link = Link(session, name, handle, f)
        link.local_handle = session.alloc_handle()
        session.links[handle] = link
        session.local_handles[link.local_handle] = link
        self._guard(link, lambda: self.handler.on_attach(link))

    def _guard(self, link: Optional[Link], fn: Callable[[], Any]) -> Any:
        """Run an application callback; a failure detaches the link instead of killing the loop."""
        try:
            return fn()
        except Exception as exc:
            _LOG.exception("conn %d: handler failed for %r", self.id, link)
            if link is not None and not link.detach_sent and not self.closed:
                if not link.attached:
                    self.reject_attach(link, b"amqp:internal-error", f"internal error: {exc}")
                else:
                    self.detach_link(link, b"amqp:internal-error", f"internal error: {exc}")
            return None

    def _on_flow(self, session: Session, f: List[Any]) -> None:
        next_incoming_id, incoming_window, next_outgoing_id, outgoing_window = f[0], f[1], f[2], f[3]
        base = next_incoming_id if next_incoming_id is not None else 0
        session.remote_incoming_window = (base + (incoming_window or 0) - session.next_outgoing_id) & _UINT_MASK
        if session.remote_incoming_window > 0x7FFFFFFF:  # wrapped negative
            session.remote_incoming_window = 0
        session.remote_outgoing_window = outgoing_window or 0
        handle = f[4]
        if handle is None:
            for link in list(session.links.values()):
                if link.is_sender and link.usable:
                    self._guard(link, lambda link=link: self.handler.on_credit(link))
            return
        link = session.links.get(handle)
        if link is None:
            raise ProtocolError(b"amqp:session:unattached-handle", f"flow for unknown handle {handle}")
        if link.is_sender:
            rcv_delivery_count = f[5] if f[5] is not None else 0
            link_credit = f[6] or 0
            link.credit = max(0, (rcv_delivery_count + link_credit - link.delivery_count) & _UINT_MASK)
            if link.credit > 0x7FFFFFFF:
                link.credit = 0
            link.drain = bool(f[8])
            if link.usable:
                self._guard(link, lambda: self.handler.on_credit(link))
            if link.usable and link.drain and link.credit > 0:
                # AMQP 1.0 core 2.6.7: nothing more to send, so use up the credit and report it.
                link.delivery_count = (link.delivery_count + link.credit) & _UINT_MASK
                link.credit = 0
                self.send_flow(link)
            elif f[9] and link.usable:  # echo
                self.send_flow(link)
        else:
            if f[9] and link.usable:
                self.send_flow(link)

    def _on_transfer(self, session: Session, f: List[Any]) -> None:
        session.next_incoming_id = (session.next_incoming_id + 1) & _UINT_MASK
        session.incoming_window -= 1
        if session.incoming_window <= INCOMING_WINDOW // 2:
            session.incoming_window = INCOMING_WINDOW
            self.send_flow(session=session)
        link = session.links.get(f[0])
        if link is None:
            raise ProtocolError(b"amqp:session:unattached-handle", f"transfer on unknown handle {f[0]}")
        if link.is_sender:
            raise ProtocolError(b"amqp:session:errant-link", "transfer on a link where the stand-in is the sender")
        if link.detach_sent or link.detached:
            return  # in flight while we were detaching: drop
        payload = bytes(f[11]) if f[11] is not None else b""
        delivery = link.incoming
        if delivery is None:
            if f[1] is None:
                raise ProtocolError(b"amqp:connection:framing-error", "first transfer without delivery-id")
            delivery = IncomingDelivery(f[1], bytes(f[2] or b""), f[3] or 0, bool(f[4]))
            link.incoming = delivery
        elif f[4]:
            delivery.settled = True
        if f[9]:  # aborted
            link.incoming = None
            return
        delivery.size += len(payload)
        if not (link.max_message_size and delivery.size > link.max_message_size):
            delivery.chunks.append(payload)
        else:
            delivery.chunks = []  # keep reading the frames, but stop buffering them
        if f[5]:  # more
            return
        link.incoming = None
        link.rx_delivery_count = (link.rx_delivery_count + 1) & _UINT_MASK
        link.rx_credit -= 1
        if link.max_message_size and delivery.size > link.max_message_size:
            # The delivery is refused, the link stays up: the SDK turns this condition into
            # MessageSizeExceededError (``_transport/_pyamqp_transport.py`` error mapping) and
            # does not retry it (``_pyamqp/error.py`` no-retry conditions).
            outcome = Rejected(
                error=AMQPError(
                    condition=b"amqp:link:message-size-exceeded",
                    description=f"The received message (delivery-id:{delivery.delivery_id}, size:{delivery.size} bytes) "
                    f"exceeds the limit ({link.max_message_size} bytes) currently allowed on the link.",
                )
            )
        else:
            outcome = self._guard(link, lambda: self.handler.on_transfer(link, delivery))
        if not delivery.settled and outcome is not None and not self.closed:
            self._send(
                session.local_channel,
                P.DispositionFrame(role=ROLE_RECEIVER, first=delivery.delivery_id, last=None, settled=True, state=outcome, batchable=None),
            )
        if link.usable and link.rx_credit <= RX_LINK_CREDIT // 2:
            link.rx_credit = RX_LINK_CREDIT
            self.send_flow(link)

    def _on_disposition(self, session: Session, f: List[Any], body: bytes = b"") -> None:
        role, first, last, settled, state = f[0], f[1], f[2], bool(f[3]), f[4]
        if role != ROLE_RECEIVER:
            return  # the client settling its own transfers: we always settle those ourselves
        last = first if last is None else last
        if last - first > 100000:
            raise ProtocolError(b"amqp:invalid-field", "disposition range too large")
        for delivery_id in range(first, last + 1):
            delivery = session.unsettled.get(delivery_id)
            if delivery is None:
                continue
            echo = self._guard(
                delivery.link, lambda d=delivery: self.handler.on_disposition(d, state, settled, raw_state=raw_field(body, 4))
            )
            if settled:
                session.unsettled.pop(delivery_id, None)
            elif echo is not None:
                # Since 7.15 the SDK sends settlements unsettled and waits for the settled echo
                # (``_pyamqp/receiver.py`` _wait_for_disposition_outcome; note "Settlement").
                session.unsettled.pop(delivery_id, None)
                self._send(
                    session.local_channel,
                    P.DispositionFrame(role=ROLE_SENDER, first=delivery_id, last=None, settled=True, state=echo, batchable=None),
                )

    def _on_detach(self, session: Session, f: List[Any]) -> None:
        handle, closed, error = f[0], bool(f[1]), f[2]
        link = session.links.pop(handle, None)
        if link is None:
            return
        if link.local_handle is not None:
            session.local_handles.pop(link.local_handle, None)
        self._link_gone(link, error)
        if not link.detach_sent:
            link.detach_sent = True
            if not link.attached:
                # The client gave up on a link we had not answered yet (e.g. a NEXT_AVAILABLE
                # session wait): answer the attach first so the detach refers to a known handle.
                self._send_attach(link, "echo", "echo", None, None, None)
                link.attached = True
            self._send(session.local_channel, P.DetachFrame(handle=link.local_handle, closed=closed, error=None))

    def _on_end(self, session: Session, f: List[Any]) -> None:
        for link in list(session.links.values()):
            self._link_gone(link, None)
        session.links.clear()
        self.sessions.pop(session.remote_channel, None)
        self.local_channels.pop(session.local_channel, None)
        self.ended_channels.add(session.remote_channel)
        self._send(session.local_channel, P.EndFrame(error=None))

    def _on_close(self, f: List[Any]) -> None:
        try:
            self._send(0, P.CloseFrame(error=None))
        finally:
            if self.transport is not None:
                self.transport.close()
            self._teardown()

    def _link_gone(self, link: Link, error: Any) -> None:
        if link.detached:
            return
        link.detached = True
        # Deliveries on this link can no longer be settled through it.
        for did in [d for d, od in link.session.unsettled.items() if od.link is link]:
            link.session.unsettled.pop(did, None)
        self._guard(None, lambda: self.handler.on_detach(link, error))

    def _teardown(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.on_teardown is not None:
            self.on_teardown(self)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        for session in list(self.sessions.values()):
            for link in list(session.links.values()):
                self._link_gone(link, None)
        self.sessions.clear()
        self.local_channels.clear()
        self._guard(None, lambda: self.handler.on_connection_closed(self))

    # ------------------------------------------------------------------ application API
    def accept_attach(
        self,
        link: Link,
        *,
        source: Any = "echo",
        target: Any = "echo",
        properties: Optional[Dict[Any, Any]] = None,
        max_message_size: Optional[int] = None,
        offered_capabilities: Optional[List[bytes]] = None,
        initial_credit: int = RX_LINK_CREDIT,
    ) -> None:
        if link.attached or link.detach_sent or self.closed:
            return
        link.max_message_size = max_message_size if not link.is_sender else None
        self._send_attach(link, source, target, properties, max_message_size, offered_capabilities)
        link.attached = True
        if not link.is_sender:
            link.rx_credit = initial_credit
            self.send_flow(link)

    def _send_attach(self, link, source, target, properties, max_message_size, offered_capabilities) -> None:
        if source == "echo":
            source = self.echo_source(link)
        if target == "echo":
            target = self.echo_target(link)
        frame = P.AttachFrame(
            name=link.name,
            handle=link.local_handle,
            role=ROLE_SENDER if link.is_sender else ROLE_RECEIVER,
            send_settle_mode=link.snd_settle_mode,
            rcv_settle_mode=link.rcv_settle_mode,
            source=source,
            target=target,
            unsettled=None,
            incomplete_unsettled=False,
            initial_delivery_count=link.delivery_count if link.is_sender else None,
            max_message_size=max_message_size,
            offered_capabilities=offered_capabilities,
            desired_capabilities=None,
            properties=properties,
        )
        self._send(link.session.local_channel, frame)

    @staticmethod
    def echo_source(link: Link, filters: Optional[Dict[Any, Any]] = None) -> Optional[Source]:
        s = link.source_fields
        if s is None:
            return None
        # Only plain fields are copied back; decoded outcome/filter values cannot be re-encoded
        # faithfully, and the client reads only address and filters (``_pyamqp/link.py``).
        return Source(
            address=_s(s[0]),
            durable=s[1],
            expiry_policy=s[2],
            timeout=s[3],
            dynamic=s[4],
            dynamic_node_properties=None,
            distribution_mode=s[6],
            filters=filters,
            default_outcome=None,
            outcomes=s[9],
            capabilities=s[10],
        )

    @staticmethod
    def echo_target(link: Link) -> Optional[Target]:
        t = link.target_fields
        if t is None:
            return None
        return Target(
            address=_s(t[0]),
            durable=t[1],
            expiry_policy=t[2],
            timeout=t[3],
            dynamic=t[4],
            dynamic_node_properties=None,
            capabilities=t[6],
        )

    def reject_attach(self, link: Link, condition: bytes, description: str) -> None:
        """Refuse a link: attach with the terminus we were asked to create set to null, then
        detach(closed) with the error -- AMQP 1.0 core 2.6.3 ("the attach MUST indicate ... by
        setting the terminus to null", followed by a detach carrying the error).

        pyamqp reads a null terminus as a failed attach and then takes the error from the detach
        (``_pyamqp/link.py`` _incoming_attach / _incoming_detach), so the caller gets e.g.
        MessagingEntityNotFoundError instead of a link that looks usable for a moment.
        """
        if self.closed or link.detach_sent:
            return
        if not link.attached:
            if link.is_sender:  # client receiver: we would have been the source
                self._send_attach(link, None, "echo", None, None, None)
            else:
                self._send_attach(link, "echo", None, None, None, None)
            link.attached = True
        self.detach_link(link, condition, description)

    def detach_link(self, link: Link, condition: Optional[bytes], description: Optional[str]) -> None:
        if self.closed or link.detach_sent:
            return
        link.detach_sent = True
        error = AMQPError(condition=condition, description=description) if condition else None
        self._send(link.session.local_channel, P.DetachFrame(handle=link.local_handle, closed=True, error=error))
        # The application forgets the link now; the peer's detach reply frees the handle.
        self._link_gone(link, None)

    def send_flow(self, link: Optional[Link] = None, session: Optional[Session] = None) -> None:
        session = link.session if link is not None else session
        assert session is not None
        kwargs: Dict[str, Any] = dict(
            next_incoming_id=session.next_incoming_id,
            incoming_window=session.incoming_window,
            next_outgoing_id=session.next_outgoing_id,
            outgoing_window=session.outgoing_window,
            handle=None,
            delivery_count=None,
            link_credit=None,
            available=None,
            drain=None,
            echo=None,
            properties=None,
        )
        if link is not None:
            kwargs["handle"] = link.local_handle
            if link.is_sender:
                kwargs.update(delivery_count=link.delivery_count, link_credit=link.credit, drain=link.drain)
            else:
                kwargs.update(delivery_count=link.rx_delivery_count, link_credit=link.rx_credit)
        self._send(session.local_channel, P.FlowFrame(**kwargs))

    def send_transfer(self, link: Link, payload: bytes, tag: bytes, settled: bool, context: Any) -> Optional[OutgoingDelivery]:
        if not link.can_send():
            return None
        session = link.session
        delivery_id = session.next_delivery_id
        session.next_delivery_id = (delivery_id + 1) & _UINT_MASK
        probe = P.TransferFrame(
            handle=link.local_handle, delivery_id=delivery_id, delivery_tag=tag, message_format=0,
            settled=settled, more=True, rcv_settle_mode=None, state=None, resume=None, aborted=None,
            batchable=None, payload=b"",
        )
        overhead = len(encode_frame(probe)[1]) + 8 + 16
        chunk = max(64, min(self.remote_max_frame_size, 1 << 20) - overhead)
        pieces = [payload[i : i + chunk] for i in range(0, len(payload), chunk)] or [b""]
        for index, piece in enumerate(pieces):
            frame = P.TransferFrame(
                handle=link.local_handle,
                delivery_id=delivery_id,
                delivery_tag=tag,
                message_format=0,
                settled=settled,
                more=index < len(pieces) - 1,
                rcv_settle_mode=None,
                state=None,
                resume=None,
                aborted=None,
                batchable=None,
                payload=piece,
            )
            self._send(session.local_channel, frame)
            session.next_outgoing_id = (session.next_outgoing_id + 1) & _UINT_MASK
            session.remote_incoming_window = max(0, session.remote_incoming_window - 1)
        link.credit -= 1
        link.delivery_count = (link.delivery_count + 1) & _UINT_MASK
        if settled:
            return OutgoingDelivery(link, delivery_id, tag, context)
        delivery = OutgoingDelivery(link, delivery_id, tag, context)
        session.unsettled[delivery_id] = delivery
        return delivery


class Server:
    """Listening socket that creates a :class:`Connection` per client."""

    def __init__(self, handler: Handler, loop: asyncio.AbstractEventLoop):
        self.handler = handler
        self.loop = loop
        self.connections: Dict[int, Connection] = {}
        self._server: Optional[asyncio.AbstractServer] = None

    def _factory(self) -> Connection:
        conn = Connection(self.handler, self.loop)
        conn.on_teardown = self.forget
        self.connections[conn.id] = conn
        return conn

    async def start(self, host: str, port: int) -> int:
        self._server = await self.loop.create_server(self._factory, host, port, reuse_address=True)
        return self._server.sockets[0].getsockname()[1]

    def forget(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections.values()):
            conn.close()
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2)
            except (asyncio.TimeoutError, Exception):
                pass
