"""Secret leak scan: every secret the run generated, searched for everywhere the app writes or forwards text.

Secrets (``SecretCollector``): the Auth0 client secrets (every one the Auth0 stand-in ever generated, deleted and
rotated ones included: the collector hooks the in-process stand-in's generator), the Auth0 management client
secret, the APIM subscription keys and authorization server client secrets (hooked on every write, so the keys of
removed customers are known too), every Key Vault secret value (all versions, soft-deleted ones included) and the
managed-identity header.

Places searched (``Haystack``): log files (the host's stdout and stderr with its exception texts, tool output),
every entity of the ledger table, every dead-lettered message (body, properties, dead-letter reason and
description) and the bodies of the events sent. A secret is looked for as it is, JSON-escaped and URL-encoded.

A hit is reported by the secret's kind, a fingerprint (the first 12 hex digits of its SHA-256) and the place:
never by the secret itself.
"""
from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

#: shorter values are not treated as secrets (every 4-character string occurs somewhere by chance)
MIN_SECRET_LENGTH = 12


@dataclass(frozen=True)
class Haystack:
    where: str
    text: str


@dataclass(frozen=True)
class Leak:
    kind: str
    fingerprint: str
    where: str

    def line(self) -> str:
        return f"{self.kind} (sha256 {self.fingerprint}…) found in {self.where}"


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:12]


class SecretCollector:
    """Knows every secret of a running :class:`emulators.stack.LocalStack`.

    ``install()`` wraps two methods of the in-process stand-ins (instance attributes; the classes are untouched):
    the Auth0 stand-in's secret generator and the APIM stand-in's write hook, so secrets that were generated and
    deleted during the run are known too. ``collect()`` adds what the stand-ins hold now and the stack's own
    credentials.
    """

    def __init__(self, stack):
        self.stack = stack
        self._seen: dict[str, str] = {}
        self._lock = threading.Lock()
        self._installed: list[tuple[object, str]] = []

    def add(self, value, kind: str) -> None:
        """Remember ``value``; one value met under several kinds (an Auth0 secret is also a Key Vault value and
        an APIM authorization server's secret) gets them all: ``auth0 client secret = key vault secret value``."""
        if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH:
            with self._lock:
                known = self._seen.get(value)
                if known is None:
                    self._seen[value] = kind
                elif kind not in known.split(" = "):
                    self._seen[value] = f"{known} = {kind}"

    def install(self) -> "SecretCollector":
        auth0, apim = self.stack.auth0, self.stack.apim
        generate = auth0._new_secret

        def new_secret(*args, **kwargs):
            value = generate(*args, **kwargs)
            self.add(value, "auth0 client secret")
            return value

        auth0._new_secret = new_secret
        self._installed.append((auth0, "_new_secret"))
        touch = apim._touch

        def touched(entity, *args, **kwargs):
            props = entity.get("properties", {}) if isinstance(entity, dict) else {}
            for key in ("primaryKey", "secondaryKey"):
                self.add(props.get(key), "apim subscription key")
            for key in ("clientSecret", "resourceOwnerPassword"):
                self.add(props.get(key), "apim authorization server secret")
            return touch(entity, *args, **kwargs)

        apim._touch = touched
        self._installed.append((apim, "_touch"))
        return self

    def uninstall(self) -> None:
        """Back to the stand-ins' own methods (a session-wide stack outlives one test's collector)."""
        for obj, name in self._installed:
            obj.__dict__.pop(name, None)
        self._installed.clear()

    def collect(self) -> dict[str, str]:
        """secret value -> kind."""
        settings = self.stack.settings
        self.add(settings.get("AUTH0_CLIENT_SECRET"), "auth0 management client secret")
        self.add(settings.get("IDENTITY_HEADER"), "managed identity header")
        for client in self.stack.control("auth0").state().get("clients", []):
            self.add(client.get("client_secret"), "auth0 client secret")
        vault = self.stack.control("keyvault").state()
        for bucket in ("secrets", "deleted"):
            for secret in (vault.get(bucket) or {}).values():
                for version in secret.get("versions") or []:
                    if isinstance(version, dict):
                        self.add(version.get("value"), "key vault secret value")
        apim = self.stack.control("apim").state()
        for sub in apim.get("subscriptions", {}).values():
            for key in ("primaryKey", "secondaryKey"):
                self.add(sub.get("properties", {}).get(key), "apim subscription key")
        for server in apim.get("authorizationServers", {}).values():
            self.add(server.get("properties", {}).get("clientSecret"), "apim authorization server secret")
        with self._lock:
            return dict(self._seen)


