"""Exit codes and the errors that map to them (the same for every subcommand)."""
from __future__ import annotations

EXIT_OK = 0            # everything asked for was done (or there was nothing to do)
EXIT_FAILED = 1        # something asked for was not done: an operation failed, a selected message was locked
#                        elsewhere, `show` found no such message, the ledger could not be read, or the
#                        confirmation was declined
EXIT_USAGE = 2         # the command line or the settings are wrong; nothing was changed
EXIT_CONNECTION = 3    # Service Bus, the ledger, Auth0, Key Vault or APIM could not be reached or refused the
#                        credentials / the queue does not exist
EXIT_BROKEN_PIPE = 141  # stdout was closed early (`opstool list | head`): as a process killed by SIGPIPE

EXIT_CODES_HELP = """exit codes:
  0  done (or nothing matched the selection)
  1  not everything was done: an operation failed, a selected message was locked elsewhere (run again later),
     `show` found no such message, a service answered with an error, or the confirmation was declined
  2  usage error (bad arguments or settings, or confirmation needed without a terminal); nothing was changed
  3  Service Bus connection or authorization error, or the queue does not exist; the ledger, Auth0, Key Vault
     or API Management could not be reached or refused the credentials (one line says which)
  99 only with the test hook OPSTOOL_CRASH_AFTER_SEND (replay exits hard after sending a copy)
  141 stdout was closed before the output ended (e.g. piped into head); a replay or purge stops there"""


class UsageError(Exception):
    """Wrong arguments or settings: exit 2, nothing changed."""


class ConnectionFailure(Exception):
    """Service Bus unreachable, credentials refused, queue missing: exit 3."""


def _fatal_types():
    from azure.core.exceptions import ClientAuthenticationError
    from azure.servicebus.exceptions import (MessagingEntityDisabledError, MessagingEntityNotFoundError,
                                             ServiceBusAuthenticationError, ServiceBusAuthorizationError)
    return (ServiceBusAuthenticationError, ServiceBusAuthorizationError, MessagingEntityNotFoundError,
            MessagingEntityDisabledError, ClientAuthenticationError)


def _transport_types():
    from azure.servicebus.exceptions import ServiceBusCommunicationError, ServiceBusConnectionError
    return (ServiceBusConnectionError, ServiceBusCommunicationError)


def is_fatal_error(exc: BaseException) -> bool:
    """Credentials refused or the queue gone: no further operation can succeed, stop at once."""
    return isinstance(exc, _fatal_types())


def is_connection_error(exc: BaseException) -> bool:
    """Everything of Service Bus that maps to exit code 3."""
    return isinstance(exc, _fatal_types() + _transport_types())


def is_unreachable(exc: BaseException) -> bool:
    """A failure of the app's adapters (ledger, Auth0, Key Vault, APIM) that maps to exit code 3: no answer at all
    (they classify it as a TransientError without an HTTP status) or the credentials refused (401, 403)."""
    from shared.domain.errors import ProvisioningError, TransientError

    if not isinstance(exc, ProvisioningError):
        return False
    return exc.status in (401, 403) or (isinstance(exc, TransientError) and exc.status is None)


class FailureStreak:
    """A connection error on one message's send or settle fails that message (the SDK has retried it already, and
    a link the broker closed for one message, e.g. one too large, is reopened for the next); several in a row
    mean the namespace is unreachable: the run stops there (exit 3) instead of failing every remaining message."""

    def __init__(self, limit: int = 3):
        self.limit, self.count = limit, 0

    def failed(self, exc: BaseException) -> None:
        """Record a failure; re-raises ``exc`` when it ends the run."""
        if is_fatal_error(exc):
            raise exc
        if isinstance(exc, _transport_types()):
            self.count += 1
            if self.count >= self.limit:
                raise exc
        else:
            self.count = 0

    def succeeded(self) -> None:
        self.count = 0
