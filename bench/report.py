"""One table of figures with the targets beside them, for the console and for docs/BENCHMARKS.md."""
from __future__ import annotations

from dataclasses import dataclass

from . import critical_path
from .stats import ratio

SERVICES = ("auth0", "keyvault", "apim", "identity", "ledger")
LABELS = {"auth0": "Auth0", "keyvault": "Key Vault", "apim": "APIM", "identity": "identity", "ledger": "ledger"}


@dataclass
class Row:
    measure: str
    figure: str
    reference: str
    target: str = "-"
    result: str = ""
    passed: bool | None = None  # None: no target


def _ms(v: float) -> str:
    return f"{v:.0f} ms"


def _calls(counts, minimum: dict[str, int]) -> tuple[str, str]:
    per = counts.per_customer
    parts = []
    for s in SERVICES:
        value = per(s)
        label = LABELS[s]
        if s == "auth0":
            label += f" {value:.2f} (token {counts.by_operation.get('auth0', {}).get('oauth.token', 0) / counts.customers:.2f})"
        elif s == "keyvault":
            label += f" {value:.2f} (challenge {counts.keyvault_challenges / counts.customers:.2f})"
        elif s == "identity":
            label += f" tokens {value:.2f}"
        else:
            label += f" {value:.2f}"
        parts.append(label)
    total = counts.total_per_customer()
    mins = ", ".join(f"{LABELS[s]} {minimum.get(s, 0)}" for s in SERVICES if minimum.get(s))
    return f"**{total:.2f}**: " + ", ".join(parts), f"design minimum {sum(minimum.values())} ({mins})"


def rows(r: dict) -> list[Row]:
    out: list[Row] = []
    lat = r["args"]["latency_ms"]
    for flow in ("created", "removed"):
        floor = r["floors"][flow]
        s = r["service"][flow]
        k = ratio(s.p50, floor["floor_ms"])
        out.append(Row(f"Latency per {flow} customer, service call (n={len(s.samples_ms)})",
                       f"p50 **{_ms(s.p50)}**, p95 {_ms(s.p95)}",
                       f"floor {_ms(floor['floor_ms'])} = {floor['sequential']} sequential calls x {lat:g} ms",
                       "p50 <= 1.25 x floor", f"{k:.2f} x", k <= 1.25))
    for flow in ("created", "removed"):
        floor = r["floors"][flow]
        e = r["e2e"][flow]
        h = r["e2e"][f"{flow}_handler"]
        out.append(Row(f"Latency per {flow} customer, end to end: Service Bus + host (n={len(e.samples_ms)})",
                       f"p50 **{_ms(e.p50)}**, p95 {_ms(e.p95)} (in the handler: p50 {_ms(h.p50)})",
                       f"floor {_ms(floor['floor_ms'])}", "-", f"{ratio(e.p50, floor['floor_ms']):.2f} x"))
    for flow, key in (("created", "calls_created"), ("removed", "calls_removed")):
        counts = r["service"][key]
        minimum = r["floors"][flow]["minimum"]
        figure, reference = _calls(counts, minimum)
        total, least = counts.total_per_customer(), sum(minimum.values())
        if flow == "created":
            out.append(Row(f"External calls per created customer (mean of {counts.customers})", figure, reference,
                           "<= minimum + 1", f"{total - least:+.2f}", total <= least + 1))
        else:
            out.append(Row(f"External calls per removed customer (mean of {counts.customers})", figure, reference,
                           "-", f"{total - least:+.2f}"))
    first = r["service"]["calls_first_created"]
    out.append(Row("External calls of a process's first created customer (not in the means above)",
                   f"{first.total_per_customer():.0f}: " + ", ".join(
                       f"{LABELS[s]} {first.per_customer(s):.0f}" for s in SERVICES),
                   "tokens, Key Vault's challenge, the APIM tier and the ledger table are fetched or made once "
                   "per process"))
    b = r["backfill"]
    per_customer_design = critical_path.minimum_calls(critical_path.CREATED)["auth0"]
    ceiling = r["args"]["auth0_rate"] / per_customer_design
    share = b["per_second"] / ceiling
    pacing = "off" if r["args"].get("no_pacing") else f"AUTH0_RATE_LIMIT={r['args']['auth0_rate']:g}"
    out.append(Row(f"Backfill throughput: {b['customers']} created at once through Service Bus + host",
                   f"**{b['per_second']:.2f} customers/s** ({b['applied']} in {b['seconds']:.1f} s; app pacing "
                   f"{pacing})",
                   f"ceiling {ceiling:.2f}/s = {r['args']['auth0_rate']:g} req/s / {per_customer_design} Auth0 calls "
                   f"per customer (burst {r['args']['auth0_burst']})",
                   ">= 90% of ceiling", f"{share:.0%}", share >= 0.9 and b["complete"]))
    clean = b["dead_lettered"] == 0 and not b["duplicates"]
    out.append(Row("Backfill: 429s, retries, dead letters, duplicates",
                   f"429s from Auth0 {b['http_429']} (absorbed in-call {b['paced_holds']}, failed an event "
                   f"{b['failed_on_429']}); retries scheduled {b['retries_scheduled']}; dead-lettered "
                   f"**{b['dead_lettered']}**; duplicates **{len(b['duplicates'])}**; orphans "
                   f"{len(b['unattributed'])}; not fully provisioned {len(b['incomplete'])}; ledger provisioned "
                   f"{b['ledger_provisioned']}/{b['customers']}",
                   "", "0 dead-lettered, 0 duplicates", "", clean))
    out.append(Row("Backfill: Auth0 calls per customer (server's count)", f"{b['auth0_calls_per_customer']:.2f} "
                   f"({', '.join(f'{k} {v}' for k, v in sorted(b['auth0_calls'].items()))})",
                   f"design {per_customer_design}"))
    imp = r["imports"]
    app_ms, bare_ms = imp["function_app"]["median_ms"], imp["azure.functions"]["median_ms"]
    k = ratio(app_ms, bare_ms)
    n = len(imp["function_app"]["samples_ms"])
    out.append(Row(f"Cold start: import function_app (median of {n} fresh processes)", f"**{_ms(app_ms)}**",
                   f"bare import azure.functions {_ms(bare_ms)}", "<= 1.5 x bare", f"{k:.2f} x", k <= 1.5))
    fe = r["first_event"]
    out.append(Row(f"Cold start: host process start to first completed event (median of "
                   f"{len(fe['first_event_samples_ms'])})", f"**{_ms(fe['first_event_ms'])}**",
                   f"host ready (functions indexed, listening) after {_ms(fe['ready_ms'])}"))
    mem = b["memory_kib"]
    out.append(Row("Peak memory of the host over the backfill (VmHWM)",
                   f"**{mem.get('VmHWM', 0) / 1024:.0f} MiB**", f"RSS at the end {mem.get('VmRSS', 0) / 1024:.0f} MiB"))
    return out


