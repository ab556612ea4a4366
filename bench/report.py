"""The figures of one benchmark run with the targets beside them, for the console and for docs/BENCHMARKS.md.

Targets are printed, never asserted: a verdict says how a figure compares with its target in this run.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import critical_path
from .stats import ratio

SERVICES = ("auth0", "keyvault", "apim", "identity", "ledger")
LABELS = {"auth0": "Auth0", "keyvault": "Key Vault", "apim": "APIM", "identity": "identity", "ledger": "ledger"}

# The targets
SCALE_CEILING_SHARE = 0.90       # of the ceiling, with 4 hosts
SCALE_MAX_429_PER_100 = 1.0      # answers of 429 per 100 customers
SCALE_MAX_AUTH0_CALLS = 2.05     # per created customer
LATENCY_TARGET = 1.10            # p50 / floor (the critical path's p50 with no overhead) on the realistic profile
EXISTING_MIN_SHARE = 0.95        # throughput at the most existing customers / at the fewest
COLD_START_FACTOR = 2.0          # first event <= 2 x (host ready + one token fetch + floor)


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]


def _ms(v: float) -> str:
    return f"{v:.0f} ms"


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else (" PASS" if ok else " MISS")


def _spread(reps, attr: str) -> str:
    values = [getattr(r, attr) for r in reps]
    return " / ".join(f"{v:.0f}" for v in values)


def latency_table(r: dict) -> Table:
    rows = []
    for name, p in r["profiles"].items():
        for flow in ("created", "removed"):
            f = p["floors"][flow]
            floor = f["floor_ms"]
            s = p["service"]
            lat, reps = s[flow], s[f"reps_{flow}"]
            k = ratio(lat.p50, floor)
            target = f"<= {LATENCY_TARGET:.2f} x" if name == "realistic" else "-"
            ok = k <= LATENCY_TARGET if name == "realistic" else None
            seq, plain = p["sequential"][flow], p["plain"][flow]
            medians = f.get("sum_of_medians_ms")
            rows.append([
                name, flow,
                f"**{_ms(lat.p50)}** / {_ms(lat.p95)}",
                f"{_spread(reps, 'p50')} / {_spread(reps, 'p95')}",
                f"{_ms(floor)} / {_ms(f.get('floor_p95_ms', floor))}"
                + (f"; as the service layer phases it {_ms(f['phased_p50_ms'])}" if "phased_p50_ms" in f else ""),
                f"{k:.2f} x", target + _verdict(ok),
                "-" if medians is None else f"{_ms(medians)} ({ratio(lat.p50, medians):.2f} x)",
                f"{_ms(seq.p50)} / {_ms(seq.p95)} ({ratio(seq.p50, floor):.2f} x)",
                f"{_ms(plain.p50)} / {_ms(plain.p95)} ({ratio(plain.p50, floor):.2f} x)",
            ])
    return Table("Latency per customer: the service call, one customer at a time",
                 ["profile", "flow", "p50 / p95 (all reps)", "p50s / p95s per rep",
                  "critical-path floor, p50 / p95 (the graph with no overhead)", "p50 / floor", "target",
                  "sum of the medians on the critical path (app p50 / it)", "baseline: steps sequential, p50 / p95",
                  "baseline: plain SDK script"],
                 rows)


def _calls(counts) -> str:
    parts = []
    for s in SERVICES:
        value = counts.per_customer(s)
        if value:
            parts.append(f"{LABELS[s]} {value:.2f}")
    return f"**{counts.total_per_customer():.2f}**: " + ", ".join(parts)


def calls_table(r: dict) -> Table:
    rows = []
    for name, p in r["profiles"].items():
        for flow, key in (("created", "calls_created"), ("removed", "calls_removed")):
            counts = p["service"][key]
            minimum = p["floors"][flow]["minimum"]
            mins = ", ".join(f"{LABELS[s]} {minimum[s]}" for s in SERVICES if minimum.get(s))
            rows.append([name, flow, _calls(counts), f"{sum(minimum.values())} ({mins})",
                         f"{counts.total_per_customer() - sum(minimum.values()):+.2f}"])
    return Table("External calls per customer (mean over the first repetition's customers)",
                 ["profile", "flow", "calls per customer", "design minimum", "above it"], rows)


def ceiling(r: dict) -> tuple[float, str]:
    """Customers/s the shared limits allow: the tighter of Auth0's (rate / Auth0 calls per customer) and ARM's
    writes (rate / writes per customer; its burst aside)."""
    a = r["args"]
    auth0_calls = critical_path.minimum_calls(critical_path.CREATED)["auth0"]
    writes = sum(1 for c in critical_path.CREATED if c.service == "apim" and c.op.endswith("create_or_update"))
    arm_rate = r["arm_limits"]["writes"][0]
    by_auth0 = a["auth0_rate"] / auth0_calls
    by_arm = arm_rate / writes if writes else float("inf")
    text = (f"{min(by_auth0, by_arm):.2f}/s = min(Auth0 {a['auth0_rate']:g} req/s / {auth0_calls} calls, "
            f"ARM {arm_rate:g} writes/s / {writes} writes)")
    return min(by_auth0, by_arm), text


def scale_table(r: dict) -> Table:
    top, text = ceiling(r)
    rows = []
    biggest = max((s["hosts"] for s in r["scale"]), default=0)
    for s in r["scale"]:
        share = s["per_second"] / top if top else 0.0
        per100 = 100.0 * (s["auth0_429"] + s["arm_429"]) / max(1, s["applied"])
        judged = s["hosts"] == biggest and biggest >= 4
        ok = (share >= SCALE_CEILING_SHARE and per100 <= SCALE_MAX_429_PER_100
              and s["auth0_calls_per_customer"] <= SCALE_MAX_AUTH0_CALLS and s["complete"]) if judged else None
        mem = ", ".join(f"{m / 1024:.0f}" for m in s["peak_memory_kib"])
        rows.append([str(s["hosts"]), f"**{s['per_second']:.2f}**" + ("" if s["complete"] else
                                                                       f" ({s['applied']}/{s['customers']} applied)"),
                     f"{share:.0%}", f"{per100:.1f} (Auth0 {s['auth0_429']}, ARM {s['arm_429']})",
                     f"{s['auth0_calls_per_customer']:.2f}", f"{s['held_after_429']} / {s['retries_scheduled']}",
                     str(s["dead_lettered"]), mem,
                     (f">= {SCALE_CEILING_SHARE:.0%}, <= {SCALE_MAX_429_PER_100:g} 429/100, <= "
                      f"{SCALE_MAX_AUTH0_CALLS} Auth0 calls" + _verdict(ok)) if judged else "-"])
    n = r["scale"][0]["customers"] if r["scale"] else 0
    return Table(f"Scale-out: host processes sharing one Auth0 tenant limit and one ARM principal limit ({n} customers "
                 f"created at once; ceiling {text})",
                 ["hosts", "customers/s", "% of ceiling", "429s per 100 customers", "Auth0 calls per customer",
                  "held after a 429 / retries scheduled", "dead-lettered", "peak memory per host (MiB)", "target"],
                 rows)


def existing_table(r: dict) -> Table:
    rows = []
    runs = r["existing"]
    first = runs[0]["per_second"] if runs else 0.0
    for i, e in enumerate(runs):
        share = ratio(e["per_second"], first)
        last = i == len(runs) - 1 and len(runs) > 1
        ok = share >= EXISTING_MIN_SHARE if last else None
        lists = e["apim_calls"].get("authorization_servers.list", 0) / max(1, e["applied"])
        rows.append([str(e["existing"]), f"**{e['per_second']:.2f}**", f"{share:.0%}", f"{lists:.2f}",
                     f"{e['arm_429']}", (f">= {EXISTING_MIN_SHARE:.0%} of the first" + _verdict(ok)) if last else "-"])
    n = runs[0]["customers"] if runs else 0
    return Table(f"Throughput against existing customers (authorization servers already in APIM; {n} customers "
                 f"created at once through one host)",
                 ["existing", "customers/s", "vs the first row", "ARM list requests per customer", "ARM 429s",
                  "target"], rows)


def cold_table(r: dict) -> Table:
    main = next(iter(r["profiles"]))
    p = r["profiles"][main]
    fe = r["first_event"]
    reference = fe["ready_ms"] + p["token_ms"] + p["floors"]["created"]["floor_ms"]
    k = ratio(fe["first_event_ms"], reference)
    imp = r["imports"]
    app_ms, bare_ms = imp["function_app"]["median_ms"], imp["azure.functions"]["median_ms"]
    return Table(f"Cold start ({main} profile)", ["measure", "figure", "reference", "target"], [
        [f"host process start to first applied event (median of {len(fe['first_event_samples_ms'])})",
         f"**{_ms(fe['first_event_ms'])}** (" + " / ".join(f"{v:.0f}" for v in fe["first_event_samples_ms"]) + ")",
         f"host ready {_ms(fe['ready_ms'])} + token {_ms(p['token_ms'])} + created floor p50 "
         f"{_ms(p['floors']['created']['floor_ms'])} = {_ms(reference)}; ratio {k:.2f}",
         f"<= {COLD_START_FACTOR:g} x" + _verdict(k <= COLD_START_FACTOR)],
        [f"import function_app (median of {len(imp['function_app']['samples_ms'])} fresh interpreters)",
         f"**{_ms(app_ms)}**", f"bare import azure.functions {_ms(bare_ms)} ({ratio(app_ms, bare_ms):.2f} x)", "-"],
    ])


def tables(r: dict) -> list[Table]:
    return [latency_table(r), calls_table(r), scale_table(r), existing_table(r), cold_table(r)]


def render(table: Table, bold: bool = True) -> str:
    lines = [f"**{table.title}**" if bold else table.title, "",
             "| " + " | ".join(table.header) + " |", "|" + "---|" * len(table.header)]
    for row in table.rows:
        cells = [c if bold else c.replace("**", "") for c in row]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def _machine_line(r: dict) -> str:
    m = r["machine"]
    mem = f"{m['memory_gib']:.1f} GiB" if m.get("memory_gib") else "?"
    return (f"{m['cpu']}, {m['cores']} cores, {mem} memory, Python {m['python']}, {m['platform']}; "
            f"{m['date']}, commit {m['commit']}")


def _load_line(r: dict) -> str:
    load = r["load"]
    run = load["run"]
    scale = load.get("scale") or {}
    top = (load.get("top_others") or []) if run["other_cores"] >= 0.05 else []
    named = ("; busiest other processes: " + ", ".join(f"`{cmd}` {sec:.0f} s" for cmd, sec in top)) if top else ""
    during = f", during the scale-out runs {scale['other_cores']:.2f}" if scale else ""
    return (f"load average before {load['loadavg_start'][0]:.2f} (1 min) / after {load['loadavg_end'][0]:.2f}; "
            f"during the run other processes used {run['other_cores']:.2f} cores on average (the run itself "
            f"{run['ours_cores']:.2f}){during}{named}")


def console(r: dict) -> str:
    head = [f"machine: {_machine_line(r)}", f"load:    {_load_line(r)}",
            f"run:     {r['duration_s']:.0f} s; profiles: " + "; ".join(
                p["description"] for p in r["profiles"].values()), ""]
    return "\n".join(head) + "\n\n".join(render(t, bold=False) for t in tables(r))


def jsonable(value):
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "as_dict"):
        return value.as_dict()
    return value


def _chain(r: dict, name: str, flow: str) -> str:
    return " -> ".join(f"`{c}`" for c in r["profiles"][name]["floors"][flow]["chain"])


def _floor(r: dict, name: str, flow: str, key: str) -> str:
    value = r["profiles"][name]["floors"][flow].get(key)
    return "?" if value is None else _ms(value)


def markdown(r: dict) -> str:
    from .docs_template import TEMPLATE
    a = r["args"]
    busy = r["load"]["run"]["other_cores"]
    cores = r["machine"].get("cores") or 1
    load_note = ("The machine was otherwise quiet." if busy < 0.1 else
                 f"Other processes took {busy / cores:.0%} of the machine's {cores} cores during the run: "
                 + ("light load." if busy / cores < 0.15 else "compare with care, or rerun on a quiet machine."))
    names = list(r["profiles"])
    main = names[0]
    chains = "\n".join(f"- **{n}**, created: {_chain(r, n, 'created')}: medians sum to "
                       f"{_floor(r, n, 'created', 'sum_of_medians_ms')}, floor p50 "
                       f"{_floor(r, n, 'created', 'floor_ms')}; removed: {_chain(r, n, 'removed')}: medians sum to "
                       f"{_floor(r, n, 'removed', 'sum_of_medians_ms')}, floor p50 "
                       f"{_floor(r, n, 'removed', 'floor_ms')}"
                       for n in names)
    return TEMPLATE.format(
        machine=_machine_line(r), load=_load_line(r), load_note=load_note,
        duration=f"{r['duration_s']:.0f}", duration_min=f"{r['duration_s'] / 60:.1f}",
        tables="\n\n".join(render(t) for t in tables(r)),
        main=main, customers=a["customers"], reps=a["repetitions"], baseline=a["baseline_customers"],
        hosts=", ".join(str(h) for h in a["hosts"]), scale_customers=a["scale_customers"],
        existing=", ".join(f"{e:,}" for e in a["existing"]), existing_customers=a["existing_customers"],
        rate=f"{a['auth0_rate']:g}", burst=a["auth0_burst"], arm_writes=a["arm_writes"], arm_reads=a["arm_reads"],
        cold=a["cold_repetitions"], imports=a["import_repetitions"], chains=chains,
    )
