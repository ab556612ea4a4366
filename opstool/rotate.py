"""``opstool rotate --customer ID``: ask the app to rotate a customer's client secret (after a leak, or on demand).

Sends one ``customer.credentials-rotation-requested`` event; the app rotates the secret in Auth0, writes it to Key
Vault as a new version and into the API Management entry. ``--wait`` follows the request in the ledger until the app
has applied (or refused) it. The secret itself is never shown: it is in Key Vault.
"""
from __future__ import annotations

import time
import uuid

from shared.domain.errors import InvalidEvent
from shared.domain.events import ROTATION_REQUESTED
from shared.domain.records import APPLIED, DUPLICATE, FAILED, REJECTED, STALE

from .context import Context, ask
from .errors import EXIT_FAILED, EXIT_OK, UsageError
from .output import emit, safe_text, write_json_line
from .sending import QueueSender, checked, cloud_event, type_prefix

SOURCE = "/opstool/rotate"
POLL_SECONDS = 1.0
#: how the ledger's reason of a permanent refusal (RotationRefused) begins: no retry will change it
REFUSAL_PREFIX = "provisioning.rotate_secret:"


def cmd_rotate(ctx: Context) -> int:
    args = ctx.args
    data = {"customerId": args.customer}
    if args.reason:
        data["reason"] = args.reason
    event = cloud_event(args.event_id or f"rotate-{uuid.uuid4()}", ROTATION_REQUESTED, SOURCE, data,
                        prefix=type_prefix(ctx.values))
    try:
        checked(event, prefix=type_prefix(ctx.values))
    except InvalidEvent as exc:
        raise UsageError(f"the rotation request would be refused: {exc.message}") from None
    if args.dry_run:
        _report(ctx, event, "dry-run", "not sent")
        return EXIT_OK
    ask(ctx.err, f"rotate the client secret of customer {args.customer} (its current secret stops working in Auth0)",
        yes=args.yes, how="Check the customer with `opstool customers --customer ID`")
    with QueueSender(ctx.target) as sender:
        sender.send([event])
    if not args.wait:
        _report(ctx, event, "sent", f"follow it with: python -m opstool customers --customer {args.customer}")
        return EXIT_OK
    outcome, reason = _wait(ctx, args.customer, event["id"], args.wait)
    _report(ctx, event, outcome or "pending", reason or ("not applied yet" if outcome is None else ""))
    return EXIT_OK if outcome in (APPLIED, DUPLICATE, STALE) else EXIT_FAILED


def _wait(ctx: Context, customer: str, event_id: str, seconds: float) -> tuple[str | None, str | None]:
    ledger = ctx.ledger.ledger
    if ledger is None:
        raise UsageError(f"--wait reads the ledger, which is not available ({ctx.why_no_ledger})")
    deadline = time.monotonic() + seconds
    while True:
        _, audit = ledger.get_customer(customer, event_id)
        if audit is not None and (audit.outcome in (APPLIED, STALE, REJECTED) or audit.outcome == FAILED
                                  and (audit.reason or "").startswith(REFUSAL_PREFIX)):
            return audit.outcome, audit.reason
        if time.monotonic() >= deadline:
            return (audit.outcome, audit.reason) if audit else (None, None)
        time.sleep(POLL_SECONDS)


def _report(ctx: Context, event: dict, outcome: str, detail: str) -> None:
    if ctx.json:
        write_json_line({"eventId": event["id"], "customerId": event["data"]["customerId"], "outcome": outcome,
                         "detail": detail}, ctx.out)
        return
    emit(ctx.out, f"rotation request {event['id']} for customer {safe_text(event['data']['customerId'], 80)}: "
                  f"{outcome}" + (f" ({safe_text(detail, 300)})" if detail else ""))