def _result(row: Row) -> str:
    if row.passed is None:
        return row.result
    return f"{row.result} {'PASS' if row.passed else 'FAIL'}".strip()


def markdown_table(rs: list[Row]) -> str:
    lines = ["| measure | figure | reference | target | result |", "|---|---|---|---|---|"]
    for row in rs:
        cells = [row.measure, row.figure, row.reference or "-", row.target or "-", _result(row) or "-"]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def _machine_line(r: dict) -> str:
    m = r["machine"]
    mem = f"{m['memory_gib']:.1f} GiB" if m.get("memory_gib") else "?"
    return (f"{m['cpu']}, {m['cores']} cores, {mem} memory, Python {m['python']}, {m['platform']}; "
            f"{m['date']}, commit {m['commit']}")


def _load_line(r: dict) -> str:
    load = r["load"]
    run, fill = load["run"], load["backfill"]
    top = (load.get("top_others") or []) if run["other_cores"] >= 0.05 else []
    named = ("; busiest other processes: " + ", ".join(f"`{cmd}` {sec:.0f} s" for cmd, sec in top)) if top else ""
    return (f"load average before {load['loadavg_start'][0]:.2f} (1 min) / after {load['loadavg_end'][0]:.2f}; "
            f"during the run other processes used {run['other_cores']:.2f} cores on average (the run itself "
            f"{run['ours_cores']:.2f}), during the backfill {fill['other_cores']:.2f}{named}")


def console_table(rs: list[Row], r: dict) -> str:
    plain = [Row(x.measure, x.figure.replace("**", ""), x.reference, x.target, x.result, x.passed) for x in rs]
    head = [f"machine: {_machine_line(r)}", f"load:    {_load_line(r)}",
            f"run:     {r['duration_s']:.0f} s, injected latency {r['args']['latency_ms']:g} ms per call "
            f"(Auth0, Key Vault, APIM via the control API; ledger via a delay proxy; Service Bus none)", ""]
    return "\n".join(head) + markdown_table(plain)


def jsonable(value):
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "as_dict"):
        return value.as_dict()
    return value


def _chain(r: dict, flow: str) -> str:
    return " -> ".join(f"`{c}`" for c in r["floors"][flow]["chain"])


