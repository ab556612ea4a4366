"""Where drift findings go: one log line each (WARNING: drift is something an operator should look at), and for
the timer also a ``customer.drift-detected`` result event for the CRM, through the ledger's outbox."""
from __future__ import annotations

import logging

from ..domain import results
from ..domain.drift import Finding
from ..domain.errors import ProvisioningError
from ..service_layer.ports import DriftReport
from ..service_layer.step_log import LOGGER_NAME

log = logging.getLogger(LOGGER_NAME + ".drift")


class LoggingDriftReport(DriftReport):
    def report(self, finding: Finding) -> None:
        log.warning(finding.log_line())


class ResultEventDriftReport(LoggingDriftReport):
    """The log line, then the finding as a ``customer.drift-detected`` event. ``detection_id`` names the run, so a
    finding is one event per run however often its send is retried (duplicate detection on the topic)."""

    def __init__(self, service, detection_id: str):
        self.service = service
        self.detection_id = detection_id

    def report(self, finding: Finding) -> None:
        super().report(finding)
        event = results.drift_detected(
            customer_id=finding.customer_id or None, finding=finding.kind, service=finding.service,
            resource=f"{finding.resource} {finding.resource_id}", detail=finding.detail,
            detection_id=self.detection_id, now=self.service.core.now())
        try:
            self.service.emit_results([event])
        except ProvisioningError as exc:  # written rows wait for the sweep; the finding was logged either way
            log.warning("drift event for customer=%s not sent now: %s", finding.customer_id, exc.reason)
