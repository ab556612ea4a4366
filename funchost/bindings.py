"""Trigger bindings resolved against the app settings: what each listener needs to run.

Resolution happens when the host starts (after local settings are in the environment), as the Functions host
does when it indexes the functions; a function whose settings do not resolve is reported "in error" and the
others still run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .hostconfig import ServiceBusOptions
from .schedules import CronSchedule, IntervalSchedule, parse_schedule
from .settings import ServiceBusConnection, SettingsError, resolve_expression, resolve_service_bus_connection


@dataclass(frozen=True)
class IndexedFunction:
    """A function as the worker reported it: its id (the worker's), name and bindings (raw, function.json shape)."""
    function_id: str
    name: str
    bindings: tuple[dict[str, Any], ...]
    metadata: Any  # the RpcFunctionMetadata, echoed in the FunctionLoadRequest

    @property
    def trigger(self) -> dict[str, Any]:
        return next(b for b in self.bindings if str(b.get("type", "")).lower().endswith("trigger"))

    @property
    def trigger_type(self) -> str:
        return str(self.trigger.get("type"))

    @property
    def param_name(self) -> str:
        return str(self.trigger.get("name"))

    def prop(self, key: str, default: Any = None) -> Any:
        """A trigger binding property, read case-insensitively (the host parses raw bindings so)."""
        lowered = key.lower()
        for k, v in self.trigger.items():
            if k.lower() == lowered:
                return v
        return default

    @property
    def other_bindings(self) -> list[dict[str, Any]]:
        trigger = self.trigger
        return [b for b in self.bindings if b is not trigger]


@dataclass(frozen=True)
class ServiceBusTarget:
    function: IndexedFunction
    connection: ServiceBusConnection
    queue_name: str | None
    topic_name: str | None
    subscription_name: str | None
    sessions: bool
    many: bool
    auto_complete: bool
    data_type: str | None = None  # the binding's dataType: unset (a string for one message), string or binary

    @property
    def entity(self) -> str:
        if self.queue_name:
            return self.queue_name
        return f"{self.topic_name}/Subscriptions/{self.subscription_name}"


@dataclass(frozen=True)
class TimerTarget:
    function: IndexedFunction
    schedule: CronSchedule | IntervalSchedule
    run_on_startup: bool
    use_monitor: bool = True


def _flag(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def resolve_service_bus(trigger: IndexedFunction, environ: Mapping[str, str],
                        options: ServiceBusOptions) -> ServiceBusTarget:
    queue = resolve_expression(trigger.prop("queueName"), environ)
    topic = resolve_expression(trigger.prop("topicName"), environ)
    subscription = resolve_expression(trigger.prop("subscriptionName"), environ)
    if not queue and not (topic and subscription):
        raise SettingsError("a Service Bus trigger needs queueName, or topicName and subscriptionName")
    # function.json may override host.json's autoCompleteMessages per function (extension 5.x attribute).
    auto_complete = trigger.prop("autoCompleteMessages")
    return ServiceBusTarget(
        function=trigger,
        connection=resolve_service_bus_connection(trigger.prop("connection"), environ),
        queue_name=queue or None,
        topic_name=None if queue else topic,
        subscription_name=None if queue else subscription,
        sessions=_flag(trigger.prop("isSessionsEnabled", False)),
        many=str(trigger.prop("cardinality", "one")).lower() == "many",
        auto_complete=options.auto_complete_messages if auto_complete is None else _flag(auto_complete),
        data_type=trigger.prop("dataType"),
    )


def resolve_timer(trigger: IndexedFunction, environ: Mapping[str, str]) -> TimerTarget:
    expression = resolve_expression(trigger.prop("schedule"), environ)
    if not expression:
        raise SettingsError("a timer trigger needs a schedule")
    return TimerTarget(function=trigger, schedule=parse_schedule(expression),
                       run_on_startup=_flag(trigger.prop("runOnStartup", False)),
                       use_monitor=_flag(trigger.prop("useMonitor", True)))
