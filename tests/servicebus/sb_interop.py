"""Entities of the @azure/service-bus interop suite (test_sb_js_interop.py, js/interop.test.mjs).

conftest.py adds them to the session's stand-in; the test hands their names to node. Kept apart from
conftest.py because several conftest modules exist under tests/ and ``import conftest`` would pick
whichever pytest loaded last.
"""

from __future__ import annotations

from emulators.servicebus.config import queue_entry

# Queues of the @azure/service-bus interop suite, by the key its SB_QUEUE_<KEY> variable uses.
JS_QUEUES = {
    "basic": queue_entry("js-basic"),
    "props": queue_entry("js-props"),
    "abandon": queue_entry("js-abandon", MaxDeliveryCount=3),
    "deadletter": queue_entry("js-deadletter"),
    "peek": queue_entry("js-peek"),
    "schedule": queue_entry("js-schedule"),
    "sessions": queue_entry("js-sessions", RequiresSession=True),
    "renew": queue_entry("js-renew", LockDuration="PT5S"),
    "defer": queue_entry("js-defer"),
    "subscribe": queue_entry("js-subscribe", MaxDeliveryCount=2),
    "expiry": queue_entry("js-lock-expiry", LockDuration="PT1S"),
    "delete": queue_entry("js-receive-delete"),
    "from_python": queue_entry("js-from-python"),  # the Python SDK sends, the JS client receives
    "to_python": queue_entry("js-to-python"),  # the JS client sends, the Python SDK receives
}

# Topic of the interop suite (SB_TOPIC_EVENTS): catch-all, filtered, and one whose rules the suite rewrites.
JS_TOPIC = {
    "Name": "js-events",
    "Properties": {"DefaultMessageTimeToLive": "PT1H", "RequiresDuplicateDetection": False},
    "Subscriptions": [
        {"Name": "all", "Properties": {"LockDuration": "PT5S", "MaxDeliveryCount": 3}},
        {"Name": "rules", "Properties": {"LockDuration": "PT5S", "MaxDeliveryCount": 3}},  # rule manager test
        {
            "Name": "gold",
            "Properties": {"LockDuration": "PT5S", "MaxDeliveryCount": 3},
            "Rules": [
                {
                    "Name": "gold",
                    "Properties": {"FilterType": "Correlation", "CorrelationFilter": {"Properties": {"tier": "gold"}}},
                }
            ],
        },
    ],
}
