"""The reconciliation timer asks for the rotation of secrets past their profile's max_secret_age_days, through the
app's own queue, once per secret generation."""
from __future__ import annotations

from shared.domain.events import parse_event
from shared.service_layer.rotation_schedule import request_due_rotations
from tests.unit.test_messages import RecordingScheduler
from tests.unit.world import World, created, rotation


def test_old_secrets_are_asked_to_rotate_once_per_generation_and_the_request_is_a_valid_event():
    w = World()
    w.service().handle(created("acme"))                      # oem: max_secret_age_days = 90
    w.service().handle(created("hooli", "e-h", profile="partner-spa"))  # public client: nothing to rotate
    scheduler = RecordingScheduler()
    w.clock.advance(89 * 86400)
    assert request_due_rotations(w.service(), scheduler) == []
    w.clock.advance(2 * 86400)
    later = w.clock()
    [due] = request_due_rotations(w.service(), scheduler)
    assert due.customer_id == "acme"
    [sent] = scheduler.scheduled
    assert sent["delay"] == 0 and sent["id"] == sent["message"].message_id
    event = parse_event(sent["message"].body, now=later)
    assert event.type == "customer.credentials-rotation-requested" and event.customer_id == "acme"
    assert "90 days" in event.reason
    request_due_rotations(w.service(), scheduler)  # the timer again, before the rotation was applied
    assert scheduler.scheduled[1]["id"] == sent["id"]  # the same request: the queue's duplicate detection drops it
    w.service().handle(rotation("acme", sent["id"]))  # applied: the next generation is fresh again
    assert request_due_rotations(w.service(), RecordingScheduler()) == []
