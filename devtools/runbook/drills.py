"""The runbook's incident, played on a private local stack: what docs/RUNBOOK.md shows, captured block by block.

An Auth0 outage (every token request answers 503) dead-letters four customer.created events after the app's
retries; the on-call engineer triages, replays and verifies (sections 1-5); a second outage is replayed by a run
that crashes half-way and is run again (6); a malformed batch is purged (7); two usage errors (9). Each block is
the real transcript of the command as the runbook prints it.
"""
from __future__ import annotations

import json
import sys
import time

from devtools.send import build_event, send_events

from .session import Session

OUTAGE = ["contoso", "relecloud", "fabrikam", "tailspin"]
SECOND_OUTAGE = ["vandelay", "soylent", "duffbeer"]
POISON = ["blackmesa", "aperture", "cyberdyne"]
LOCK_DURATION = 30  # the local queue's LockDuration (emulators/servicebus/config.json)


def _outage(s: Session, customers: list[str], already: int) -> None:
    s.stack.control("auth0").set_faults([{"op": "*", "error_rate": 1, "errors": [503]}])  # `emulators faults auth0 --error-rate 1 --errors 503`
    for i, customer in enumerate(customers, 1):  # one at a time: the same order and numbers on every run
        send_events([build_event("created", customer, profile="oem", display_name=f"{customer.title()} Ltd")],
                    s.values)
        s.wait_dead_lettered(already + i)


def _host_lines(s: Session) -> str:
    """The app's lines for one event of the outage: its first retry, the budget spent, and the dead-lettering."""
    lines = s.log_text().splitlines()
    first = next(i for i, line in enumerate(lines) if "customer=contoso" in line and "attempt=1 " in line)
    spent = next(i for i, line in enumerate(lines) if "customer=contoso" in line and "budget-spent" in line)
    after = [line for line in lines[spent + 1:spent + 4] if "customer=contoso" in line or "Executed" in line]
    return "\n".join([lines[first], lines[spent], *after[:2]])


def capture() -> dict[str, str]:
    out: dict[str, str] = {}
    s = Session()
    try:
        s.start_host()
        folder = f"--folder {s.stack.folder}"

        # 1-2: the outage, and what the on-call engineer sees
        _outage(s, OUTAGE, 0)
        out["host-log"] = _host_lines(s)
        out["list"] = s.run("python -m opstool list")
        out["list-json"] = s.run("python -m opstool list --json --limit 1")
        seq = s.dead_lettered()[0]["sequence_number"]
        out["show"] = s.run(f"python -m opstool show {seq}")

        out["stuck"] = s.run("python -m opstool customers --status provisioning")

        # 3-5: the cause fixed, a rehearsal, the replay, the check
        out["clear-faults"] = s.run("python -m emulators clear-faults auth0",
                                    run_as=f"python -m emulators {folder} clear-faults auth0")
        out["replay-dry-run"] = s.run("python -m opstool replay --reason auth0 --dry-run")
        out["replay-no-terminal"] = s.run("python -m opstool replay --reason auth0 < /dev/null", exit_code=True)
        out["replay"] = s.run("python -m opstool replay --reason auth0", tty=True, answer="y")
        for customer in OUTAGE:
            _wait(lambda c=customer: s.status(c) == "provisioned", f"{customer} to be provisioned")
        out["verify"] = "\n".join([
            s.run("python -m opstool list"),
            s.run("python -m opstool customers --status provisioning --status removing"),
            s.run("python -m opstool customers")])
        out["calls"] = s.run("python -m emulators calls auth0", run_as=f"python -m emulators {folder} calls auth0")

        # 6: a replay that crashes half-way, run again
        _outage(s, SECOND_OUTAGE, 0)
        s.stack.control("auth0").clear_faults()
        crash = s.run("python -m opstool replay --all --yes", env={"OPSTOOL_CRASH_AFTER_SEND": "2"},
                      exit_code=True)
        out["crash"] = crash.replace("$ python", "$ OPSTOOL_CRASH_AFTER_SEND=2 python", 1)
        _wait(lambda: s.status("soylent") == "provisioned", "the copy sent before the crash to be applied")
        out["crash-list"] = s.run("python -m opstool list")
        out["crash-locked"] = s.run("python -m opstool replay --all --yes", exit_code=True)
        time.sleep(LOCK_DURATION + 2)
        out["crash-again"] = s.run("python -m opstool replay --all --yes", exit_code=True)
        for customer in SECOND_OUTAGE:
            _wait(lambda c=customer: s.status(c) == "provisioned", f"{customer} to be provisioned")
        out["crash-customers"] = s.run("python -m opstool customers " +
                                       " ".join(f"--customer {c}" for c in sorted(SECOND_OUTAGE)))

        # 7: a malformed batch: three events without a profile, one body that is not JSON
        for customer in POISON:
            send_events([build_event("invalid", customer)], s.values)
        _send_raw(s, b"<customer id='tyrell'/>", "crm-export-0042", "application/xml")
        dead = s.wait_dead_lettered(len(POISON) + 1)
        out["poison-list"] = s.run("python -m opstool list")
        raw = next(m["sequence_number"] for m in dead if m["message_id"] == "crm-export-0042")
        out["poison-show"] = _from_body(s.run(f"python -m opstool show {raw}"))
        out["purge-dry-run"] = s.run("python -m opstool purge --reason rejected --export poison.jsonl --dry-run")
        out["purge"] = s.run("python -m opstool purge --reason rejected --export poison.jsonl", tty=True,
                             answer="y")
        out["purge-ls"] = s.run("ls -l poison.jsonl")
        first = json.loads((s.work / "poison.jsonl").read_text().splitlines()[0])
        out["export-line"] = "{\n" + ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in first.items()) \
            + "\n}"

        # 9: exit codes
        out["exit-codes"] = "\n".join([
            s.run('python -m opstool list --connection-string "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName='
                  'RootManageSharedAccessKey;SharedAccessKey=x;UseDevelopmentEmulator=true"', exit_code=True),
            s.run("python -m opstool replay", exit_code=True),
            s.run("python -m opstool customers  # the ledger's storage account unreachable", exit_code=True,
                  run_as="python -m opstool customers",
                  env={"LEDGER_CONNECTION": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
                       "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
                       "TableEndpoint=http://127.0.0.1:1/devstoreaccount1"})])
    except BaseException:
        print("the local host's last lines:\n" + "\n".join(s.log_text().splitlines()[-25:]), file=sys.stderr)
        raise
    finally:
        s.close()
    return out


def _wait(predicate, what: str, timeout: float = 90) -> None:
    from devtools.waiting import wait_until
    wait_until(predicate, timeout=timeout, what=what)


def _send_raw(s: Session, body: bytes, message_id: str, content_type: str) -> None:
    from azure.servicebus import ServiceBusClient, ServiceBusMessage
    with ServiceBusClient.from_connection_string(s.values["ServiceBusConnection"]) as client, \
            client.get_queue_sender(s.values["CUSTOMER_EVENTS_QUEUE"]) as sender:
        sender.send_messages(ServiceBusMessage(body, message_id=message_id, content_type=content_type))


def _from_body(show: str) -> str:
    """`show`'s output from its body on: the broker's part is as in section 2."""
    command, _, rest = show.partition("\n")
    return f"{command}\n[… broker annotations and properties as in §2 …]\n" + rest[rest.index("Body ("):]
