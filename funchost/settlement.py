"""Message settlement from the function: what the Python worker passes for a ``ServiceBusMessageActions`` parameter.

Under Azure, the worker gives a function parameter that no binding declares, when it is the only one and its
annotation is a ``GrpcClientType`` of ``azurefunctions-extensions-base`` (``ServiceBusMessageActions`` of
``azurefunctions-extensions-bindings-servicebus``), the Service Bus settlement client; any other unbound parameter
fails the function's indexing. That client settles by lock token over gRPC to the host, which settles the message
with the receiver that delivered it. Here the host is this process: :class:`LocalMessageActions` offers the same
methods and settles with this host's receiver. With ``autoCompleteMessages`` off the host then neither completes
a message the function returned from without settling (its lock lapses and it is delivered again) nor settles one
the function settled; a function that raises has its unsettled message abandoned, as under Azure.
"""
from __future__ import annotations

import inspect
import typing
from typing import Any, Callable

from .settings import SettingsError

try:  # the app's own dependency, not this host's: without it no function can ask for settlement (as under Azure)
    from azurefunctions.extensions.base import get_binding_registry
    from azurefunctions.extensions.bindings.servicebus import ServiceBusMessageActions as _ActionsBase
    from azurefunctions.extensions.bindings.servicebus.serviceBusMessageActions import SettlementError
except ImportError:  # pragma: no cover - exercised only without the package
    get_binding_registry = None
    _ActionsBase = object

    class SettlementError(Exception):  # type: ignore[no-redef]
        def __init__(self, method: str, details: str, original: Exception):
            super().__init__(f"[{method}] {details}. Underlying error: {original}")
            self.method, self.details, self.original = method, details, original


def settlement_parameter(user_function: Callable[..., Any], bound: set[str]) -> str | None:
    """The parameter that gets the settlement client, None when there is none; raises SettingsError for an unbound
    parameter the worker would refuse (its FunctionLoadError wording)."""
    params = set(inspect.signature(user_function).parameters) - set(bound) - {"context"}
    if not params:
        return None
    refused = SettingsError("the following parameters are declared in Python but not in the function definition "
                            f"(function.json or function decorators): {params!r}")
    if len(params) > 1 or get_binding_registry is None:
        raise refused
    name = next(iter(params))
    try:
        annotation = typing.get_type_hints(user_function).get(name)
    except Exception:  # an unresolvable annotation is not a settlement client
        annotation = None
    if not get_binding_registry().check_supported_grpc_client_type(annotation):
        raise refused
    return name


class LocalMessageActions(_ActionsBase):
    """``ServiceBusMessageActions`` for one invocation, settling with the receiver that delivered its messages.

    Messages are found by lock token, as the host finds them for the worker's gRPC requests: the function may pass
    the ``func.ServiceBusMessage`` it was given (or anything with that ``lock_token``). Every failure is raised as
    the package's ``SettlementError``, wrapping the SDK's exception (lock lost, already settled...)."""

    def __init__(self, receiver, messages, session=None) -> None:  # not the base's: it dials the host's gRPC port
        self._receiver = receiver
        self._session = session
        self._messages = {str(m.lock_token): m for m in messages if m.lock_token is not None}
        self.released = False  # release_session() was called: the host gives the session up after the invocation

    def _received(self, method: str, message):
        token = getattr(message, "lock_token", None)
        if not token:
            raise SettlementError(method, "Failed to settle a message without a lock token",
                                  ValueError("lockToken is required in ServiceBusReceivedMessage."))
        found = self._messages.get(str(token))
        if found is None:
            raise SettlementError(method, f"Failed to {method} message {token}",
                                  ValueError("no message with this lock token was delivered to this invocation"))
        return found

    def _call(self, method: str, message, action: Callable[[Any], Any]) -> None:
        received = self._received(method, message)
        try:
            action(received)
        except Exception as e:
            raise SettlementError(method, f"Failed to {method} message {received.lock_token}", e) from e

    def complete(self, message) -> None:
        self._call("complete", message, self._receiver.complete_message)

    def abandon(self, message) -> None:
        self._call("abandon", message, self._receiver.abandon_message)

    def deadletter(self, message, deadletter_reason: str | None = None,
                   deadletter_error_description: str | None = None) -> None:
        self._call("deadletter", message, lambda m: self._receiver.dead_letter_message(
            m, reason=deadletter_reason or None, error_description=deadletter_error_description or None))

    def defer(self, message) -> None:
        self._call("defer", message, self._receiver.defer_message)

    def renew_message_lock(self, message) -> None:
        self._call("renew_message_lock", message, self._receiver.renew_message_lock)

    def _own_session(self, method: str, session_id: str):
        if self._session is None or self._session.session_id != session_id:
            raise SettlementError(method, f"Failed for session {session_id}",
                                  ValueError("this invocation holds no lock on that session"))
        return self._session

    def set_session_state(self, session_id: str, session_state: bytes) -> None:
        session = self._own_session("set_session_state", session_id)
        try:
            session.set_state(session_state)
        except Exception as e:
            raise SettlementError("set_session_state", f"Failed to set state for session {session_id}", e) from e

    def renew_session_lock(self, session_id: str):
        session = self._own_session("renew_session_lock", session_id)
        try:
            return session.renew_lock()
        except Exception as e:
            raise SettlementError("renew_session_lock", f"Failed to renew lock for session {session_id}", e) from e

    def release_session(self, session_id: str) -> None:
        self._own_session("release_session", session_id)
        self.released = True


__all__ = ["LocalMessageActions", "SettlementError", "settlement_parameter"]
