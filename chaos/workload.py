"""What the chaos run sends, and what the services must hold once it has all been applied.

Every customer follows one *plan* (a short lifecycle) with one of the three client profiles. Each event has a
time one second after the previous one of its customer, and the newest event by time decides the end state, however
the queue, the retries and the kills reorder the deliveries. Some events are re-sent under a new message id (the
same event id: the CRM resending it), which the app must absorb as duplicates. A few invalid events are mixed in;
they must end in the dead-letter queue with their reason and change nothing.
"""
from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass, field

PROFILES = ("oem", "partner-web", "partner-spa")
CONFIDENTIAL = {"oem": True, "partner-web": True, "partner-spa": False}

# plan name -> the event kinds in *time* order, and the order (indexes into them) in which they are sent
PLANS = {
    "create": (("created",), (0,)),
    "create-remove": (("created", "removed"), (0, 1)),
    "create-remove-recreate": (("created", "removed", "created"), (0, 1, 2)),
    # The removal is sent first although it is newer: the created must be recognised as stale.
    "remove-before-create": (("created", "removed"), (1, 0)),
    # Stamped with the same time (a CRM that stamps to the second), sent in either order: the tie rule (a removal
    # wins over a creation of the same time) decides, never the arrival.
    "tie-created-first": (("created", "removed"), (0, 1)),
    "tie-removed-first": (("created", "removed"), (1, 0)),
}
#: plans whose events all carry one time
TIED = {"tie-created-first", "tie-removed-first"}
CREATED, REMOVED = "created", "removed"


@dataclass
class Event:
    customer_id: str
    kind: str              # created | removed | invalid
    body: dict
    send_round: int        # which round of sending it goes out in
    resend_rounds: list[int] = field(default_factory=list)  # re-sent under new message ids in these rounds

    @property
    def event_id(self) -> str:
        return self.body["id"]

    @property
    def time(self) -> str:
        return self.body["time"]


@dataclass
class Customer:
    customer_id: str
    plan: str
    profile: str
    events: list[Event]

    @property
    def expected(self) -> str:
        """created or removed: the kind of the last event in the app's order of a customer's events (time, then
        a removal before a creation of the same time, then the event id)."""
        from shared.domain.records import event_order

        def order(e: "Event"):
            when = dt.datetime.fromisoformat(e.time.replace("Z", "+00:00"))
            return event_order(when, e.body["type"], e.event_id)
        return max(self.events, key=order).kind

    @property
    def confidential(self) -> bool:
        return CONFIDENTIAL[self.profile]


@dataclass
class Workload:
    customers: list[Customer]
    invalid: list[Event]

    @property
    def events(self) -> list[Event]:
        return [e for c in self.customers for e in c.events] + self.invalid

    @property
    def rounds(self) -> int:
        return 1 + max(max([e.send_round] + e.resend_rounds) for e in self.events)

    def sends_in_round(self, r: int) -> list[tuple[Event, bool]]:
        """(event, is_resend) pairs to send in round ``r``."""
        out = [(e, False) for e in self.events if e.send_round == r]
        out += [(e, True) for e in self.events for rr in e.resend_rounds if rr == r]
        return out

    @property
    def sends(self) -> int:
        return sum(1 + len(e.resend_rounds) for e in self.events)

    def of(self, customer_id: str) -> Customer:
        return next(c for c in self.customers if c.customer_id == customer_id)


def _iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event(kind: str, customer_id: str, profile: str, when: dt.datetime, rng: random.Random) -> dict:
    body = {"specversion": "1.0", "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "source": "/chaos", "time": _iso(when), "datacontenttype": "application/json"}
    if kind == CREATED:
        data = {"customerId": customer_id, "displayName": f"Chaos customer {customer_id}", "profile": profile}
        if profile != "oem" and rng.random() < 0.5:
            data["redirectUris"] = [f"https://{customer_id.lower().replace('.', '-')}.example/callback"]
        body.update(type="customer.created", data=data)
    elif kind == REMOVED:
        body.update(type="customer.removed", data={"customerId": customer_id, "reason": "chaos"})
    else:  # invalid: a created event without a profile
        body.update(type="customer.created", data={"customerId": customer_id, "displayName": "No profile"})
    return body


def build_workload(customers: int, seed: int, *, duplicate_rate: float = 0.3, invalid_every: int = 10,
                   now: dt.datetime | None = None) -> Workload:
    """``customers`` lifecycles: plans and profiles rotate so that every plan meets every profile; ids vary in
    case and punctuation so that the app's derived names (hashed when the id had to change) are exercised."""
    rng = random.Random(seed)
    # An hour in the past: every time is valid (at most 5 minutes in the future) and none is newer than "now".
    base = (now or dt.datetime.now(dt.timezone.utc)) - dt.timedelta(hours=1)
    plans = list(PLANS)
    out: list[Customer] = []
    for i in range(customers):
        plan = plans[i % len(plans)]
        profile = PROFILES[(i // len(plans)) % len(PROFILES)]
        cid = f"chaos-{i:03d}" if i % 5 else f"Chaos.{i:03d}"
        kinds, order = PLANS[plan]
        start = base + dt.timedelta(seconds=10 * i)
        step = 0 if plan in TIED else 1
        bodies = [_event(kind, cid, profile, start + dt.timedelta(seconds=k * step), rng)
                  for k, kind in enumerate(kinds)]
        events = []
        for send_round, k in enumerate(order):
            ev = Event(cid, kinds[k], bodies[k], send_round)
            if rng.random() < duplicate_rate:
                ev.resend_rounds.append(send_round + rng.randint(0, 2))
            events.append(ev)
        out.append(Customer(cid, plan, profile, sorted(events, key=lambda e: e.time)))
    invalid = []
    for j in range(max(1, customers // invalid_every) if invalid_every else 0):
        cid = f"chaos-bad-{j:02d}"
        invalid.append(Event(cid, "invalid", _event("invalid", cid, "oem", base, rng), rng.randint(0, 2)))
    return Workload(out, invalid)