# -- where to look ----------------------------------------------------------------------------------------------
def from_files(paths: Iterable[Path]) -> list[Haystack]:
    out = []
    for path in paths:
        path = Path(path)
        if path.is_file():
            out.append(Haystack(f"log {path.name}", path.read_text(encoding="utf-8", errors="replace")))
    return out


def from_ledger(connection_string: str, table: str) -> list[Haystack]:
    """Every entity of the ledger table, each with its keys and every property."""
    from azure.data.tables import TableClient

    with TableClient.from_connection_string(connection_string, table) as client:
        return [Haystack(f"ledger row {e['PartitionKey']}/{e['RowKey']}", json.dumps(dict(e), default=str))
                for e in client.list_entities()]


def _message_text(msg) -> str:
    try:
        body = b"".join(msg.body) if not isinstance(msg.body, (bytes, str)) else msg.body
    except TypeError:
        body = str(msg)
    body = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    props = {(k.decode() if isinstance(k, bytes) else str(k)): (v.decode("utf-8", "replace") if isinstance(v, bytes)
                                                                else v)
             for k, v in (msg.application_properties or {}).items()}
    return json.dumps({"body": body, "properties": props, "dead_letter_reason": msg.dead_letter_reason,
                       "dead_letter_error_description": msg.dead_letter_error_description,
                       "subject": msg.subject, "correlation_id": msg.correlation_id}, default=str)


def browse(connection_string: str, queue: str, *, dead_letter: bool = True):
    """Every message of the dead-letter queue (or of the queue itself), peeked page by page: nothing is locked."""
    from azure.servicebus import ServiceBusClient, ServiceBusSubQueue

    kwargs = {"sub_queue": ServiceBusSubQueue.DEAD_LETTER} if dead_letter else {}
    with ServiceBusClient.from_connection_string(connection_string) as client:
        with client.get_queue_receiver(queue, **kwargs) as receiver:
            seq = 0
            while True:
                page = receiver.peek_messages(max_message_count=100, sequence_number=seq + 1)
                if not page:
                    return
                yield from page
                seq = max(m.sequence_number for m in page)


def from_queue(connection_string: str, queue: str, *, dead_letter: bool = True) -> list[Haystack]:
    label = "dead-lettered message" if dead_letter else "queued message"
    return [Haystack(f"{label} seq={msg.sequence_number} id={msg.message_id}", _message_text(msg))
            for msg in browse(connection_string, queue, dead_letter=dead_letter)]


def from_subscription(connection_string: str, topic: str, subscription: str) -> list[Haystack]:
    """Every result event waiting on a subscription of the result-events topic (peeked: the CRM's view)."""
    from azure.servicebus import ServiceBusClient

    out = []
    with ServiceBusClient.from_connection_string(connection_string) as client:
        with client.get_subscription_receiver(topic, subscription) as receiver:
            seq = 0
            while True:
                page = receiver.peek_messages(max_message_count=100, sequence_number=seq + 1)
                if not page:
                    return out
                out += [Haystack(f"result event seq={m.sequence_number} id={m.message_id}", _message_text(m))
                        for m in page]
                seq = max(m.sequence_number for m in page)


def from_events(bodies: Iterable) -> list[Haystack]:
    out = []
    for body in bodies:
        text = body if isinstance(body, str) else (body.decode("utf-8", "replace") if isinstance(body, bytes)
                                                   else json.dumps(body))
        out.append(Haystack("event sent", text))
    return out


# -- the scan ----------------------------------------------------------------------------------------------------
def _forms(secret: str) -> set[str]:
    return {secret, json.dumps(secret)[1:-1], urllib.parse.quote(secret, safe=""),
            urllib.parse.quote_plus(secret)}


def scan(secrets: dict[str, str], haystacks: Iterable[Haystack]) -> list[Leak]:
    """Every (secret, place) pair where the secret occurs."""
    forms = {secret: _forms(secret) for secret in secrets if len(secret) >= MIN_SECRET_LENGTH}
    leaks = []
    for hay in haystacks:
        for secret, variants in forms.items():
            if any(v in hay.text for v in variants):
                leaks.append(Leak(secrets[secret], fingerprint(secret), hay.where))
    return leaks