def markdown(rs: list[Row], r: dict) -> str:
    a = r["args"]
    lat = a["latency_ms"]
    created, removed = critical_path.CREATED, critical_path.REMOVED
    busy = r["load"]["run"]["other_cores"]
    cores = r["machine"].get("cores") or 1
    load_note = ("The machine was otherwise quiet." if busy < 0.1 else
                 f"Other processes took {busy / cores:.0%} of the machine's {cores} cores during the run: "
                 + ("light load." if busy / cores < 0.15 else "compare with care, or rerun on a quiet machine."))
    return TEMPLATE.format(
        machine=_machine_line(r), load=_load_line(r), load_note=load_note, table=markdown_table(rs),
        lat=f"{lat:g}", customers=a["customers"], backfill=a["backfill"], rate=f"{a['auth0_rate']:g}",
        burst=a["auth0_burst"], reps=a["repetitions"], duration=f"{r['duration_s']:.0f}",
        created_chain=_chain(r, "created"), removed_chain=_chain(r, "removed"),
        created_n=len(r["floors"]["created"]["chain"]), removed_n=len(r["floors"]["removed"]["chain"]),
        created_floor=f"{r['floors']['created']['floor_ms']:.0f}",
        removed_floor=f"{r['floors']['removed']['floor_ms']:.0f}",
        created_calls=len(created), removed_calls=len(removed),
        overhead_created=r["service"]["created"].p50 - r["floors"]["created"]["floor_ms"],
        overhead_step=(r["service"]["created"].p50 - r["floors"]["created"]["floor_ms"])
        / max(1, len(r["floors"]["created"]["chain"])),
    )


