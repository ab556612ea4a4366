"""Trigger bindings resolved against the app settings: what each listener needs to run.

Resolution happens when the host starts (after local settings are in the environment), as the Functions host
does when it indexes the functions; a function whose settings do not resolve is reported "in error" and the
others still run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .discovery import FunctionTrigger, is_cardinality_many
from .hostconfig import ServiceBusOptions
from .schedules import CronSchedule, IntervalSchedule, parse_schedule
from .settlement import settlement_parameter
from .settings import ServiceBusConnection, SettingsError, resolve_expression, resolve_service_bus_connection


@dataclass(frozen=True)
class ServiceBusTarget:
    function: FunctionTrigger
    connection: ServiceBusConnection
    queue_name: str | None
    topic_name: str | None
    subscription_name: str | None
    sessions: bool
    many: bool
    auto_complete: bool
    settlement_param: str | None = None  # the parameter that gets ServiceBusMessageActions, if the function has one

    @property
    def entity(self) -> str:
        if self.queue_name:
            return self.queue_name
        return f"{self.topic_name}/Subscriptions/{self.subscription_name}"


@dataclass(frozen=True)
class TimerTarget:
    function: FunctionTrigger
    schedule: CronSchedule | IntervalSchedule
    run_on_startup: bool


def _flag(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def resolve_service_bus(trigger: FunctionTrigger, environ: Mapping[str, str],
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
        many=is_cardinality_many(trigger),
        auto_complete=options.auto_complete_messages if auto_complete is None else _flag(auto_complete),
        settlement_param=settlement_parameter(trigger.user_function, {b.get("name") for b in trigger.bindings}),
    )


def resolve_timer(trigger: FunctionTrigger, environ: Mapping[str, str]) -> TimerTarget:
    expression = resolve_expression(trigger.prop("schedule"), environ)
    if not expression:
        raise SettingsError("a timer trigger needs a schedule")
    return TimerTarget(function=trigger, schedule=parse_schedule(expression),
                       run_on_startup=_flag(trigger.prop("runOnStartup", False)))
