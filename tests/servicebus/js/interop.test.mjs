// Interop suite: Microsoft's JavaScript client (@azure/service-bus 7.x, rhea-based) against the
// Service Bus stand-in. Run by tests/servicebus/test_sb_js_interop.py, which starts the stand-in and
// passes the connection string and one queue per test through environment variables:
//   SERVICEBUS_CONNECTION_STRING, SB_QUEUE_<NAME> (see QUEUES below).
//   SB_TOPIC_EVENTS (subscriptions "all", "gold" filtered on tier = 'gold', and "rules" with the
//   default rule, which the rule-manager test replaces).
// Runs with node's own test runner: `node --test tests/servicebus/js/`.
//
// What is asserted is Service Bus's documented behaviour (Microsoft docs: "Message transfers, locks,
// and settlement", "Service Bus dead-letter queues", "Message sessions", "Message deferral",
// "Scheduled messages", "Message browsing"), not whatever one client tolerates.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { ServiceBusClient } from "@azure/service-bus";

const CONNECTION = process.env.SERVICEBUS_CONNECTION_STRING;
const QUEUES = {
  basic: process.env.SB_QUEUE_BASIC,
  props: process.env.SB_QUEUE_PROPS,
  abandon: process.env.SB_QUEUE_ABANDON,
  deadletter: process.env.SB_QUEUE_DEADLETTER,
  peek: process.env.SB_QUEUE_PEEK,
  schedule: process.env.SB_QUEUE_SCHEDULE,
  sessions: process.env.SB_QUEUE_SESSIONS,
  renew: process.env.SB_QUEUE_RENEW,
  defer: process.env.SB_QUEUE_DEFER,
  subscribe: process.env.SB_QUEUE_SUBSCRIBE,
  expiry: process.env.SB_QUEUE_EXPIRY,
  delete: process.env.SB_QUEUE_DELETE,
  fromPython: process.env.SB_QUEUE_FROM_PYTHON,
  toPython: process.env.SB_QUEUE_TO_PYTHON,
};
const TOPIC = process.env.SB_TOPIC_EVENTS;

const TEST_TIMEOUT_MS = 30_000;
const WAIT = { maxWaitTimeInMs: 5_000 };

let client;

before(() => {
  assert.ok(CONNECTION, "SERVICEBUS_CONNECTION_STRING is not set");
  for (const [key, name] of Object.entries(QUEUES)) {
    assert.ok(name, `the queue for ${key} is not set (SB_QUEUE_...)`);
  }
  assert.ok(TOPIC, "SB_TOPIC_EVENTS is not set");
  // Short operation timeout and no retries: a stand-in that does not answer fails fast instead
  // of hanging through the SDK's default 60 s x 3 retries.
  client = new ServiceBusClient(CONNECTION, { retryOptions: { maxRetries: 1, timeoutInMs: 10_000 } });
});

after(async () => {
  await client?.close();
});

async function receiveOne(receiver, options = WAIT) {
  const messages = await receiver.receiveMessages(1, options);
  assert.equal(messages.length, 1, "expected exactly one message");
  return messages[0];
}

async function assertEmpty(receiver, maxWaitTimeInMs = 500) {
  const messages = await receiver.receiveMessages(1, { maxWaitTimeInMs });
  assert.deepEqual(messages.map((m) => m.body), [], "expected no message");
}

async function withReceiver(receiver, fn) {
  try {
    return await fn(receiver);
  } finally {
    await receiver.close();
  }
}

