"""``opstool plan``: what applying an event (or repairing a customer) would create, adopt, update or delete.

The app's own use cases run over recording ports (``shared/adapters/recording.py``): the real adapters read the
current state, and every write is recorded instead of sent, or dropped when it would change nothing. The ledger is
read, never written. What the plan cannot know ahead: the ids Auth0 generates, and whether the tier's last
authorization-server slot is still free when the event really arrives.
"""
from __future__ import annotations

import argparse
from collections import Counter
from typing import TextIO

from shared.adapters.recording import (ACTIONS, ADOPT, CREATE, DELETE, RECOVER, UPDATE, ChangeLog,
                                       RecordingApiGateway, RecordingIdentityProvider, RecordingLedger,
                                       RecordingSecretStore)
from shared.domain.errors import InvalidEvent, ProvisioningError
from shared.domain.events import CustomerCreated, parse_event
from shared.service_layer.provisioning import ProvisioningService

from .errors import EXIT_FAILED, EXIT_OK, UsageError
from .output import Column, emit, render_table, safe_text, write_json_line
from .services import app_service, app_settings

SYMBOL = {CREATE: "+", ADOPT: "<=", RECOVER: "<=", UPDATE: "~", DELETE: "-"}
SERVICE_ORDER = {"auth0": 0, "keyvault": 1, "apim": 2}


def recording_service(real: ProvisioningService) -> tuple[ProvisioningService, ChangeLog]:
    log = ChangeLog()
    core = real.core
    service = ProvisioningService(identity=RecordingIdentityProvider(core.identity, log),
                                  secrets=RecordingSecretStore(core.secrets, log),
                                  gateway=RecordingApiGateway(core.gateway, log), ledger=RecordingLedger(core.ledger),
                                  profiles=core.profiles, options=core.options, worker_id=core.worker_id)
    return service, log


def plan(real: ProvisioningService, *, event=None, customer_id: str | None = None):
    """(the outcome the use case reports, the changes sorted like terraform sorts by address) of applying
    ``event``, or of repairing ``customer_id``, over ``real``'s reads; raises what applying it would raise."""
    service, log = recording_service(real)
    if event is not None:
        log.adopting = isinstance(event, CustomerCreated)
        outcome = service.handle(event, message_id=None)
    else:
        outcome = service.repair(customer_id)
    # Steps run in parallel: sort, so two plans of one state read the same.
    changes = sorted(log.changes, key=lambda c: (SERVICE_ORDER.get(c.service, 9), c.service, c.resource,
                                                 c.resource_id))
    return outcome, changes


def cmd_plan(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if bool(args.event_file) == bool(args.customer):
        raise UsageError("give an event file or --customer ID (the customer's current state): one of the two")
    settings = app_settings(args.settings)
    event = _read_event(args.event_file, settings.event_type_prefix) if args.event_file else None
    subject = (f"event {event.event_id} ({event.type}) for customer {event.customer_id}" if event is not None
               else f"customer {args.customer} (its ledger state, as a repair would leave it)")
    try:
        outcome, changes = plan(app_service(settings, err, role="plan"), event=event, customer_id=args.customer)
    except ProvisioningError as exc:
        emit(err, f"error: applying it would fail: {safe_text(exc, 500)}")
        return EXIT_FAILED
    if args.json:
        write_json_line({"subject": subject, "outcome": outcome.result, "detail": outcome.detail,
                         "changes": [c.__dict__ for c in changes],
                         "counts": {a: sum(1 for c in changes if c.action == a) for a in ACTIONS}}, out)
        return EXIT_OK
    emit(out, f"Plan for {subject}:")
    if not changes:
        why = {"duplicate": "the event was applied already", "stale": "the event is older than the last applied one",
               "skipped": "the customer is busy, or its status changed"}.get(outcome.result)
        emit(out, f"\nNo changes: {why} ({outcome.detail})." if why else
             "\nNo changes: Auth0, Key Vault and API Management already match.")
        return EXIT_OK
    cols = [Column("", lambda c: SYMBOL.get(c.action, "?")), Column("ACTION", lambda c: c.action),
            Column("SERVICE", lambda c: c.service), Column("RESOURCE", lambda c: c.resource),
            Column("ID", lambda c: c.resource_id, 60), Column("DETAIL", lambda c: c.detail, 80)]
    emit(out, "\n" + render_table(changes, cols, wide=args.wide))
    counts = Counter(c.action for c in changes)
    emit(out, "\nPlan: " + ", ".join(f"{counts[a]} to {a}" for a in (CREATE, ADOPT, UPDATE, DELETE))
         + (f", {counts[RECOVER]} to recover" if counts[RECOVER] else "") + ". Nothing was changed.")
    return EXIT_OK


def _read_event(path: str, type_prefix: str):
    try:
        with open(path, "rb") as fh:
            body = fh.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return parse_event(body, type_prefix=type_prefix)
    except InvalidEvent as exc:
        raise UsageError(f"{path}: the app would refuse this event: {safe_text(exc, 500)}") from None
