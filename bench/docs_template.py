"""The text of docs/BENCHMARKS.md around a run's tables (``report.markdown`` fills it in)."""

TEMPLATE = """# Benchmarks

`make bench` (or `.venv/bin/python -m bench`) measures the app on the local stack, prints the tables below and
rewrites this file with the run's figures and the machine's load. Targets are printed beside the figures (PASS / MISS
for this run); no test asserts them. Ratios compare the app with what the run's own set-up allows (the floor of the
latency profile, the ceiling of the shared rate limits), not with absolute numbers of this machine.

## Run

- **Machine**: {machine}
- **Load**: {load}. {load_note}
- **Duration**: {duration} s ({duration_min} min) for the whole run, stack start-up included (`make setup` not).

{tables}

## Latency profiles

A profile gives, per service and operation, the median and the 95th percentile of one call as a Function App in the
same region would see it. The stand-ins draw each call's latency from the lognormal distribution with that median
and p95 (`bench/profiles/*.toml`, applied through the stand-ins' fault-injection control API); the ledger's delay
proxy in front of Azurite draws each round trip's latency the same way and holds the answer until it has passed
since the request, so that Azurite's own time (several milliseconds on this machine, as much as the profile's
median) is inside the drawn latency rather than added to it. The managed-identity endpoint and Service Bus get
none.

| service, operation | realistic p50 / p95 | uniform | source |
|---|---|---|---|
| Table Storage (the ledger), every request | 8 / 30 ms | 40 ms | Estimate. Microsoft documents throughput targets for Table Storage, not latency; its comparison with Cosmos DB for Table describes Table Storage latency as "fast, but no upper bounds". Single-digit milliseconds in one region is the common observation; the tail is a guess. |
| ARM writes (PUT authorization server, PUT subscription) | 1000 / 2500 ms | 40 ms | Estimate: ARM routes each write to the API Management resource provider, which applies it before answering; about a second is typical of such synchronous writes. Microsoft documents ARM's throttling (below), not its latency. |
| ARM deletes | 900 / 2200 ms | 40 ms | Estimate, as writes. |
| ARM reads and lists | 120-200 / 350-600 ms | 40 ms | Estimate: a read served from the resource provider's store. |
| Auth0 Management API: create application | 350 / 900 ms | 40 ms | Estimate. Auth0 publishes rate limits, not latency; a write to a multi-region tenant store plus secret generation takes a few hundred ms. |
| Auth0: grant create/delete, application delete | 200-250 / 550-700 ms | 40 ms | Estimate, as above. |
| Auth0: reads, token | 120-150 / 350-400 ms | 40 ms | Estimate. |
| Key Vault: set, delete | 60 / 180 ms | 40 ms | Estimate: Microsoft documents Key Vault's service limits (transactions per 10 s), not latency. |
| Key Vault: reads (the delete poll, only when a removal purges) | 30 / 100 ms | 40 ms | Estimate. |

Every figure but the limits is an estimate: replace them with the deployed app's own dependency telemetry
(Application Insights: `dependencies | summarize percentiles(duration, 50, 95) by target, name`) when there is one.

**Rate limits.** Auth0's Management API bucket is per tenant: every client shares it (the stand-in keeps one bucket
for all clients and sends `x-ratelimit-limit`/`-remaining`/`-reset` on every answer). The throughput runs use
{rate} requests/s with a burst of {burst}. ARM limits each principal per region with token buckets (Microsoft,
"Understand how Azure Resource Manager throttles requests": reads 250 refilled at 25/s, writes 200 at 10/s, deletes
200 at 10/s); the API Management stand-in applies writes {arm_writes}, reads {arm_reads} per principal (the
token's `oid`/`appid`), answers `x-ms-ratelimit-remaining-subscription-reads`/`-writes`/`-deletes` and, when empty,
429 with `Retry-After`. Every instance of the app uses one managed identity, so they share one principal's buckets.

## What is measured, and how

Everything runs on loopback: the local stack (`python -m emulators serve`, its own process), the app's real SDK
clients, and the local Functions host (`python -m funchost`, one process per host) with the repository's `host.json`
(`maxConcurrentCalls` 8, and `PYTHON_THREADPOOL_THREAD_COUNT` 8 so that the worker runs all eight). All customers use
the `oem` profile: a confidential third-party application, its grant, a Key Vault secret, an APIM authorization
server and subscription. API Management is on the Premium tier (500 authorization servers) for the latency and
scale-out runs, so every creation reserves a slot in the ledger and every removal gives it back, as on any tier
that caps them; the existing-customers and cold-start runs use Isolated (no cap: 2,000 entries would not fit).

- **Latency per customer**: `ProvisioningService.handle` called in the benchmark's process, from its start to its
  return, one customer at a time: {reps} repetitions of {customers} customers created, then the same removed, after
  one warm-up customer (the process's first customer pays for tokens and clients). p50 and p95 over all repetitions,
  and per repetition (their spread). The floor is the profile's critical-path floor (below): the p50 (and p95) that
  the flow's graph of calls would take with no overhead at all.
- **Baselines** (same run, same stand-ins and profile, {baseline} customers each): *steps sequential* is the same
  app with `max_parallel_steps` 1, every step of an event one after another; *plain SDK script*
  (`bench/plain_script.py`) is what a team would write first: auth0-python, azure-keyvault-secrets,
  azure-mgmt-apimanagement and azure-data-tables called one after another, the SDKs' default retries, no pacing, no
  intent records, no idempotency.
- **External calls per customer**: counted by the stand-ins (every HTTP request, Key Vault's 401 challenge and
  Auth0's token request included) and, for the ledger, by an azure-core response hook on its client, over the first
  repetition's customers. Identity = token requests to the managed-identity endpoint.
- **Scale-out** ({main} profile): {hosts} host processes at once, each with the same settings and no
  `AUTH0_RATE_LIMIT`: they pace on the rate-limit headers only and never talk to each other. The Auth0 stand-in gets
  a new tenant bucket ({rate}/s, burst {burst}) and the APIM stand-in new ARM buckets; the hosts take two warm-up
  customers each; after an idle moment in which the buckets fill, {scale_customers} `customer.created` events are
  sent at once (a backlog arriving at instances that were serving). Throughput = customers applied /
  (last applied - first send), from each host's log line of the applied event. The ceiling is the tighter of the two
  shared limits: Auth0's rate over its 2 calls per created customer, and ARM's write rate over its 2 writes per
  customer (ARM's burst of 200 writes carries the first 100 customers; the ceiling ignores it). 429s are Auth0's
  answers as httpx logs them in the hosts plus the ARM stand-in's count of throttled requests; Auth0 calls per
  customer is the stand-in's count of every Auth0 request (refused ones and token requests included) over the
  customers applied. Peak memory is each host's `VmHWM` from `/proc/<pid>/status`, read before it stops.
- **Existing customers** ({main} profile): API Management is emptied, then filled with other customers' authorization
  servers ({existing}, straight through the SDK with the limits and latency off meanwhile); at each level one host
  creates {existing_customers} customers at once under the same shared limits. Flat is the target: a create should
  cost the same whatever the number of customers.
- **Cold start** ({main} profile): a fresh host process with one created event waiting in the queue, spawn -> "Host
  started" -> the event applied ({cold} repetitions, median); the reference is host ready + one token fetch (the
  profile's median) + the created floor's p50. The host starts with `WARM_UP` on, the app's default: once the
  functions are indexed, a background thread builds the clients and makes each one's first call while the host
  connects the trigger. And `import function_app` against a bare `import azure.functions`, each in fresh
  interpreters ({imports}, the first left out).

### How the floor is derived

`bench/critical_path.py` writes each flow down as a graph of its external calls in a warm process (tokens, Key
Vault's challenge and the APIM tier are per process, not per customer), each with the calls whose results it needs
and the stand-in operation it is. The design minimum is the number of calls per service. The floor is the time of
the longest chain of calls that must follow one another when nothing but the calls costs anything.

A profile gives each call a distribution, not a number, so the floor is a distribution too:
`critical_path.profile_floor` draws every call of the graph from the profile (10,000 draws of the whole graph,
seeded) and takes the p50 and p95 of the longest chain. That p50 is what an implementation of the graph with no
overhead at all would measure, and the least p50 any implementation of it can have; the app's p50 over it is the
app's own overhead, which is what the target bounds. On a profile without spread (uniform) it is the plain sum of
the latencies along the chain, as before.

The sum of the operations' medians along the chain (the "sum of the medians" column; the floor of earlier runs) is
lower, and no implementation reaches it once the latencies spread: the slower of two parallel branches sets the
pace, and the median of a sum of skewed latencies is above the sum of their medians. On the realistic profile the
graph with no overhead is 1.32 x that sum for a creation and 1.36 x for a removal; even a creation that ran the
subscription beside the application (the data dependencies alone) would be 1.21 x. A p50 target of 1.10 x the sum
of the medians is therefore out of reach of any implementation, and the table prints the ratio to it only for
comparison with earlier runs.

The graphs follow the order of docs/DESIGN.md, which the service layer runs as written (no phase waits for a step
it does not need; `max_parallel_steps` 5 is the widest group):

- **customer.created**: ledger read -> the claim, beside the capacity reservation (a read of the pool's counter and
  this customer's row, then both written in one ETag-checked transaction) -> the Auth0 application, alone (the one
  step whose refusal must leave nothing behind) -> the client id recorded, the grant, the secret, the authorization
  server and the subscription at once -> the final write. The subscription needs nothing from the application; it
  waits for it by design, and overlaps the authorization server, the other ARM write. The tier's SKU is read once per
  process and the reservation counter seeded once per deployment (the one listing of the entries): neither is per
  customer.
- **customer.removed**: ledger read -> claim -> at once: the subscription's delete; the authorization server's
  delete, then its slot given back (a read and a transaction); the secret's soft delete, not waited for (only a
  purge needs it finished); the grant's delete, then the application's -> the final write. The grant is deleted by
  itself because Auth0's reference does not say that deleting an application deletes its grants (docs/DESIGN.md).

{chains}

When a flow changes, edit `CREATED`/`REMOVED` in `bench/critical_path.py`; the floors, minimums and the report
follow. A flow that the service layer runs in phases (each waiting for the whole previous one) goes in
`critical_path.PHASES`, and the latency table then shows the no-overhead p50 of the graph as phased beside the
design's.

## Reproduce

```bash
make bench                                    # the run above; rewrites this file
.venv/bin/python -m bench --quick             # a smoke run with small numbers (prints only)
.venv/bin/python -m bench --no-write --profiles uniform --hosts 1,2,4 --scale-customers 300
```

Options: `--customers`, `--repetitions`, `--baseline-customers`, `--hosts`, `--scale-customers`, `--existing`,
`--existing-customers`, `--auth0-rate`, `--auth0-burst`, `--arm-writes`, `--arm-reads`, `--json FILE` (raw
results), `--keep` (keep the stack folder with the host logs). Another job on the same machine skews the figures:
the "Load" line says how busy it was.

## Reading the figures

- **Pacing is tenant-wide.** Each instance reads the tenant's bucket from Auth0's headers (and the principal's from
  ARM's) and spreads what is left above a reserve over the time the bucket needs to refill, holding at zero until the
  reset (`shared/adapters/rate_governor.py`). N instances doing so settle where their summed rate is the refill
  rate, so adding hosts neither adds 429s nor slows the backlog; the first burst after an idle period can still meet a
  few 429s, each absorbed in-call (the call waits for the reset and goes again: a 429 applied nothing).
- **Existing customers.** A creation no longer lists the authorization servers: the capacity check is a slot
  reservation in the ledger (one partition, a counter and a row per holder), so the "ARM list requests per customer"
  column stays at 0 and the time per create does not depend on how many customers exist. What remains of the
  throughput's spread between levels is the run's noise (the machine's load, the shared limits' first burst).
- **The reservation under a backlog.** On a capped tier every creation writes the slot pool's one counter row
  (ETag-checked), and a backlog reaching several hosts at once makes those writes collide. A host's invocations
  now take turns at it, and the hosts' losers back off at random (full jitter, 10 ms doubling to 500 ms, 30
  tries; `shared/adapters/table_ledger.py`). Two earlier runs of this benchmark on the capped tier, on the same
  busy machine, show why: with 8 immediate tries and no backoff, 4 hosts reached 0.62 customers/s (12% of the
  ceiling) with 73 retries scheduled and 7.05 Auth0 calls per customer; with the backoff alone, 1 / 2 / 4 hosts
  reached 2.85 / 2.82 / 2.63 customers/s (57 / 56 / 53%), a reservation taking 150 ms / 821 ms / 3.8 s at the
  median (p95 0.6 / 6.1 / 20 s) while the Auth0 create took about 500 ms throughout.
- **The order of steps.** The Auth0 application goes first and alone; everything else waits for it, the
  subscription included, though it needs nothing from it. On the realistic profile that puts the application's
  create (about 350 ms) and then an ARM write (about a second) on the critical path, one after the other: the price
  of a refusal by Auth0 (its entity limit, a validation error) leaving nothing behind in API Management.
- **Baselines.** The sequential baseline shows what running independent steps side by side saves on each profile;
  the plain script shows the cost of the app's ledger steps (claim, records, commit) against what it buys: no
  duplicate applications after a retry, no orphaned resources, pacing under load.
"""
