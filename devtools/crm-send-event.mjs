// The CRM's side without Python: one customer event onto the app's queue with Microsoft's @azure/service-bus for
// Node.js, the way a CRM or billing system sends it (README, "The event contract"; tests/e2e/test_crm_recipe.py runs
// it against the local stack with the app running).
//
//   SERVICEBUS_CONNECTION='Endpoint=sb://...' node devtools/crm-send-event.mjs EVENT.json
//   SERVICEBUS_NAMESPACE=contoso.servicebus.windows.net node devtools/crm-send-event.mjs EVENT.json
//
// SERVICEBUS_CONNECTION: a connection string (locally: ServiceBusConnection in local.settings.json or
// .localstack/env, written by `make up`). SERVICEBUS_NAMESPACE: in Azure, where SAS keys are off, the namespace with
// Microsoft Entra ID (@azure/identity's DefaultAzureCredential; the CRM's identity needs Azure Service Bus Data
// Sender on the queue). CUSTOMER_EVENTS_QUEUE: the queue (default customer-events).
import { readFileSync } from "node:fs";
import { ServiceBusClient } from "@azure/service-bus";

const [path] = process.argv.slice(2);
if (!path) {
  console.error("usage: node devtools/crm-send-event.mjs EVENT.json   (SERVICEBUS_CONNECTION or SERVICEBUS_NAMESPACE set)");
  process.exit(2);
}
const event = JSON.parse(readFileSync(path, "utf8"));
const queue = process.env.CUSTOMER_EVENTS_QUEUE || "customer-events";

let client;
if (process.env.SERVICEBUS_CONNECTION) {
  client = new ServiceBusClient(process.env.SERVICEBUS_CONNECTION);
} else if (process.env.SERVICEBUS_NAMESPACE) {
  const { DefaultAzureCredential } = await import("@azure/identity");
  client = new ServiceBusClient(process.env.SERVICEBUS_NAMESPACE, new DefaultAzureCredential());
} else {
  console.error("set SERVICEBUS_CONNECTION (a connection string) or SERVICEBUS_NAMESPACE (Microsoft Entra ID)");
  process.exit(2);
}

const sender = client.createSender(queue);
try {
  await sender.sendMessages({
    // The event object itself: the SDK writes it as JSON in the message body. Not JSON.stringify(event): the SDK
    // would encode that string once more, the body would be a JSON string instead of an object, and the app would
    // dead-letter it ("$: must be a JSON object (a CloudEvent in structured mode), not str").
    body: event,
    contentType: "application/cloudevents+json",
    messageId: event.id,                 // duplicate detection drops a resend of the same event
    sessionId: event.data?.customerId,   // per-customer order on a session-enabled queue
    subject: event.type,
  });
  console.log(`sent ${event.type} id=${event.id} customer=${event.data?.customerId}`);
} finally {
  await sender.close();
  await client.close();
}
