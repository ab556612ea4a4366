"""The rules a setting's value must follow, as pydantic validators whose messages say what is expected.

Every message names what was expected and, for values that are not secret, what was found, so a misconfigured
deployment is fixed in one pass. A rule never echoes a value that may be a secret.
"""
from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Annotated, Any, Callable

from pydantic import BeforeValidator

from .sources import APP_ROOT

_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*(:\d{1,5})?$")
TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}


def _rule(fn: Callable[[str], Any]) -> BeforeValidator:
    return BeforeValidator(lambda value: fn(str(value)))


def Text(*, secret: bool = False) -> Any:  # noqa: N802 - reads as a type in the model
    def check(value: str) -> str:
        value = value.strip()
        if not secret and any(c.isspace() for c in value):
            raise ValueError("must not contain white space")
        return value
    return Annotated[str, _rule(check)]


def _host(value: str) -> str:
    value = value.strip()
    if "://" in value or "/" in value:
        raise ValueError(f"must be a host name such as contoso.eu.auth0.com, without https:// or a path "
                         f"(got {value!r})")
    if not _HOST.match(value):
        raise ValueError(f"{value!r} is not a host name (optionally with :port)")
    return value


Host = Annotated[str, _rule(_host)]


def Url(*schemes: str, base: bool = False) -> Any:  # noqa: N802
    """``base``: an endpoint that paths are appended to, kept without its trailing slash."""
    schemes = schemes or ("https://",)

    def check(value: str) -> str:
        value = value.strip()
        if not value.startswith(schemes) or len(value) <= len(value.split("://")[0]) + 3:
            raise ValueError(f"must be a URL starting with {' or '.join(schemes)} (got {value!r})")
        return value.rstrip("/") if base else value
    return Annotated[str, _rule(check)]


def Pattern(rx: str, rule: str) -> Any:  # noqa: N802
    compiled = re.compile(rx)

    def check(value: str) -> str:
        value = value.strip()
        if not compiled.match(value):
            raise ValueError(f"must be {rule} (got {value!r})")
        return value
    return Annotated[str, _rule(check)]


def _guid(value: str) -> str:
    value = value.strip()
    try:
        uuid.UUID(value)
    except ValueError:
        raise ValueError(f"must be an Azure subscription id, a GUID such as 00000000-0000-0000-0000-000000000000 "
                         f"(got {value!r})") from None
    return value


Guid = Annotated[str, _rule(_guid)]


def Number(minimum: float, maximum: float, unit: str = "seconds", *, whole: bool = False) -> Any:  # noqa: N802
    def check(value: str) -> float | int:
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"must be a number of {unit} (got {text!r})") from None
        if whole and not number.is_integer():
            raise ValueError(f"must be a whole number of {unit} (got {text})")
        if not minimum <= number <= maximum:
            raise ValueError(f"must be between {minimum:g} and {maximum:g} {unit} (got {text})")
        return int(number) if whole else number
    return Annotated[int if whole else float, _rule(check)]


def _boolean(value: str) -> bool:
    text = value.strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError(f"must be true or false (got {value!r})")


Boolean = Annotated[bool, _rule(_boolean)]


def _app_file(value: str) -> Path:
    path = Path(value.strip())
    if not path.is_absolute():
        path = APP_ROOT / path
    if not path.is_file():
        raise ValueError(f"no file at {path}")
    return path


AppFile = Annotated[Path, _rule(_app_file)]


def _file(value: str) -> str:
    value = value.strip()
    if not Path(value).is_file():
        raise ValueError(f"no file at {value}")
    return value


File = Annotated[str, _rule(_file)]


def _prefix(value: str) -> str:
    if value != value.strip():
        raise ValueError("must not start or end with white space")
    return value


Prefix = Annotated[str, _rule(_prefix)]


_CRON_FIELD = re.compile(r"^(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?(,(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?)*$")
_TIMESPAN = re.compile(r"^\d{1,2}:\d{2}:\d{2}$")


def _schedule(value: str) -> str:
    value = value.strip()
    fields = value.split()
    if _TIMESPAN.match(value) or (len(fields) in (5, 6) and all(_CRON_FIELD.match(f) for f in fields)):
        return value
    raise ValueError(f"must be an NCRONTAB expression ({{second}} {{minute}} {{hour}} {{day}} {{month}} "
                     f"{{day-of-week}}, e.g. '0 0 * * * *' for hourly) or an hh:mm:ss interval (got {value!r})")


#: a timer trigger's schedule, as the Functions host reads it (the host itself checks the ranges)
Schedule = Annotated[str, _rule(_schedule)]
