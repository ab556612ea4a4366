"""The Service Bus trigger listener: receive with the real SDK, invoke, settle, renew locks.

Semantics (Service Bus extension 5.x on Functions host v4, which runs a ServiceBusProcessor per function):
- PEEK_LOCK. Up to ``maxConcurrentCalls`` invocations at once for a non-session trigger; for a session trigger
  up to ``maxConcurrentSessions`` sessions at once (NEXT_AVAILABLE_SESSION), one message at a time within a
  session, in order. A session is released after ``sessionIdleTimeout`` without a message.
- The function returns -> complete (when autoCompleteMessages; otherwise the message is left to its lock).
  The function raises or times out -> abandon (always, as the processor does), so the queue's MaxDeliveryCount
  eventually moves the message to the dead-letter queue. A function with a ``ServiceBusMessageActions``
  parameter settles its messages itself through it, over gRPC to this host (``funchost.settlement_server``);
  what it settled is left alone.
- While the function runs the message lock (or the session lock) is renewed, up to maxAutoLockRenewalDuration,
  by the SDK's ``AutoLockRenewer``.
- Failures of the namespace (unreachable, entity missing, auth) never stop the host: the slot reconnects on a
  capped schedule (1, 2, 4, 8, then every 15 s; ``funchost.connection_health`` says it in those words), and one
  INFO line says when it is back. stop() does not wait for a slot stuck in the SDK's own retries, only for running invocations.
- The SDK retries a lost connection itself first (clientRetryOptions: 3 retries from 0.8 s, doubling: about 11 s)
  and says nothing meanwhile. So a watchdog notices a receive that has not returned well after its wait, tries a
  TCP connection to the namespace and, when that fails, logs the ERROR at once (within about 2 s of the outage).

Concurrency model: one receiver per concurrency slot, each used by exactly one thread (the sync SDK's receivers
are not meant to be shared between threads; the SDK's own lock renewer is the exception it is built for).
Every receive waits ``poll_interval`` at most (an attempt to accept a session: ``SESSION_ACCEPT_WAIT``) so that
stop() is noticed promptly.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from typing import Any

from azure.servicebus import (NEXT_AVAILABLE_SESSION, AutoLockRenewer, ServiceBusClient, ServiceBusReceiveMode,
                              ServiceBusReceivedMessage)
from azure.servicebus.exceptions import (AutoLockRenewTimeout, MessageAlreadySettled, MessageLockLostError,
                                         OperationTimeoutError, SessionCannotBeLockedError, SessionLockLostError)

from . import invocation_data
from .bindings import ServiceBusTarget
from .connection_health import Backoff, ConnectionHealth
from .hostconfig import ServiceBusOptions
from .invocation import ABORTED, Invoker
from .logs import dotnet_utc
from .settings import ServiceBusConnection
from .settlement_server import Delivery, SettlementService

log = logging.getLogger("funchost.servicebus")


# A receive that has not returned this long after its own wait is stuck in the SDK's retries: probe the namespace.
STALL_GRACE = 1.0
# How often the watchdog looks, and how long its TCP probe may take.
WATCH_INTERVAL = 0.5
PROBE_TIMEOUT = 1.0
PROBE_BACKOFF = 5.0  # after a probe that connected
AMQPS_PORT = 5671

# How long one attempt to accept a session waits. It also bounds opening the link (connection, CBS, attach),
# so it must not be too short for a remote namespace; an idle session slot notices stop() within this time.
SESSION_ACCEPT_WAIT = 2.0


class _SessionLost(Exception):
    """The session lock is gone: drop this session and accept another."""


def _credential_for(connection: ServiceBusConnection):
    """Identity-based connection: ``<name>__credential = managedidentity`` pins managed identity (as in Azure);
    otherwise DefaultAzureCredential, which is what the host uses for developer identities when run locally.
    ``<name>__clientId`` selects a user-assigned identity either way."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
    if (connection.credential_kind or "").lower() == "managedidentity":
        return ManagedIdentityCredential(client_id=connection.client_id)
    if connection.client_id:
        return DefaultAzureCredential(managed_identity_client_id=connection.client_id)
    return DefaultAzureCredential()


