"""Timer trigger: the drift reconciliation (``shared/service_layer/drift.py``), on ``DRIFT_SCHEDULE``.

Report mode (default) logs one line and sends one customer.drift-detected event per finding; with
``DRIFT_REPAIR=true`` it also repairs through the use cases. Then it sends what the result events' outbox still
holds, and asks for the rotation of every secret older than its profile's ``max_secret_age_days``.
A failed repair is logged and left to the next run; an error reading a service fails the invocation (the host logs
it), and the next occurrence tries again. The host never overlaps a timer with itself, and ``use_monitor`` keeps
the schedule's last run in storage, so a run missed while the app was down is made up once.
"""
from __future__ import annotations

import logging

import azure.functions as func

from shared.bootstrap import run_drift_reconciliation, startup_settings
from shared.service_layer.step_log import LOGGER_NAME

SETTINGS = startup_settings()

bp = func.Blueprint()
log = logging.getLogger(LOGGER_NAME + ".drift")


@bp.function_name("drift_reconciliation")
@bp.timer_trigger(arg_name="timer", schedule=SETTINGS.drift_schedule, run_on_startup=False, use_monitor=True)
def drift_reconciliation(timer: func.TimerRequest) -> None:
    result = run_drift_reconciliation()
    log.info("drift reconciliation: findings=%d mode=%s repaired=%d failed=%d rotations_requested=%d%s",
             len(result.findings), "repair" if result.repair else "report", len(result.repaired), len(result.failed),
             result.rotations_requested, " (past due)" if timer.past_due else "")
