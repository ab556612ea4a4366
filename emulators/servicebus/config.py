"""Config.json handling, in the shape of the official Service Bus emulator's configuration file.

Shape (Microsoft's emulator, ``ServiceBus-Emulator/Config/Config.json``)::

    {"UserConfig": {"Namespaces": [{"Name": "sbemulatorns",
                                    "Queues": [{"Name": ..., "Properties": {...}}],
                                    "Topics": [{"Name": ..., "Properties": {...},
                                                "Subscriptions": [{"Name": ..., "Properties": {...},
                                                                   "Rules": [...]}]}]}],
                    "Logging": {"Type": "Console"}}}

Durations are ISO 8601 (``PT30S``, ``P14D``); .NET TimeSpan text (``00:00:30``, ``14.00:00:00``)
is accepted too because Azure tooling writes both.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

__all__ = ["load_config", "parse_duration", "EntitySettings", "RuleSpec", "default_config_path"]

# Service Bus defaults (Microsoft docs, "Service Bus queues, topics, and subscriptions" /
# ARM template reference): lock 1 min, 10 deliveries, TTL "infinite" (TimeSpan.MaxValue),
# duplicate detection window 10 min.
DEFAULT_LOCK_DURATION = 60.0
DEFAULT_MAX_DELIVERY_COUNT = 10
DEFAULT_DUP_WINDOW = 600.0
# Anything longer than this is treated as "never expires" (TimeSpan.MaxValue is ~29,000 years).
_FOREVER = 100 * 365 * 86400.0

_ISO = re.compile(
    r"^P(?:(?P<y>\d+(?:\.\d+)?)Y)?(?:(?P<mo>\d+(?:\.\d+)?)M)?(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<mi>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)
_TIMESPAN = re.compile(r"^(?:(?P<d>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d+)?)$")


def parse_duration(value: Any) -> Optional[float]:
    """Seconds for an ISO 8601 duration / TimeSpan string / number; None for "forever" or empty."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip()
        m = _ISO.match(text)
        if m and text.upper() not in ("P", "PT"):
            g = {k: float(v) if v else 0.0 for k, v in m.groupdict().items()}
            seconds = (
                g["y"] * 365 * 86400
                + g["mo"] * 30 * 86400
                + g["w"] * 7 * 86400
                + g["d"] * 86400
                + g["h"] * 3600
                + g["mi"] * 60
                + g["s"]
            )
        else:
            m = _TIMESPAN.match(text)
            if not m:
                raise ValueError(f"not an ISO 8601 duration or TimeSpan: {value!r}")
            seconds = int(m["d"] or 0) * 86400 + int(m["h"]) * 3600 + int(m["m"]) * 60 + float(m["s"])
    if seconds <= 0:
        raise ValueError(f"duration must be positive: {value!r}")
    return None if seconds >= _FOREVER else seconds


def _bool(value: Any, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


@dataclass
class RuleSpec:
    """A subscription rule. Only TrueFilter/FalseFilter, trivial SQL and correlation filters."""

    name: str
    kind: str = "true"  # "true" | "false" | "correlation"
    correlation: Dict[str, Any] = field(default_factory=dict)
    properties: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, raw: Dict[str, Any]) -> "RuleSpec":
        name = str(raw.get("Name") or "$Default")
        props = raw.get("Properties") or {}
        ftype = str(props.get("FilterType") or "Correlation").lower()
        if ftype == "correlation":
            cf = dict(props.get("CorrelationFilter") or {})
            app_props = dict(cf.pop("Properties", None) or {})
            known = {"ContentType", "CorrelationId", "Label", "Subject", "MessageId", "ReplyTo",
                     "ReplyToSessionId", "SessionId", "To"}
            unknown = set(cf) - known
            if unknown:
                raise ValueError(f"rule {name!r}: unknown correlation filter fields {sorted(unknown)}")
            return cls(name=name, kind="correlation", correlation=cf, properties=app_props)
        if ftype in ("sql", "sqlfilter"):
            expr = str((props.get("SqlFilter") or {}).get("SqlExpression") or "").strip().lower()
            if expr in ("1=1", "1 = 1", "true"):
                return cls(name=name, kind="true")
            if expr in ("1=0", "1 = 0", "false"):
                return cls(name=name, kind="false")
            # Refusing loudly beats silently routing differently from the real service.
            raise ValueError(f"rule {name!r}: SQL filters other than 1=1 / 1=0 are not supported by the stand-in")
        if ftype in ("true", "truefilter"):
            return cls(name=name, kind="true")
        if ftype in ("false", "falsefilter"):
            return cls(name=name, kind="false")
        raise ValueError(f"rule {name!r}: unsupported FilterType {props.get('FilterType')!r}")