class ServiceBusListener:
    def __init__(self, target: ServiceBusTarget, options: ServiceBusOptions, invoker: Invoker,
                 settlement: SettlementService, stopping: threading.Event, poll_interval: float = 1.0) -> None:
        self.target = target
        self.settlement = settlement
        self.protos = invoker.channel.protos
        self.options = options
        self.invoker = invoker
        self.stopping = stopping
        self.poll_interval = poll_interval
        self.name = target.function.name
        self.slots = options.max_concurrent_sessions if target.sessions else options.max_concurrent_calls
        self._health = ConnectionHealth(f"Functions.{self.name} ({target.entity})",
                                         target.connection.namespace)
        self._busy: set[threading.Thread] = set()  # slots running an invocation right now
        self._in_sdk: dict[threading.Thread, float] = {}  # slot -> when its current SDK call should have returned
        self._credential = _credential_for(target.connection) if target.connection.is_identity_based else None
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        run = self._run_session_slot if self.target.sessions else self._run_message_slot
        for slot in range(self.slots):
            thread = threading.Thread(target=run, name=f"sb-{self.name}-{slot}", daemon=True)
            self._threads.append(thread)
            thread.start()
        threading.Thread(target=self._watch, name=f"sb-{self.name}-watchdog", daemon=True).start()

    # -- the watchdog ----------------------------------------------------------------------------------------
    def _sdk_call(self, wait: float):
        """Marks the calling slot as inside an SDK call that should return within ``wait`` seconds."""
        listener, thread = self, threading.current_thread()

        class _Call:
            def __enter__(self):
                listener._in_sdk[thread] = time.monotonic() + wait + STALL_GRACE

            def __exit__(self, *exc):
                listener._in_sdk.pop(thread, None)

        return _Call()

    def _watch(self) -> None:
        quiet_until = 0.0
        while not self.stopping.wait(WATCH_INTERVAL):
            now = time.monotonic()
            if self._health.down or now < quiet_until:
                continue
            if not any(due < now for due in list(self._in_sdk.values())):
                continue
            reason = self._probe()
            if reason is None:
                # It answers: the receive is slow for another reason the SDK reports itself. Probe again later,
                # not twice a second against a remote namespace.
                quiet_until = time.monotonic() + PROBE_BACKOFF
            elif not self.stopping.is_set():
                self._health.unreachable(reason, self.options.client_retry.describe())

    def _probe(self) -> str | None:
        """None when a TCP connection to the namespace opens, else why not."""
        host, _, port = self.target.connection.namespace.rpartition(":")
        if not host or not port.isdigit():
            host, port = self.target.connection.namespace, str(AMQPS_PORT)
        try:
            socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT).close()
            return None
        except OSError as exc:
            return f"cannot connect to {host}:{port}: {exc.strerror or type(exc).__name__}"

    def join(self, deadline: float, idle_grace: float = 0.5) -> bool:
        """Wait for the slots to end: until ``deadline`` for a slot running an invocation, ``idle_grace`` seconds
        for the others. An idle slot may sit in the SDK's own retry sleep (up to tens of seconds while the
        namespace is down) and nothing of value is lost by leaving it: its thread is a daemon and ends on its own
        once the SDK returns. Returns False when an invocation was still running at the deadline."""
        grace_end = min(deadline, time.monotonic() + idle_grace)
        for thread in self._threads:
            if thread not in self._busy:
                thread.join(max(0.0, grace_end - time.monotonic()))
        for thread in self._threads:
            if thread in self._busy:
                thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads if t in self._busy)

    def close(self) -> None:
        if self._credential is not None and hasattr(self._credential, "close"):
            self._credential.close()

    # -- connections -----------------------------------------------------------------------------------------
    def _client(self) -> ServiceBusClient:
        connection = self.target.connection
        retry = self.options.client_retry.sdk_kwargs()
        if connection.connection_string:
            return ServiceBusClient.from_connection_string(connection.connection_string, **retry)
        return ServiceBusClient(connection.fully_qualified_namespace, self._credential, **retry)

    def _receiver(self, client: ServiceBusClient, max_wait_time: float):
        kwargs: dict[str, Any] = {"receive_mode": ServiceBusReceiveMode.PEEK_LOCK,
                                  "prefetch_count": self.options.prefetch_count,
                                  "max_wait_time": max_wait_time}
        if self.target.sessions:
            # For NEXT_AVAILABLE_SESSION the receiver's max_wait_time is also the broker-side accept timeout.
            kwargs["session_id"] = NEXT_AVAILABLE_SESSION
        if self.target.queue_name:
            return client.get_queue_receiver(self.target.queue_name, **kwargs)
        return client.get_subscription_receiver(self.target.topic_name, self.target.subscription_name, **kwargs)

    @property
    def _batch_size(self) -> int:
        return self.options.max_message_batch_size if self.target.many else 1

    def _retry_after(self, error: BaseException, backoff: Backoff) -> None:
        delay = backoff.next_delay()
        self._health.failed(error, backoff.attempt, delay)
        self.stopping.wait(delay)

    # -- non-session slots -----------------------------------------------------------------------------------
    def _run_message_slot(self) -> None:
        backoff = Backoff()
        while not self.stopping.is_set():
            try:
                with contextlib.ExitStack() as opened:
                    client = opened.enter_context(self._client())
                    with self._sdk_call(self.poll_interval):  # opening goes through the SDK's retries too
                        receiver = opened.enter_context(self._receiver(client, self.poll_interval))
                    while not self.stopping.is_set():
                        with self._sdk_call(self.poll_interval):
                            messages = receiver.receive_messages(max_message_count=self._batch_size,
                                                                 max_wait_time=self.poll_interval)
                        self._health.ok()
                        backoff.reset()
                        if messages and not self.stopping.is_set():
                            self._process(receiver, messages, session=None)
            except Exception as e:  # never let a slot die: log, back off, reconnect
                if self.stopping.is_set():
                    break
                self._retry_after(e, backoff)

    # -- session slots ---------------------------------------------------------------------------------------
    def _run_session_slot(self) -> None:
        backoff = Backoff()
        accept_wait = max(self.poll_interval, SESSION_ACCEPT_WAIT)
        while not self.stopping.is_set():
            try:
                with self._client() as client:
                    while not self.stopping.is_set():
                        # Not ``with receiver``: entering opens the link with the SDK's retries, and for a session
                        # receiver "no session available" is a timeout it retries with backoff (15 s per idle
                        # attempt with the defaults). The first receive opens it within accept_wait instead.
                        receiver = self._receiver(client, accept_wait)
                        try:
                            self._serve_session(receiver, accept_wait)
                        except (OperationTimeoutError, SessionCannotBeLockedError):
                            pass  # no session available within the wait: ask again
                        except (_SessionLost, SessionLockLostError) as e:
                            log.warning("Functions.%s: session lock lost (%s); accepting another session",
                                        self.name, e)
                        finally:
                            receiver.close()
                        self._health.ok()
                        backoff.reset()
            except Exception as e:
                if self.stopping.is_set():
                    break
                self._retry_after(e, backoff)

    def _serve_session(self, receiver, accept_wait: float) -> None:
        """Process one accepted session until it stays idle for sessionIdleTimeout (or the host stops)."""
        # The first receive accepts a session (or raises when none is available within the wait).
        with self._sdk_call(accept_wait):
            messages = receiver.receive_messages(max_message_count=self._batch_size, max_wait_time=accept_wait)
        session = receiver.session
        log.debug("Functions.%s: accepted session %s", self.name, session.session_id)
        renewer = self._renewer()
        if session.locked_until_utc is not None:
            renewer.register(receiver, session)
        idle_timeout = self.options.effective_session_idle_timeout
        try:
            last_activity = time.monotonic()
            while not self.stopping.is_set():
                if messages:
                    if self._process(receiver, messages, session=session):
                        log.debug("Functions.%s: session %s released by the function", self.name, session.session_id)
                        return
                    last_activity = time.monotonic()
                elif time.monotonic() - last_activity >= idle_timeout:
                    log.debug("Functions.%s: releasing idle session %s", self.name, session.session_id)
                    return
                if self.stopping.is_set():
                    return
                wait = min(self.poll_interval, max(0.05, idle_timeout - (time.monotonic() - last_activity)))
                with self._sdk_call(wait):
                    messages = receiver.receive_messages(max_message_count=self._batch_size, max_wait_time=wait)
        finally:
            renewer.close(wait=False)

    # -- one invocation --------------------------------------------------------------------------------------
    def _process(self, receiver, messages: list[ServiceBusReceivedMessage], session) -> bool:
        """Invoke the function on the messages and settle what it left; True when it released its session."""
        current = threading.current_thread()
        self._busy.add(current)
        try:
            return self._process_busy(receiver, messages, session)
        finally:
            self._busy.discard(current)

    def _process_busy(self, receiver, messages: list[ServiceBusReceivedMessage], session) -> bool:
        renewer = None
        if session is None:
            # Per-invocation renewer: closing it is the only way to stop renewing once the function is done
            # (with autoCompleteMessages false the message must then lapse to its lock, as in the host).
            renewer = self._renewer()
            for message in messages:
                if message.locked_until_utc is not None:  # the renewer refuses messages without a lock expiry
                    renewer.register(receiver, message)
        delivery = Delivery(receiver, {str(m.lock_token): m for m in messages if m.lock_token is not None}, session)
        self.settlement.register(delivery)
        try:
            result = self.invoker.invoke(
                self.name, lambda invocation_id: self._request(invocation_id, messages, session),
                reason="(null)",
                details=[trigger_details(m, self._session_locked_until(session)) for m in messages])
        finally:
            self.settlement.release(delivery)
            if renewer is not None:
                renewer.close(wait=False)
        if result.status == ABORTED:
            return False  # host shutting down: leave the message to its lock, as a stopped host does
        # What the function settled itself (through the Settlement service) is left alone.
        unsettled = [m for m in messages if str(m.lock_token) not in delivery.settled]
        if result.succeeded:
            if self.target.auto_complete:
                self._settle(receiver, unsettled, "complete_message")
        else:
            self._settle(receiver, unsettled, "abandon_message")
        return delivery.released

    def _request(self, invocation_id: str, messages: list[ServiceBusReceivedMessage], session):
        """The InvocationRequest the host sends for these messages (see ``funchost.invocation_data``)."""
        protos, function = self.protos, self.target.function
        value = invocation_data.trigger_value(messages, self.target.many, self.target.data_type, protos)
        namespace = self.target.connection.namespace
        if self.target.many:
            metadata = invocation_data.batch_metadata(messages, namespace, protos)
        else:
            metadata = invocation_data.single_metadata(messages[0], namespace, protos)
            if value.WhichOneof("data") == "string":
                invocation_data.merge_body_properties(metadata, value.string, protos)
        return protos.InvocationRequest(
            invocation_id=invocation_id, function_id=function.function_id,
            input_data=[protos.ParameterBinding(name=function.param_name, data=value)],
            trigger_metadata=metadata, trace_context=new_trace_context(protos))

    def _renewer(self) -> AutoLockRenewer:
        # max_workers=2, not 1: with a single worker the renewer's dispatcher runs each renew task inline and the
        # task re-queues itself at once, which spins a CPU core (measured with azure-servicebus 7.15.0).
        return AutoLockRenewer(max_lock_renewal_duration=self.options.max_auto_lock_renewal_duration,
                               on_lock_renew_failure=self._on_renew_failure, max_workers=2)

    @staticmethod
    def _session_locked_until(session):
        # Messages of a session are covered by the session lock; the host reports its expiry as LockedUntil.
        return session.locked_until_utc if session is not None else None

    def _settle(self, receiver, messages: list[ServiceBusReceivedMessage], action: str) -> None:
        for message in messages:
            try:
                getattr(receiver, action)(message)
            except MessageAlreadySettled:
                pass
            except MessageLockLostError as e:
                log.warning("Functions.%s: %s of message %s failed, its lock was lost (%s); it will be "
                            "delivered again", self.name, action.split("_")[0], message.message_id, e)
            except SessionLockLostError as e:
                raise _SessionLost(str(e)) from e

    def _on_renew_failure(self, renewable, error) -> None:
        if isinstance(error, AutoLockRenewTimeout):
            log.warning("Functions.%s: maxAutoLockRenewalDuration (%ss) reached for %r; the lock will lapse",
                        self.name, self.options.max_auto_lock_renewal_duration, renewable)
        else:
            log.warning("Functions.%s: lock renewal failed for %r: %s", self.name, renewable, error)


__all__ = ["ServiceBusListener", "Backoff", "new_trace_context", "trigger_details"]


def new_trace_context(protos):
    """The invocation's Activity, as the host sends it: a W3C id of its own, not sampled, no state or tags."""
    return protos.RpcTraceContext(trace_parent=f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-00")


def trigger_details(message: ServiceBusReceivedMessage, session_locked_until=None) -> str:
    """The host's per-invocation ``Trigger Details`` line for a Service Bus message."""
    def safe(getter):
        try:
            return getter()
        except (OverflowError, ValueError, AttributeError, TypeError):
            return None

    return (f"Trigger Details: MessageId: {invocation_data._text(message.message_id)}, "
            f"SequenceNumber: {message.sequence_number}, "
            f"DeliveryCount: {invocation_data.host_delivery_count(message)}, "
            f"EnqueuedTimeUtc: {dotnet_utc(safe(lambda: message.enqueued_time_utc))}, "
            f"LockedUntilUtc: {dotnet_utc(safe(lambda: message.locked_until_utc) or session_locked_until)}, "
            f"SessionId: {invocation_data._text(message.session_id) or '(null)'}")
