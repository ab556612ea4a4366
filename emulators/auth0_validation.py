"""Helpers shared by the Auth0 stand-in's modules: random ids and Auth0's payload-validation error texts."""
from __future__ import annotations

import secrets
import string

from .http_standin import HttpError

_ALNUM = string.ascii_letters + string.digits


def _random(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "unknown")


def _payload_error(message: str, prop: str | None = None) -> HttpError:
    # Auth0's schema validation texts, e.g. "Payload validation error: 'Additional properties not allowed:
    # audience,client_id'." (alexkappa/terraform-provider-auth0#9) and "Payload validation error: 'Object didn't pass
    # validation for format callback-url: ...' on property callbacks[0]." (auth0/auth0-deploy-cli#155)
    where = f" on property {prop}" if prop else ""
    return HttpError(400, "invalid_body", f"Payload validation error: '{message}'{where}.")


def _query_error(message: str, prop: str) -> HttpError:
    return HttpError(400, "invalid_query_string", f"Query validation error: '{message}' on property {prop}.")


def _expect_type(value, expected: str, prop: str) -> None:
    actual = _json_type(value)
    if actual != expected and not (expected == "number" and actual == "integer"):
        raise _payload_error(f"Expected type {expected} but found type {actual}", prop)