describe("Service Bus stand-in with @azure/service-bus", { timeout: TEST_TIMEOUT_MS * 10 }, () => {
  test("send, receive in peek-lock and complete", { timeout: TEST_TIMEOUT_MS }, async () => {
    const sender = client.createSender(QUEUES.basic);
    try {
      await sender.sendMessages({ body: "hello", messageId: "js-basic-1", subject: "greeting", contentType: "text/plain" });
      await sender.sendMessages([{ body: { n: 2 } }, { body: Buffer.from([1, 2, 3]) }]); // one batch
    } finally {
      await sender.close();
    }
    await withReceiver(client.createReceiver(QUEUES.basic), async (receiver) => {
      const first = await receiveOne(receiver);
      assert.equal(first.body, "hello");
      assert.equal(first.messageId, "js-basic-1");
      assert.equal(first.subject, "greeting");
      assert.equal(first.contentType, "text/plain");
      assert.equal(first.deliveryCount, 0);
      assert.equal(first.state, "active");
      assert.ok(first.lockToken, "a peek-lock message carries a lock token");
      assert.ok(first.lockedUntilUtc > new Date(Date.now() - 1000), "lockedUntilUtc is in the future");
      assert.ok(first.enqueuedTimeUtc instanceof Date);
      assert.ok(first.sequenceNumber.toNumber() >= 1);
      await receiver.completeMessage(first);

      const rest = [await receiveOne(receiver), await receiveOne(receiver)];
      assert.deepEqual(rest[0].body, { n: 2 });
      assert.deepEqual([...rest[1].body], [1, 2, 3]);
      // Service Bus stamps a MessageId on messages sent without one.
      for (const m of rest) assert.ok(typeof m.messageId === "string" && m.messageId.length > 0);
      assert.ok(rest[1].sequenceNumber.greaterThan(rest[0].sequenceNumber));
      for (const m of rest) await receiver.completeMessage(m);
      await assertEmpty(receiver);
    });
  });

  test("receiveAndDelete: messages are gone once received", { timeout: TEST_TIMEOUT_MS }, async () => {
    const sender = client.createSender(QUEUES.delete);
    try {
      await sender.sendMessages([{ body: "d1" }, { body: "d2" }]);
    } finally {
      await sender.close();
    }
    await withReceiver(client.createReceiver(QUEUES.delete, { receiveMode: "receiveAndDelete" }), async (receiver) => {
      const got = await receiver.receiveMessages(2, WAIT);
      assert.deepEqual(got.map((m) => m.body), ["d1", "d2"]);
      assert.equal(got[0].lockToken, undefined);
      await assertEmpty(receiver);
    });
    await withReceiver(client.createReceiver(QUEUES.delete), async (receiver) => {
      assert.deepEqual(await receiver.peekMessages(5), []);
    });
  });

  test("an expired lock counts a delivery and makes the message available again", { timeout: TEST_TIMEOUT_MS }, async () => {
    // LockDuration 1 s on this queue; auto-renewal off so the lock really runs out.
    const sender = client.createSender(QUEUES.expiry);
    try {
      await sender.sendMessages({ body: "slow", messageId: "js-expiry-1" });
    } finally {
      await sender.close();
    }
    await withReceiver(client.createReceiver(QUEUES.expiry, { maxAutoLockRenewalDurationInMs: 0 }), async (receiver) => {
      const first = await receiveOne(receiver);
      assert.equal(first.deliveryCount, 0);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await assert.rejects(receiver.completeMessage(first), (err) => err.code === "MessageLockLost");
      const again = await receiveOne(receiver);
      assert.equal(again.messageId, "js-expiry-1");
      assert.equal(again.deliveryCount, 1);
      await receiver.completeMessage(again);
    });
  });

  test("application properties and system properties round-trip with their types", { timeout: TEST_TIMEOUT_MS }, async () => {
    const when = new Date("2024-05-06T07:08:09.123Z");
    const sender = client.createSender(QUEUES.props);
    try {
      await sender.sendMessages({
        body: "props",
        messageId: "js-props-1",
        correlationId: "corr-7",
        replyTo: "reply-queue",
        to: "someone",
        timeToLive: 3_600_000,
        applicationProperties: { str: "text", int: 42, negative: -7, dbl: 1.5, yes: true, no: false, when },
      });
    } finally {
      await sender.close();
    }
    // skipConvertingDate: by default the SDK turns received timestamps into numbers.
    await withReceiver(client.createReceiver(QUEUES.props, { skipConvertingDate: true }), async (receiver) => {
      const m = await receiveOne(receiver);
      assert.equal(m.correlationId, "corr-7");
      assert.equal(m.replyTo, "reply-queue");
      assert.equal(m.to, "someone");
      assert.equal(m.timeToLive, 3_600_000);
      const p = m.applicationProperties;
      assert.equal(p.str, "text");
      assert.equal(p.int, 42);
      assert.equal(p.negative, -7);
      assert.equal(p.dbl, 1.5);
      assert.equal(p.yes, true);
      assert.equal(p.no, false);
      assert.ok(p.when instanceof Date, `a Date property comes back as a Date, got ${typeof p.when}`);
      assert.equal(p.when.getTime(), when.getTime());
      await receiver.completeMessage(m);
    });
  });

  test("abandon redelivers with deliveryCount 1, then 2; MaxDeliveryCount dead-letters", { timeout: TEST_TIMEOUT_MS }, async () => {
    // The queue has MaxDeliveryCount 3 (set by the pytest driver).
    const sender = client.createSender(QUEUES.abandon);
    try {
      await sender.sendMessages({ body: "poison", messageId: "js-abandon-1" });
    } finally {
      await sender.close();
    }
    await withReceiver(client.createReceiver(QUEUES.abandon), async (receiver) => {
      const counts = [];
      for (let i = 0; i < 3; i++) {
        const m = await receiveOne(receiver);
        assert.equal(m.messageId, "js-abandon-1");
        counts.push(m.deliveryCount);
        if (i > 0) assert.equal(m.applicationProperties.attempt, i, "propertiesToModify of the previous abandon");
        // Service Bus stores propertiesToModify on the message.
        await receiver.abandonMessage(m, { attempt: i + 1, lastError: `failure ${i + 1}` });
      }
      assert.deepEqual(counts, [0, 1, 2]);
      await assertEmpty(receiver);
    });
    await withReceiver(client.createReceiver(QUEUES.abandon, { subQueueType: "deadLetter" }), async (dlq) => {
      const m = await receiveOne(dlq);
      assert.equal(m.messageId, "js-abandon-1");
      assert.equal(m.deadLetterReason, "MaxDeliveryCountExceeded");
      assert.equal(m.deliveryCount, 3);
      assert.equal(m.applicationProperties.attempt, 3);
      assert.equal(m.applicationProperties.lastError, "failure 3");
      await dlq.completeMessage(m);
    });
  });

  test("dead-letter with reason and description, read from the dead-letter sub-queue", { timeout: TEST_TIMEOUT_MS }, async () => {
    const sender = client.createSender(QUEUES.deadletter);
    try {
      await sender.sendMessages({ body: "bad", messageId: "js-dl-1", applicationProperties: { kept: "yes" } });
    } finally {
      await sender.close();
    }
    await withReceiver(client.createReceiver(QUEUES.deadletter), async (receiver) => {
      const m = await receiveOne(receiver);
      await receiver.deadLetterMessage(m, {
        deadLetterReason: "ValidationFailed",
        deadLetterErrorDescription: "email missing",
        // Anything else in the options is a property to modify (ServiceBusReceiver.deadLetterMessage).
        validator: "schema-v2",
      });
      await assertEmpty(receiver);
    });
    await withReceiver(client.createReceiver(QUEUES.deadletter, { subQueueType: "deadLetter" }), async (dlq) => {
      const peeked = await dlq.peekMessages(5);
      assert.deepEqual(peeked.map((m) => m.messageId), ["js-dl-1"]);
      const m = await receiveOne(dlq);
      assert.equal(m.messageId, "js-dl-1");
      assert.equal(m.body, "bad");
      assert.equal(m.deadLetterReason, "ValidationFailed");
      assert.equal(m.deadLetterErrorDescription, "email missing");
      assert.equal(m.applicationProperties.kept, "yes");
      assert.equal(m.applicationProperties.validator, "schema-v2");
      assert.equal(m.applicationProperties.DeadLetterReason, "ValidationFailed");
      assert.equal(m.deadLetterSource, undefined, "only set on messages auto-forwarded out of a dead-letter queue");
      await dlq.completeMessage(m);
      await assertEmpty(dlq);
    });
  });

  test("peekMessages browses without locking, from a sequence number", { timeout: TEST_TIMEOUT_MS }, async () => {
    const sender = client.createSender(QUEUES.peek);
    try {
      await sender.sendMessages([1, 2, 3].map((i) => ({ body: `p${i}`, messageId: `js-peek-${i}` })));
    } finally {
      await sender.close();
    }
    await withReceiver(client.createReceiver(QUEUES.peek), async (receiver) => {
      const all = await receiver.peekMessages(10);
      assert.deepEqual(all.map((m) => m.messageId), ["js-peek-1", "js-peek-2", "js-peek-3"]);
      for (const m of all) {
        assert.equal(m.lockToken, undefined, "peeked messages are not locked");
        assert.equal(m.deliveryCount, 0);
      }
      const fromSecond = await receiver.peekMessages(10, { fromSequenceNumber: all[1].sequenceNumber });
      assert.deepEqual(fromSecond.map((m) => m.messageId), ["js-peek-2", "js-peek-3"]);
      // Peeking counts no delivery: receiving afterwards still sees deliveryCount 0.
      const first = await receiveOne(receiver);
      assert.equal(first.messageId, "js-peek-1");
      assert.equal(first.deliveryCount, 0);
      await receiver.completeMessage(first);
      for (let i = 0; i < 2; i++) await receiver.completeMessage(await receiveOne(receiver));
      assert.deepEqual(await receiver.peekMessages(10, { fromSequenceNumber: all[0].sequenceNumber }), []);
    });
  });

  test("scheduleMessages and cancelScheduledMessages", { timeout: TEST_TIMEOUT_MS }, async () => {
    const sender = client.createSender(QUEUES.schedule);
    // Far enough ahead that the peek and the cancel below happen before it, even on a loaded machine.
    const at = new Date(Date.now() + 3000);
    let seqs;
    try {
      seqs = await sender.scheduleMessages(
        [{ body: "cancel me", messageId: "js-sched-1" }, { body: "keep me", messageId: "js-sched-2" }],
        at,
      );
      assert.equal(seqs.length, 2);
      await withReceiver(client.createReceiver(QUEUES.schedule), async (receiver) => {
        const peeked = await receiver.peekMessages(10);
        assert.deepEqual(peeked.map((m) => m.state), ["scheduled", "scheduled"]);
        assert.equal(peeked[0].scheduledEnqueueTimeUtc.getTime(), at.getTime());
        // Not deliverable before its time.
        await assertEmpty(receiver, 300);
        await sender.cancelScheduledMessages([seqs[0]]);
        await assert.rejects(sender.cancelScheduledMessages([seqs[0]]), (err) => err.code === "MessageNotFound");
        const m = await receiveOne(receiver, { maxWaitTimeInMs: 10_000 });
        assert.equal(m.messageId, "js-sched-2");
        assert.ok(Date.now() >= at.getTime() - 50, "delivered no earlier than scheduled");
        assert.equal(m.scheduledEnqueueTimeUtc.getTime(), at.getTime());
        await receiver.completeMessage(m);
        await assertEmpty(receiver);
      });
    } finally {
      await sender.close();
    }
  });

  test("sessions: acceptSession, session state, renewSessionLock, acceptNextSession", { timeout: TEST_TIMEOUT_MS }, async () => {
    const sender = client.createSender(QUEUES.sessions);
    try {
      await sender.sendMessages([
        { body: "a1", sessionId: "s-a" },
        { body: "b1", sessionId: "s-b" },
        { body: "a2", sessionId: "s-a" },
      ]);
      // A session entity refuses messages without a SessionId.
      await assert.rejects(sender.sendMessages({ body: "no session" }));
    } finally {
      await sender.close();
    }
    await withReceiver(await client.acceptSession(QUEUES.sessions, "s-a"), async (session) => {
      assert.equal(session.sessionId, "s-a");
      assert.ok(session.sessionLockedUntilUtc > new Date(), "session lock in the future");
      const peeked = await session.peekMessages(10);
      assert.deepEqual(peeked.map((m) => [m.sessionId, m.body]), [["s-a", "a1"], ["s-a", "a2"]], "peek sees this session only");
      const first = await receiveOne(session);
      const second = await receiveOne(session);
      assert.deepEqual([first.body, second.body], ["a1", "a2"]);
      assert.equal(first.sessionId, "s-a");

      assert.equal(await session.getSessionState(), null);
      await session.setSessionState({ step: 2 }); // the SDK stores it JSON-encoded
      assert.deepEqual(await session.getSessionState(), { step: 2 });

      const before = session.sessionLockedUntilUtc;
      await new Promise((resolve) => setTimeout(resolve, 20));
      const renewed = await session.renewSessionLock();
      assert.ok(renewed instanceof Date && renewed >= before, "renewSessionLock moves the lock forward");
      assert.equal(session.sessionLockedUntilUtc.getTime(), renewed.getTime());

      await session.completeMessage(first);
      await session.completeMessage(second);
      await assertEmpty(session);

      // The session is locked to this receiver: a second acceptSession is refused.
      await assert.rejects(client.acceptSession(QUEUES.sessions, "s-a", { maxAutoLockRenewalDurationInMs: 0 }), (err) => err.code === "SessionCannotBeLocked");
    });
    await withReceiver(await client.acceptNextSession(QUEUES.sessions), async (session) => {
      assert.equal(session.sessionId, "s-b");
      const m = await receiveOne(session);
      assert.equal(m.body, "b1");
      await session.completeMessage(m);
    });
    // The state outlives the session lock.
    await withReceiver(await client.acceptSession(QUEUES.sessions, "s-a"), async (session) => {
      assert.deepEqual(await session.getSessionState(), { step: 2 });
      await session.setSessionState(null);
    });
  });

  test("renewMessageLock extends the lock; a settled message's lock is gone", { timeout: TEST_TIMEOUT_MS }, async () => {
    const sender = client.createSender(QUEUES.renew);
    try {
      await sender.sendMessages({ body: "slow", messageId: "js-renew-1" });
    } finally {
      await sender.close();
    }
    // Auto-renewal off, so only the explicit call renews.
    await withReceiver(client.createReceiver(QUEUES.renew, { maxAutoLockRenewalDurationInMs: 0 }), async (receiver) => {
      const m = await receiveOne(receiver);
      const before = m.lockedUntilUtc;
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const renewed = await receiver.renewMessageLock(m);
      assert.ok(renewed.getTime() >= before.getTime() + 1000, `renewed ${renewed.toISOString()} vs ${before.toISOString()}`);
      assert.equal(m.lockedUntilUtc.getTime(), renewed.getTime());
      await receiver.completeMessage(m);
      await assert.rejects(receiver.renewMessageLock(m), (err) => err.code === "MessageLockLost");
    });
  });

  test("topic: a message reaches every subscription whose filter matches", { timeout: TEST_TIMEOUT_MS }, async () => {
    const sender = client.createSender(TOPIC);
    try {
      await sender.sendMessages([
        { body: "g", messageId: "js-topic-gold", applicationProperties: { tier: "gold" } },
        { body: "s", messageId: "js-topic-silver", applicationProperties: { tier: "silver" } },
      ]);
    } finally {
      await sender.close();
    }
    await withReceiver(client.createReceiver(TOPIC, "all"), async (receiver) => {
      const got = [await receiveOne(receiver), await receiveOne(receiver)];
      assert.deepEqual(got.map((m) => m.messageId), ["js-topic-gold", "js-topic-silver"]);
      for (const m of got) await receiver.completeMessage(m);
    });
    await withReceiver(client.createReceiver(TOPIC, "gold"), async (receiver) => {
      const m = await receiveOne(receiver);
      assert.equal(m.messageId, "js-topic-gold");
      await receiver.completeMessage(m);
      await assertEmpty(receiver);
    });
  });

  test("rule manager: list, create and delete subscription rules", { timeout: TEST_TIMEOUT_MS }, async () => {
    const rules = client.createRuleManager(TOPIC, "rules");
    const listRules = async () => {
      const out = [];
      for await (const rule of rules.listRules()) out.push(rule);
      return out;
    };
    assert.deepEqual(
      (await listRules()).map((r) => [r.name, r.filter.sqlExpression]),
      [["$Default", "1=1"]],
    );
    await rules.createRule("vip-created", { subject: "created", applicationProperties: { tier: "vip" } });
    await rules.deleteRule("$Default");
    const [vip, ...others] = await listRules();
    assert.deepEqual(others, []);
    assert.equal(vip.name, "vip-created");
    assert.equal(vip.filter.subject, "created");
    assert.deepEqual(vip.filter.applicationProperties, { tier: "vip" });
    await assert.rejects(rules.createRule("vip-created", { sqlExpression: "1=1" }), (err) => err.code === "MessagingEntityAlreadyExists");
    await assert.rejects(rules.deleteRule("no-such-rule"), (err) => err.code === "MessagingEntityNotFound");

    const sender = client.createSender(TOPIC);
    try {
      await sender.sendMessages([
        { body: 1, messageId: "js-rules-match", subject: "created", applicationProperties: { tier: "vip" } },
        { body: 2, messageId: "js-rules-subject", subject: "removed", applicationProperties: { tier: "vip" } },
        { body: 3, messageId: "js-rules-tier", subject: "created", applicationProperties: { tier: "basic" } },
      ]);
    } finally {
      await sender.close();
    }
    await withReceiver(client.createReceiver(TOPIC, "rules"), async (receiver) => {
      const ids = [];
      for (;;) {
        const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 1000 });
        if (!m) break;
        ids.push(m.messageId);
        await receiver.completeMessage(m);
      }
      assert.deepEqual(ids.filter((id) => id.startsWith("js-rules-")), ["js-rules-match"]);
    });
  });

  test("subscribe(): completes on success, abandons on a thrown error, dead-letters past MaxDeliveryCount", { timeout: TEST_TIMEOUT_MS }, async () => {
    // The pattern of a Functions trigger: the handler's outcome settles the message. The queue has
    // MaxDeliveryCount 2.
    const sender = client.createSender(QUEUES.subscribe);
    try {
      await sender.sendMessages([{ body: "ok", messageId: "js-sub-ok" }, { body: "boom", messageId: "js-sub-boom" }]);
    } finally {
      await sender.close();
    }
    const seen = [];
    const receiver = client.createReceiver(QUEUES.subscribe);
    try {
      await new Promise((resolve, reject) => {
        receiver.subscribe(
          {
            async processMessage(m) {
              seen.push(`${m.messageId}#${m.deliveryCount}`);
              if (seen.length === 3) setTimeout(resolve, 300); // ok once, boom twice
              if (m.body === "boom") throw new Error("handler failed");
            },
            async processError(args) {
              if (args.errorSource !== "processMessageCallback") reject(args.error);
            },
          },
          { autoCompleteMessages: true },
        );
      });
    } finally {
      await receiver.close();
    }
    assert.deepEqual(seen.sort(), ["js-sub-boom#0", "js-sub-boom#1", "js-sub-ok#0"]);
    await withReceiver(client.createReceiver(QUEUES.subscribe), async (r) => assertEmpty(r));
    await withReceiver(client.createReceiver(QUEUES.subscribe, { subQueueType: "deadLetter" }), async (dlq) => {
      const m = await receiveOne(dlq);
      assert.equal(m.messageId, "js-sub-boom");
      assert.equal(m.deadLetterReason, "MaxDeliveryCountExceeded");
      await dlq.completeMessage(m);
    });
  });

  test("errors map to the SDK's codes", { timeout: TEST_TIMEOUT_MS }, async () => {
    const sender = client.createSender("no-such-queue");
    try {
      await assert.rejects(sender.sendMessages({ body: "x" }), (err) => err.code === "MessagingEntityNotFound");
    } finally {
      await sender.close();
    }
    const bad = new ServiceBusClient(CONNECTION.replace(/SharedAccessKey=[^;]*/, "SharedAccessKey=wrong"), {
      retryOptions: { maxRetries: 0, timeoutInMs: 5_000 },
    });
    try {
      await assert.rejects(bad.createSender(QUEUES.basic).sendMessages({ body: "x" }), (err) => err.code === "UnauthorizedAccess");
    } finally {
      await bad.close();
    }
  });

  test("a message sent by the Python SDK reads the same in JavaScript", { timeout: TEST_TIMEOUT_MS }, async () => {
    // Sent by test_sb_js_interop.py before node starts.
    await withReceiver(client.createReceiver(QUEUES.fromPython, { skipConvertingDate: true }), async (receiver) => {
      const m = await receiveOne(receiver);
      assert.equal(m.messageId, "py-to-js-1");
      assert.deepEqual(m.body, { type: "customer.created", id: "evt-1" }); // JSON in a data section
      assert.equal(m.contentType, "application/cloudevents+json");
      assert.equal(m.subject, "customer.created");
      assert.equal(m.correlationId, "corr-py");
      assert.deepEqual(
        { ...m.applicationProperties, when: m.applicationProperties.when.toISOString() },
        { source: "crm", attempt: 3, ratio: 0.25, urgent: true, when: "2024-05-06T07:08:09.000Z" },
      );
      await receiver.completeMessage(m);
    });
  });

  test("a message sent from JavaScript, left for the Python SDK", { timeout: TEST_TIMEOUT_MS }, async () => {
    // test_sb_js_interop.py receives it with the Python SDK after node exits.
    const sender = client.createSender(QUEUES.toPython);
    try {
      await sender.sendMessages({
        body: { type: "customer.removed", id: "evt-2" },
        messageId: "js-to-py-1",
        contentType: "application/cloudevents+json",
        subject: "customer.removed",
        correlationId: "corr-js",
        applicationProperties: { source: "crm-js", attempt: 2, ratio: 0.5, urgent: false },
      });
    } finally {
      await sender.close();
    }
  });

  test("deferMessage and receiveDeferredMessages", { timeout: TEST_TIMEOUT_MS }, async () => {
    const sender = client.createSender(QUEUES.defer);
    try {
      await sender.sendMessages({ body: "later", messageId: "js-defer-1" });
    } finally {
      await sender.close();
    }
    await withReceiver(client.createReceiver(QUEUES.defer), async (receiver) => {
      const m = await receiveOne(receiver);
      const seq = m.sequenceNumber;
      await receiver.deferMessage(m);
      await assertEmpty(receiver);
      const peeked = await receiver.peekMessages(1, { fromSequenceNumber: seq });
      assert.equal(peeked[0].state, "deferred");
      const [deferred] = await receiver.receiveDeferredMessages([seq]);
      assert.equal(deferred.messageId, "js-defer-1");
      assert.equal(deferred.state, "deferred");
      assert.ok(deferred.lockToken);
      // A message received by sequence number is settled through $management (update-disposition).
      await receiver.abandonMessage(deferred, { triedBy: "js" });
      const [again] = await receiver.receiveDeferredMessages([seq]);
      assert.equal(again.state, "deferred", "an abandoned deferred message stays deferred");
      assert.equal(again.deliveryCount, 1);
      assert.equal(again.applicationProperties.triedBy, "js");
      await receiver.deadLetterMessage(again, { deadLetterReason: "GaveUp", deadLetterErrorDescription: "deferred too long" });
      await assert.rejects(receiver.receiveDeferredMessages([seq]), (err) => err.code === "MessageNotFound");
      await withReceiver(client.createReceiver(QUEUES.defer, { subQueueType: "deadLetter" }), async (dlq) => {
        const dead = await receiveOne(dlq);
        assert.equal(dead.messageId, "js-defer-1");
        assert.equal(dead.deadLetterReason, "GaveUp");
        assert.equal(dead.deadLetterErrorDescription, "deferred too long");
        await dlq.completeMessage(dead);
      });
    });
  });
});