@dataclass
class EntitySettings:
    max_delivery_count: int = DEFAULT_MAX_DELIVERY_COUNT
    lock_duration: float = DEFAULT_LOCK_DURATION
    requires_session: bool = False
    default_ttl: Optional[float] = None
    dead_lettering_on_expiration: bool = False
    requires_duplicate_detection: bool = False
    duplicate_window: float = DEFAULT_DUP_WINDOW
    forward_to: Optional[str] = None
    forward_dead_lettered_to: Optional[str] = None

    @classmethod
    def from_config(cls, props: Optional[Dict[str, Any]]) -> "EntitySettings":
        p = props or {}
        lock = parse_duration(p.get("LockDuration")) if p.get("LockDuration") else DEFAULT_LOCK_DURATION
        if lock is None or lock > 300:
            # Service Bus caps LockDuration at 5 minutes.
            raise ValueError(f"LockDuration must be at most PT5M, got {p.get('LockDuration')!r}")
        mdc = int(p.get("MaxDeliveryCount", DEFAULT_MAX_DELIVERY_COUNT))
        if mdc < 1:
            raise ValueError("MaxDeliveryCount must be at least 1")
        window = p.get("DuplicateDetectionHistoryTimeWindow")
        return cls(
            max_delivery_count=mdc,
            lock_duration=lock,
            requires_session=_bool(p.get("RequiresSession")),
            default_ttl=parse_duration(p.get("DefaultMessageTimeToLive")),
            dead_lettering_on_expiration=_bool(p.get("DeadLetteringOnMessageExpiration")),
            requires_duplicate_detection=_bool(p.get("RequiresDuplicateDetection")),
            duplicate_window=(parse_duration(window) or DEFAULT_DUP_WINDOW) if window else DEFAULT_DUP_WINDOW,
            forward_to=(p.get("ForwardTo") or None),
            forward_dead_lettered_to=(p.get("ForwardDeadLetteredMessagesTo") or None),
        )


def queue_entry(name: str, **properties: Any) -> Dict[str, Any]:
    """A queue as Config.json lists it: every property the official emulator's file carries, ``properties``
    overriding (tests build their configs with it)."""
    base: Dict[str, Any] = {
        "DeadLetteringOnMessageExpiration": False,
        "DefaultMessageTimeToLive": "PT1H",
        "DuplicateDetectionHistoryTimeWindow": "PT10M",
        "ForwardDeadLetteredMessagesTo": "",
        "ForwardTo": "",
        "LockDuration": "PT5S",
        "MaxDeliveryCount": DEFAULT_MAX_DELIVERY_COUNT,
        "RequiresDuplicateDetection": False,
        "RequiresSession": False,
    }
    base.update(properties)
    return {"Name": name, "Properties": base}


def default_config_path() -> str:
    import os

    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "config.json")


def load_config(path: str) -> Dict[str, Any]:
    """Read a Config.json (official emulator shape) and return it as a dict."""
    with open(path, "r", encoding="utf-8-sig") as fh:
        data = json.load(fh)
    validate_config(data)
    return data


def namespaces(config: Dict[str, Any]) -> List[Dict[str, Any]]:
    user = config.get("UserConfig", config)
    return list(user.get("Namespaces") or [])


def validate_config(config: Dict[str, Any]) -> None:
    if not isinstance(config, dict):
        raise ValueError("config must be a JSON object")
    nss = namespaces(config)
    if not nss:
        raise ValueError("config has no UserConfig.Namespaces entry")
    seen = set()
    for ns in nss:
        for q in ns.get("Queues") or []:
            name = str(q.get("Name") or "")
            if not name:
                raise ValueError("a queue without Name")
            EntitySettings.from_config(q.get("Properties"))
            if name.lower() in seen:
                raise ValueError(f"duplicate entity name {name!r}")
            seen.add(name.lower())
        for t in ns.get("Topics") or []:
            name = str(t.get("Name") or "")
            if not name:
                raise ValueError("a topic without Name")
            if name.lower() in seen:
                raise ValueError(f"duplicate entity name {name!r}")
            seen.add(name.lower())
            for s in t.get("Subscriptions") or []:
                if not s.get("Name"):
                    raise ValueError(f"a subscription of {name!r} without Name")
                EntitySettings.from_config(s.get("Properties"))
                for r in s.get("Rules") or []:
                    RuleSpec.from_config(r)
