"""With CUSTOMER_EVENTS_SESSIONS=true the trigger takes its events from a session-enabled queue, one customer's
events in order: a created immediately followed by its removal ends removed, never half-applied."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from devtools.send import build_event, send_events
from emulators.inspect import view_customers
from funchost import LocalFunctionsHost

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(180)


def test_session_queue_applies_each_customers_events_in_order(stack_env, local_stack, monkeypatch):
    import sys
    from shared.bootstrap import reset as reset_service

    settings = dict(stack_env, CUSTOMER_EVENTS_SESSIONS="true", CUSTOMER_EVENTS_QUEUE="customer-events-sessions")
    for key in ("CUSTOMER_EVENTS_SESSIONS", "CUSTOMER_EVENTS_QUEUE"):
        monkeypatch.setenv(key, settings[key])
    for name in [m for m in sys.modules if m == "function_app" or m.startswith("functions")]:
        del sys.modules[name]  # the binding is read when the app is indexed
    reset_service()
    host = LocalFunctionsHost(str(ROOT), settings, functions=["customer_events"])
    host.start()
    try:
        customers = [f"sess-{i}" for i in range(3)]
        events = []
        for cid in customers:
            events += [build_event("created", cid, profile="oem"), build_event("removed", cid)]
        send_events(events, settings)
        from shared.settings import LedgerSettings
        from shared.adapters.table_ledger import TableLedger
        ledger = TableLedger.from_settings(LedgerSettings.load(settings))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            records = [ledger.get_customer(c)[0] for c in customers]
            if all(r is not None and r.status == "removed" for r in records):
                break
            time.sleep(0.2)
        assert [ledger.get_customer(c)[0].status for c in customers] == ["removed"] * 3
        for cid in customers:
            # In order: the created was applied first (an application was made), then the removal undid it.
            outcomes = sorted((a.event_type, a.outcome) for a in ledger.list_audit(cid))
            assert outcomes == [("customer.created", "applied"), ("customer.removed", "applied")]
        view = view_customers(local_stack, customers)
        assert not any(view.of(c).live for c in customers) and view.unattributed == []
    finally:
        host.stop(10)
        for name in [m for m in sys.modules if m == "function_app" or m.startswith("functions")]:
            del sys.modules[name]
        reset_service()
