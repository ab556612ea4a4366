"""The policy expressions the local gateway evaluates: a fixed table, not a C# interpreter.

API Management compiles ``@(...)`` expressions as C#. The gateway knows the handful the project's policies use, each
by its exact text (whitespace outside string literals ignored), with the meaning the policy-expressions reference
gives the members they read (``context.Subscription.Id``/``Name``, ``context.Variables``, ``Jwt.Claims``,
``IReadOnlyDictionary.GetValueOrDefault`` returning the comma-joined values or the default). A policy with any other
expression is refused when it is loaded, so a new expression in ``infra/policies`` fails the local stack's start
(and the tests) until its meaning is added here, instead of being silently mis-evaluated.
"""
from __future__ import annotations

import re
from typing import Any, Callable


class ExpressionNotSupported(ValueError):
    pass


def normalize(text: str) -> str:
    """The expression with whitespace outside string literals removed."""
    out, in_string = [], False
    for ch in text.strip():
        if ch == '"':
            in_string = not in_string
        if ch.isspace() and not in_string:
            continue
        out.append(ch)
    return "".join(out)


def _claim(ctx, variable: str, name: str, default: str) -> str:
    jwt = ctx.variables.get(variable)
    if jwt is None:
        # C# would throw a NullReferenceException: API Management answers 500 (ExpressionValueEvaluationFailure).
        raise RuntimeError(f"context.Variables[\"{variable}\"] is not set")
    values = jwt.claims.get(name)
    return ",".join(values) if values else default


def _subscription_id(ctx) -> str:
    return ctx.subscription.id if ctx.subscription else ""


def _subscription_name(ctx) -> str:
    return ctx.subscription.name if ctx.subscription else ""


# The exact texts, normalized. Each entry: the C# as it appears in a policy -> its meaning.
def _claim_rx(n: str = "") -> str:
    return (r'\(\(Jwt\)context\.Variables\["(?P<var' + n + r'>[A-Za-z0-9_-]+)"\]\)\.Claims\.GetValueOrDefault\("'
            r'(?P<claim' + n + r'>[A-Za-z0-9_:./-]+)",""\)')


_PATTERNS: list[tuple[re.Pattern, Callable[[re.Match], Callable[[Any], Any]]]] = [
    (re.compile(r"context\.Subscription\.Id"), lambda m: _subscription_id),
    (re.compile(r"context\.Subscription\.Name"), lambda m: _subscription_name),
    (re.compile(_claim_rx()), lambda m: lambda ctx: _claim(ctx, m["var"], m["claim"], "")),
    # The customer binding of infra/policies/api.xml: the subscription's display name is the token's azp, and then
    # its org_id after a space when it has one; String.TrimEnd() drops the space a token without org_id leaves.
    # String.StartsWith and != compare ordinally here.
    (re.compile(r'!context\.Subscription\.Id\.StartsWith\("(?P<prefix>[A-Za-z0-9_-]+)"\)\|\|'
                r'context\.Subscription\.Name!=\(' + _claim_rx("1") + r'\+" "\+' + _claim_rx("2")
                + r'\)\.TrimEnd\(\)'),
     lambda m: lambda ctx: (not _subscription_id(ctx).startswith(m["prefix"]))
     or _subscription_name(ctx) != (_claim(ctx, m["var1"], m["claim1"], "") + " "
                                    + _claim(ctx, m["var2"], m["claim2"], "")).rstrip()),
]


def compile_expression(source: str) -> Callable[[Any], Any]:
    """``source``: the text inside ``@(...)``. Returns a function of the request context."""
    text = normalize(source)
    for pattern, build in _PATTERNS:
        m = pattern.fullmatch(text)
        if m:
            return build(m)
    raise ExpressionNotSupported(f"the local gateway does not implement the policy expression @({source.strip()})")


def value_of(raw: str) -> tuple[bool, Callable[[Any], Any] | str]:
    """An attribute or element value: ``(True, fn)`` for ``@(...)``, ``(False, text)`` for a constant. Multi-statement
    expressions (``@{...}``) are not implemented."""
    stripped = raw.strip()
    if stripped.startswith("@{"):
        raise ExpressionNotSupported("the local gateway does not implement multi-statement expressions @{...}")
    if stripped.startswith("@(") and stripped.endswith(")"):
        return True, compile_expression(stripped[2:-1])
    return False, raw