TEMPLATE = """# Benchmarks

`make bench` (or `.venv/bin/python -m bench`) measures the app on the local stack, prints one table and rewrites
this file. The figures below are from one run; targets are ratios measured in that same run, so they compare the
app with what the run's own set-up allows rather than with absolute numbers of this machine.

## Run

- **Machine**: {machine}
- **Load**: {load}. {load_note}
- **Duration**: {duration} s for the whole run (stack start-up included, `make setup` not).

{table}

## What is measured, and how

Everything runs on loopback: the local stack (`python -m emulators serve`, its own process), the app's real SDK
clients, and for the end-to-end figures the local Functions host (`python -m funchost`, its own process) with the
repository's `host.json` (`maxConcurrentCalls` 8). All customers use the `oem` profile: a confidential third-party
application, its grant, a Key Vault secret, an APIM authorization server and subscription.

- **Injected latency**: {lat} ms on every operation of the Auth0, Key Vault and API Management stand-ins (their
  control API, `set_faults([{{"op": "*", "latency_ms": {lat}}}])`), and {lat} ms on every ledger request through a
  TCP proxy in front of Azurite's table endpoint (`bench/delay_proxy.py`: each chunk the client sends is forwarded
  {lat} ms after it arrived; answers return at once). The managed-identity stand-in and Service Bus get none.
- **Latency, service call**: `ProvisioningService.handle` called in the benchmark's process, from its start to its
  return, one customer at a time: {customers} created, then the same {customers} removed. A warm-up customer
  comes first (the process's first customer pays for tokens and clients; its calls are shown on their own row).
- **Latency, end to end**: from just before `send_messages` of the event to the host's log line that reports it
  applied (read from the host's stdout as it is written), one customer at a time, {customers} of each. "In the
  handler" is the app's own `duration_ms` of the same events.
- **External calls**: counted by the stand-ins themselves (every HTTP request, Key Vault's 401 challenge and the
  Auth0 token request included) and, for the ledger, by an azure-core response hook on its client; over the {customers}
  customers after the warm-up, divided by {customers}. Identity = token requests to the managed-identity endpoint.
- **Backfill**: a fresh host process takes one warm-up customer, then the Auth0 stand-in's bucket is set to
  {rate} requests/s with a burst of {burst} (a new, full bucket) and {backfill} `customer.created` events are sent
  at once (batches of 100). Throughput = customers applied / (last applied - first send). The ceiling is the rate
  divided by the design's Auth0 calls per created customer (2: create + grant; the token is one request per
  process per day). 429s are Auth0's answers as httpx logs them in the host; dead letters are counted by peeking
  the dead-letter queue; duplicates (two applications for one customer) and orphans come from
  `emulators.inspect.view_stack`; "not fully provisioned" checks every resource of every backfill customer.
- **Peak memory**: `VmHWM` of the backfill host process from `/proc/<pid>/status`, read before it stops.
- **Cold start**: `import function_app` and a bare `import azure.functions`, each timed inside a fresh interpreter
  (`time.perf_counter` around the import), interleaved, the first of each left out; and a fresh host process with
  one event waiting in the queue: spawn -> "Host started" -> the event applied (the first event imports the SDKs,
  builds the clients and fetches the tokens). {reps} repetitions, median.

### How the floor is derived

`bench/critical_path.py` writes each flow of [DESIGN.md](DESIGN.md) down as a graph of its external calls in a warm
process (tokens, Key Vault's challenge and the APIM tier are per process, not per customer), each with the calls
whose results it needs. The design minimum is the number of calls per service; the floor is the longest chain of
calls that must follow one another, each costing its service's injected latency. Unit tests in `tests/bench/`
check both.

**customer.created** ({created_calls} calls): `ledger.get_customer` (the state row and this event's audit row:
duplicate and stale checks need them) -> `ledger.claim` (ETag-checked, so it needs the row read; it records the
intent to create *before* the create) and, beside it, `apim.list_authorization_servers` (the capacity check must
say "full" before anything is created) -> `auth0.create_application` (after the claim and the capacity check) and,
beside it, `apim.set_subscription` (after the claim, so a removal that wins the claim cannot race it) ->
`ledger.record_client_id`, `auth0.create_client_grant`, `keyvault.set_secret`, `apim.set_authorization_server`
(all four need the client id or its secret, none needs another) -> `ledger.commit` (the final state and the audit
row in one transaction, after everything). A longest chain (the four calls after the create are equally long):
{created_chain}: **{created_n} calls, {created_floor} ms** at {lat} ms each.

**customer.removed** ({removed_calls} calls): `ledger.get_customer` -> `ledger.claim` -> four independent branches:
`apim.delete_subscription`; `apim.delete_authorization_server`; `keyvault.delete_secret` then its poll
`keyvault.get_deleted_secret` (Key Vault deletes asynchronously; the SDK's poller confirms it); and
`auth0.delete_client_grant` then `auth0.delete_application` (a grant must never outlive its application) ->
`ledger.commit`. A longest chain (the Auth0 branch is as long): {removed_chain}: **{removed_n} calls,
{removed_floor} ms**.

Without the ledger's latency (Azurite answers in a few ms) the floors would be 3 x {lat} ms for a creation and
2 x {lat} ms for a removal; the ledger is counted because Table Storage is a remote service like the others.

## Reproduce

```bash
make bench                          # the run above: writes this file; exit status 1 if a target is missed
.venv/bin/python -m bench --no-write --customers 50 --backfill 500 --latency-ms 40 --auth0-rate 10 --auth0-burst 20
.venv/bin/python -m bench --no-write --backfill 200 --no-pacing   # the backfill without AUTH0_RATE_LIMIT
```

Options: `--repetitions` (host cold starts), `--import-repetitions`, `--json FILE` (raw results), `--keep` (keep
the stack folder with the host logs). Another job on the same machine skews the figures: the "Load" line says how busy it was; rerun when it
shows other processes using a sizeable share of the cores.

## Findings

**Backfill without pacing collapses.** With the host's 8 concurrent calls (6 worker threads on 2 cores) against a
bucket of 10 requests/s, most Auth0 calls meet a 429. Each 429 fails the whole event: the trigger schedules a copy
at `x-ratelimit-reset` plus up to 1 s of jitter, and the next attempt runs the ledger steps again and, after a
refused create (its intent was recorded before the call), lists every application of the tenant to look for one
that was never made. Measured with `--no-pacing --backfill 200` (2026-11-26, the same machine; the app without
`AUTH0_RATE_LIMIT` behaves as it did before the change below): **36 customers applied in 300 s (0.12/s against a
ceiling of 5/s), 164 dead-lettered** (8 scheduled retries of 1-2 s each spend the retry budget in about 15 s,
while the backlog lasts minutes), 2,160 429s, 17.5 Auth0 calls per customer instead of 2 (1,768 of them
`clients.list`), no duplicate application. The dead-lettered customers keep the APIM subscription made beside the
refused create, recorded by their claim in the ledger (a removal deletes it).

**The change: client-side pacing in the Auth0 adapter** (`shared/adapters/throttle.py`, settings
`AUTH0_RATE_LIMIT` and `AUTH0_RATE_LIMIT_BURST`). Every Auth0 request, the token request included, takes a slot from
a token bucket with the tenant's rate; callers reserve slots in order and sleep outside the lock, so a backlog waits
a fraction of a second in-process instead of failing. The burst defaults to one second's worth, below the tenant's
burst, which leaves a margin for requests that reach Auth0 later than their slot. A paced call that still meets a
429 (another client shares the tenant's bucket) holds the bucket until `x-ratelimit-reset` and is tried again, at
most twice (a 429 applies nothing, so even a create is safe to repeat); unpaced, a 429 goes to the scheduled-copy
retry as before. With `AUTH0_RATE_LIMIT={rate}` (what the backfill host runs with) the backfill in the table
runs at the ceiling.

**Latency is the floor plus per-call overhead.** The flows make no call beyond the design's minimum and no
sequential call beyond its chain; what the table shows above the floor ({overhead_created:.0f} ms for a creation,
about {overhead_step:.0f} ms per call on the chain) is the clients' own work (azure-core pipelines, auth0-python's
models, TLS on loopback) and the stand-ins', all sharing the machine's cores, and the wait for the slowest of
parallel calls. The end-to-end figure adds the Service Bus hop and the host's dispatch: a few ms.
"""
