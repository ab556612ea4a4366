"""DriftReport as one log line per finding (WARNING: drift is something an operator should look at)."""
from __future__ import annotations

import logging

from ..domain.drift import Finding
from ..service_layer.ports import DriftReport
from ..service_layer.step_log import LOGGER_NAME

log = logging.getLogger(LOGGER_NAME + ".drift")


class LoggingDriftReport(DriftReport):
    def report(self, finding: Finding) -> None:
        log.warning(finding.log_line())
