"""The chaos suite's verdict sees what it must: a duplicate application, an orphan, a lost event, a wrong state."""
from __future__ import annotations

import datetime as dt

from chaos.verify import verify
from chaos.workload import build_workload
from shared.domain.records import REMOVED, CustomerRecord
from shared.service_layer.ports import ApplicationSpec
from shared.service_layer.provisioning import MANAGED_BY


def _spec(customer_id: str) -> ApplicationSpec:
    return ApplicationSpec(name=f"Planted {customer_id}", app_type="non_interactive",
                           grant_types=("client_credentials",), token_endpoint_auth_method="client_secret_post",
                           is_first_party=False, token_lifetime=3600,
                           client_metadata={"customer_id": customer_id, "profile": "oem", "managed_by": MANAGED_BY})


def test_verdict_reports_duplicates_orphans_lost_events_and_mismatches(stack_env, local_stack):
    from shared.settings import AppSettings
    from shared.bootstrap import build_service

    service = build_service(AppSettings.load(stack_env), worker_id="test-verify")
    workload = build_workload(4, seed=3)  # plans: create, create-remove, create-remove-recreate, remove-before-create
    created_one = workload.customers[0]   # expected created
    removed_one = workload.customers[1]   # expected removed
    assert (created_one.expected, removed_one.expected) == ("created", "removed")

    # Two applications for a customer that should have one; a removed customer that still has one.
    for _ in range(2):
        service.identity.create_application(_spec(created_one.customer_id))
    service.identity.create_application(_spec(removed_one.customer_id))
    service.ledger.create_customer(CustomerRecord(removed_one.customer_id, status=REMOVED,
                                                  updated_at=dt.datetime.now(dt.timezone.utc)))

    v = verify(local_stack, workload, service.ledger, dlq=[])

    assert list(v.duplicates) == [created_one.customer_id]
    assert any(o.startswith(f"{removed_one.customer_id}: ledger says removed, still live") for o in v.orphans)
    assert {c.customer_id for c in workload.customers} <= set(v.mismatches)  # nothing was applied
    assert set(v.unexplained) == set(v.mismatches)  # and no dead-lettered event explains it
    # No event was applied or dead-lettered: every one of them is lost.
    assert len(v.lost) == len(workload.events)


def test_workload_newest_event_decides_and_every_plan_meets_every_profile():
    w = build_workload(18, seed=1)
    expected = {c.plan: c.expected for c in w.customers}
    # Tied times: the removal wins, whichever was sent first (the app's tie rule).
    assert expected == {"create": "created", "create-remove": "removed", "create-remove-recreate": "created",
                        "remove-before-create": "removed", "tie-created-first": "removed",
                        "tie-removed-first": "removed"}
    for tied in (c for c in w.customers if c.plan.startswith("tie-")):
        assert len({e.time for e in tied.events}) == 1
    assert {(c.plan, c.profile) for c in w.customers} == {(p, q) for p in expected
                                                          for q in ("oem", "partner-web", "partner-spa")}
    out_of_order = next(c for c in w.customers if c.plan == "remove-before-create")
    [created, removed] = out_of_order.events
    assert created.time < removed.time and removed.send_round < created.send_round
    assert len({e.event_id for e in w.events}) == len(w.events) and w.invalid
