"""The host's side of the Service Bus ``Settlement`` gRPC service, on the host's own gRPC port.

A function with a ``ServiceBusMessageActions`` parameter settles through the settlement package's own client
(``azurefunctions-extensions-bindings-servicebus``): a process-wide gRPC stub in the worker that dials the address
on the worker's command line, the host's. Here that host is this process: :class:`SettlementService` finds the
message by its lock token among those delivered to running invocations and settles it with the receiver that
received it, as the extension does. The servicer base class and messages are the package's (``settlement_pb2*``).

Status codes follow the extension: a lock token no running invocation holds answers ``FAILED_PRECONDITION``
("LockToken ... not found."), a session id likewise ("SessionId ... not found."); a failure of the settlement
itself (lock lost, already settled: a second settlement within the invocation reaches Service Bus, since the entry
lasts until the invocation ends) is ``UNKNOWN`` with the Service Bus error's text. The client raises either as its
``SettlementError``.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import grpc
from azurefunctions.extensions.bindings.protos import settlement_pb2, settlement_pb2_grpc
from google.protobuf import empty_pb2, timestamp_pb2

log = logging.getLogger("funchost.settlement")


@dataclass
class Delivery:
    """Messages handed to one invocation, with the receiver (and session) that received them."""
    receiver: Any
    messages: dict[str, Any]  # lock token -> ServiceBusReceivedMessage
    session: Any = None
    settled: set[str] = field(default_factory=set)  # lock tokens the function settled itself
    released: bool = False  # the function released its session: the host gives it up after the invocation
    calls: list[str] = field(default_factory=list)  # the RPCs answered for this delivery, in order


class SettlementService(settlement_pb2_grpc.SettlementServicer):
    """Lock token -> delivery while an invocation runs; ``register`` before the invocation, ``release`` after."""

    def __init__(self) -> None:
        self._by_token: dict[str, Delivery] = {}
        self._by_session: dict[str, Delivery] = {}
        self._lock = threading.Lock()
        self.answered: dict[str, int] = {}  # RPC name -> how many were answered (tests count Deadletter calls)
        #: (RPC, message id or session id, "ok" or the status code) of every call, in order (conformance tests)
        self.history: list[tuple[str, str | None, str]] = []

    # -- the listener's side -----------------------------------------------------------------------------------
    def register(self, delivery: Delivery) -> None:
        with self._lock:
            for token in delivery.messages:
                self._by_token[token] = delivery
            if delivery.session is not None:
                self._by_session[delivery.session.session_id] = delivery

    def release(self, delivery: Delivery) -> None:
        with self._lock:
            for token in delivery.messages:
                if self._by_token.get(token) is delivery:
                    del self._by_token[token]
            if delivery.session is not None and self._by_session.get(delivery.session.session_id) is delivery:
                del self._by_session[delivery.session.session_id]

    # -- helpers -----------------------------------------------------------------------------------------------
    def _count(self, name: str, delivery: Delivery | None, subject: str | None = None, status: str = "ok") -> None:
        with self._lock:
            self.answered[name] = self.answered.get(name, 0) + 1
            self.history.append((name, subject, status))
            if delivery is not None:
                delivery.calls.append(name)

    def _message(self, name: str, token: str, context) -> tuple[Delivery, Any]:
        with self._lock:
            delivery = self._by_token.get(token.lower()) or self._by_token.get(token)
        if delivery is None:
            self._count(name, None, token, "FAILED_PRECONDITION")
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"LockToken {token} not found.")
        return delivery, delivery.messages.get(token.lower()) or delivery.messages[token]

    def _settle(self, name: str, request, context, action: Callable[[Any, Any], None], settles: bool = True):
        delivery, message = self._message(name, request.locktoken, context)
        try:
            action(delivery.receiver, message)
        except Exception as exc:  # noqa: BLE001 - the client sees the Service Bus error's text, as from the host
            self._count(name, delivery, message.message_id, "UNKNOWN")
            context.abort(grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}")
        if settles:
            delivery.settled.add(str(message.lock_token))
        self._count(name, delivery, message.message_id)
        return empty_pb2.Empty()

    def _session(self, name: str, session_id: str, context) -> Delivery:
        with self._lock:
            delivery = self._by_session.get(session_id)
        if delivery is None:
            self._count(name, None, session_id, "FAILED_PRECONDITION")
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"SessionId {session_id} not found.")
        return delivery

    # -- the RPCs ----------------------------------------------------------------------------------------------
    def Complete(self, request, context):
        return self._settle("Complete", request, context, lambda r, m: r.complete_message(m))

    def Abandon(self, request, context):
        return self._settle("Abandon", request, context, lambda r, m: r.abandon_message(m))

    def Deadletter(self, request, context):
        reason = request.deadletterReason.value if request.HasField("deadletterReason") else None
        description = (request.deadletterErrorDescription.value
                       if request.HasField("deadletterErrorDescription") else None)
        return self._settle("Deadletter", request, context, lambda r, m: r.dead_letter_message(
            m, reason=reason, error_description=description))

    def Defer(self, request, context):
        return self._settle("Defer", request, context, lambda r, m: r.defer_message(m))

    def RenewMessageLock(self, request, context):
        return self._settle("RenewMessageLock", request, context, lambda r, m: r.renew_message_lock(m),
                            settles=False)

    def GetSessionState(self, request, context):
        delivery = self._session("GetSessionState", request.sessionId, context)
        state = delivery.session.get_state()
        self._count("GetSessionState", delivery)
        return settlement_pb2.GetSessionStateResponse(sessionState=state or b"")

    def SetSessionState(self, request, context):
        delivery = self._session("SetSessionState", request.sessionId, context)
        try:
            delivery.session.set_state(request.sessionState)
        except Exception as exc:  # noqa: BLE001
            self._count("SetSessionState", delivery)
            context.abort(grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}")
        self._count("SetSessionState", delivery)
        return empty_pb2.Empty()

    def ReleaseSession(self, request, context):
        delivery = self._session("ReleaseSession", request.sessionId, context)
        delivery.released = True
        self._count("ReleaseSession", delivery)
        return empty_pb2.Empty()

    def RenewSessionLock(self, request, context):
        delivery = self._session("RenewSessionLock", request.sessionId, context)
        try:
            until = delivery.session.renew_lock()
        except Exception as exc:  # noqa: BLE001
            self._count("RenewSessionLock", delivery)
            context.abort(grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}")
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(until.astimezone(dt.timezone.utc).replace(tzinfo=None))
        self._count("RenewSessionLock", delivery)
        return settlement_pb2.RenewSessionLockResponse(lockedUntil=stamp)


def add_to_server(service: SettlementService, server: grpc.Server) -> None:
    settlement_pb2_grpc.add_SettlementServicer_to_server(service, server)
