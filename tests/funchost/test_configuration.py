"""Settings, host.json, schedules and indexing: the host's start-up decisions, without a Service Bus."""
from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from pathlib import Path

import pytest

from funchost.bindings import resolve_service_bus, resolve_timer
from funchost.host import LocalFunctionsHost
from funchost.hostconfig import HostConfig, parse_timespan
from funchost.schedules import IntervalSchedule, ScheduleError, parse_schedule
from funchost.settings import (SettingsError, export_settings, load_local_settings, resolve_expression,
                               resolve_service_bus_connection)

from host_helpers import SAMPLE_APP

pytestmark = pytest.mark.timeout(60)


def test_host_json_defaults_are_the_functions_defaults(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    config = HostConfig.from_dict({"version": "2.0"})
    sb = config.service_bus
    assert config.function_timeout == 30 * 60
    assert (sb.max_concurrent_calls, sb.max_concurrent_sessions, sb.prefetch_count) == (32, 8, 0)
    assert sb.auto_complete_messages is True
    assert sb.max_auto_lock_renewal_duration == 300
    assert sb.effective_session_idle_timeout == 60  # clientRetryOptions.tryTimeout


def test_host_json_values_case_insensitive_and_timespans():
    config = HostConfig.from_dict({"functionTimeout": "00:00:07.5", "extensions": {"ServiceBus": {
        "MaxConcurrentCalls": 3, "maxConcurrentSessions": 2, "autoCompleteMessages": "false",
        "maxAutoLockRenewalDuration": "00:01:00", "prefetchCount": 5, "sessionIdleTimeout": "00:00:02"}}})
    sb = config.service_bus
    assert config.function_timeout == 7.5
    assert (sb.max_concurrent_calls, sb.max_concurrent_sessions, sb.prefetch_count) == (3, 2, 5)
    assert sb.auto_complete_messages is False
    assert sb.max_auto_lock_renewal_duration == 60 and sb.session_idle_timeout == 2
    assert HostConfig.from_dict({"functionTimeout": "-1"}).function_timeout is None
    assert parse_timespan("1.02:03:04") == 93784


def test_local_settings_do_not_override_the_environment(tmp_path, monkeypatch, caplog):
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": {"A": "from-file", "B": "from-file", "C": True}}))
    values = load_local_settings(path)
    assert values == {"A": "from-file", "B": "from-file", "C": "true"}
    environ = {"A": "from-env", "B": ""}
    with caplog.at_level(logging.INFO):
        exported = export_settings(values, environ)
    # Core Tools: a non-empty variable wins; an empty one is overwritten.
    assert environ == {"A": "from-env", "B": "from-file", "C": "true"}
    assert exported == ["B", "C"]
    assert "Skipping 'A' from local settings as it's already defined in current environment variables." \
        in caplog.text


def test_setting_expressions_and_connections():
    env = {"Q": "orders", "SB": "Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=v",
           "AzureWebJobsOther": "Endpoint=sb://y/;SharedAccessKeyName=k;SharedAccessKey=v",
           "Ident__fullyQualifiedNamespace": "ns.servicebus.windows.net", "Ident__clientId": "cid"}
    assert resolve_expression("%Q%", env) == "orders"
    assert resolve_expression("pre-%Q%-post", env) == "pre-orders-post"
    with pytest.raises(SettingsError, match="'%MISSING%' does not resolve"):
        resolve_expression("%MISSING%", env)
    assert resolve_service_bus_connection("SB", env).connection_string.startswith("Endpoint=sb://x/")
    assert resolve_service_bus_connection("Other", env).setting == "AzureWebJobsOther"
    identity = resolve_service_bus_connection("Ident", env)
    assert identity.is_identity_based
    assert (identity.fully_qualified_namespace, identity.client_id) == ("ns.servicebus.windows.net", "cid")
    with pytest.raises(SettingsError, match="does not exist"):
        resolve_service_bus_connection("Nope", env)


def test_ncrontab_schedules():
    every_five = parse_schedule("*/5 * * * * *")
    assert every_five.next_after(dt.datetime(2024, 1, 1, 0, 0, 3, 500)) == dt.datetime(2024, 1, 1, 0, 0, 5)
    weekdays = parse_schedule("0 30 9 * * MON-FRI")
    assert weekdays.next_after(dt.datetime(2024, 1, 6, 10, 0)) == dt.datetime(2024, 1, 8, 9, 30)  # Sat -> Mon
    lists = parse_schedule("0 0,15 8-10/2 1 JAN,jul *")
    assert lists.next_after(dt.datetime(2024, 1, 1, 8, 0)) == dt.datetime(2024, 1, 1, 8, 15)
    assert lists.next_after(dt.datetime(2024, 1, 1, 10, 15)) == dt.datetime(2024, 7, 1, 8, 0)
    five_fields = parse_schedule("*/10 * * * *")  # no seconds field: fires at second 0
    assert five_fields.next_after(dt.datetime(2024, 1, 1, 0, 0, 1)) == dt.datetime(2024, 1, 1, 0, 10)
    assert isinstance(parse_schedule("00:00:10"), IntervalSchedule)
    for bad in ("* * * *", "61 * * * * *", "*/0 * * * * *", "5-1 * * * * *"):
        with pytest.raises(ScheduleError):
            parse_schedule(bad)


def test_the_worker_indexes_the_sample_app_and_the_host_resolves_its_bindings(record_file):
    # The host never imports the app: the worker library indexes it and reports each function's raw bindings.
    settings = {"ServiceBusConnection": "Endpoint=sb://127.0.0.1:9/;SharedAccessKeyName=k;SharedAccessKey=v",
                "RECORD_FILE": str(record_file), "TICK_SCHEDULE": "0 0 0 1 1 *"}
    host = LocalFunctionsHost(SAMPLE_APP, settings, host_json={}, functions=["tick"], poll_interval=0.2).start()
    try:
        triggers = {f.name: f for f in host.channel.functions}
        assert "function_app" not in sys.modules or Path(sys.modules["function_app"].__file__).parent != SAMPLE_APP
    finally:
        host.stop(5)
    assert set(triggers) == {"work", "ordered", "subscriber", "tick", "settle"}
    env = {"WORK_QUEUE": "q-work", "SESSION_QUEUE": "q-sessions", "EVENTS_TOPIC": "t", "EVENTS_SUBSCRIPTION": "s",
           "TICK_SCHEDULE": "*/2 * * * * *",
           "ServiceBusConnection": "Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=k;SharedAccessKey=v"}
    options = HostConfig.from_dict({}).service_bus
    work = resolve_service_bus(triggers["work"], env, options)
    assert (work.queue_name, work.sessions, work.many, work.auto_complete) == ("q-work", False, False, True)
    settle = resolve_service_bus(triggers["settle"], {**env, "SETTLE_QUEUE": "q-settle"}, options)
    # The function's own attribute overrides host.json's autoCompleteMessages.
    assert settle.auto_complete is False
    assert work.connection.setting == "ServiceBusConnection"
    assert resolve_service_bus(triggers["ordered"], env, options).sessions is True
    subscriber = resolve_service_bus(triggers["subscriber"], env, options)
    assert subscriber.entity == "t/Subscriptions/s"
    assert resolve_timer(triggers["tick"], env).schedule.expression == "*/2 * * * * *"


def test_function_with_unresolvable_setting_is_in_error_and_others_run(record_file, caplog):
    settings = {"ServiceBusConnection": "Endpoint=sb://127.0.0.1:9/;SharedAccessKeyName=k;SharedAccessKey=v",
                "RECORD_FILE": str(record_file), "TICK_SCHEDULE": "0 0 0 1 1 *"}
    host = LocalFunctionsHost(SAMPLE_APP, settings, host_json={}, functions=["work", "tick"], poll_interval=0.2)
    with caplog.at_level(logging.INFO):
        host.start()
        try:
            assert host.functions == ["tick"]
            assert "'%WORK_QUEUE%' does not resolve to a value." in host.function_errors["work"]
            assert "The 'work' function is in error" in caplog.text
        finally:
            host.stop(5)
    import os
    assert "TICK_SCHEDULE" not in os.environ  # the host takes back what it exported
