"""The CRM team's Node.js recipe (devtools/crm-send-event.mjs, README's event contract) sends an event the app
applies; the mistake the README warns about (a JSON.stringify-ed body: a JSON string of the event) is refused with
the rule the README quotes. Both through @azure/service-bus, the app under the local host."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from devtools.waiting import wait_until
from tests.conftest import customer_status

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "devtools" / "crm-send-event.mjs"
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def _node():
    """Skips on a developer's machine without node or the npm packages; fails in CI, where it would hide a break."""
    missing = ("node is not installed" if shutil.which("node") is None else
               "node_modules/@azure/service-bus is missing (npm ci)"
               if not (ROOT / "node_modules" / "@azure" / "service-bus").is_dir() else None)
    if missing:
        pytest.fail(missing) if os.environ.get("CI") else pytest.skip(missing)


def _event(customer: str, **data) -> dict:
    return {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/crm/node", "type": "customer.created",
            "time": "2026-12-01T10:00:00Z", "datacontenttype": "application/json",
            "data": {"customerId": customer, "displayName": f"{customer} Ltd", "profile": "oem", **data}}


def _node(stack_env, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SERVICEBUS_CONNECTION": stack_env["ServiceBusConnection"],
           "CUSTOMER_EVENTS_QUEUE": stack_env["CUSTOMER_EVENTS_QUEUE"]}
    return subprocess.run(["node", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_the_node_recipe_sends_an_event_the_app_applies(app_host, ledger, stack_env, tmp_path):
    event = _event("crm-node-acme")
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    out = _node(stack_env, str(RECIPE), str(path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"sent customer.created id={event['id']} customer=crm-node-acme"
    wait_until(lambda: customer_status(ledger, "crm-node-acme") == "provisioned", timeout=60, what="provisioned")


def test_a_json_stringified_body_is_refused_with_the_rule_the_readme_quotes(app_host, ledger, stack_env):
    event = _event("crm-node-double")
    script = f"""
import {{ ServiceBusClient }} from "@azure/service-bus";
const client = new ServiceBusClient(process.env.SERVICEBUS_CONNECTION);
const sender = client.createSender(process.env.CUSTOMER_EVENTS_QUEUE);
const event = {json.dumps(event)};
await sender.sendMessages({{ body: JSON.stringify(event), messageId: event.id,
                             contentType: "application/cloudevents+json" }});
await sender.close(); await client.close();
"""
    out = _node(stack_env, "--input-type=module", "-e", script)
    assert out.returncode == 0, out.stderr
    readme = (ROOT / "README.md").read_text()
    rule = "$: must be a JSON object (a CloudEvent in structured mode), not str"
    assert rule in readme and rule in RECIPE.read_text()

    from azure.servicebus import ServiceBusClient, ServiceBusSubQueue

    def dead_lettered():
        with ServiceBusClient.from_connection_string(stack_env["ServiceBusConnection"]) as client, \
                client.get_queue_receiver(stack_env["CUSTOMER_EVENTS_QUEUE"],
                                          sub_queue=ServiceBusSubQueue.DEAD_LETTER) as receiver:
            return [m for m in receiver.peek_messages(max_message_count=50) if m.message_id == event["id"]]
    [message] = wait_until(dead_lettered, timeout=60, what="the double-encoded event to be dead-lettered")
    assert message.dead_letter_reason == "InvalidEvent"
    assert message.dead_letter_error_description == rule
