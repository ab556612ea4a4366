"""Query strings and paging of the Auth0 Management API, as the stand-in reads and answers them.

Auth0 pages a list in one of two ways (the Management API reference, and the pagers auth0-python 6.8 builds):

- offset paging: ``page`` (0-based) and ``per_page`` (at most 100); with ``include_totals=true`` the answer is an
  object ``{<items>, start, limit, total}``, without it the bare array;
- checkpoint paging: ``from`` (an opaque id of where to go on) and ``take`` (at most 100); the answer is
  ``{<items>, next}``, ``next`` absent on the last page. ``include_totals`` does not apply.

A mixin of :class:`emulators.auth0.Auth0StandIn` (the routes of every ``auth0_*`` module use it).
"""
from __future__ import annotations

import base64
import binascii
import re

from .auth0_schema import query_error
from .http_standin import HttpError, Request, Response

MAX_PER_PAGE = 100


class QueryHelpers:
    @staticmethod
    def _check_query(req: Request, allowed: set[str]) -> None:
        extra = [k for k in req.query if k not in allowed]
        if extra:
            raise HttpError(400, "invalid_query_string",
                            f"Query validation error: 'Additional properties not allowed: {','.join(extra)}'.")

    @staticmethod
    def _bool_arg(req: Request, name: str, default):
        value = req.arg(name)
        if value is None:
            return default
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise query_error("Expected type boolean but found type string", name)

    @staticmethod
    def _int_arg(req: Request, name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
        value = req.arg(name)
        if value is None:
            return default
        if not re.fullmatch(r"-?\d+", value):
            raise query_error("Expected type integer but found type string", name)
        number = int(value)
        if minimum is not None and number < minimum:
            raise query_error(f"Value {number} is less than minimum {minimum}", name)
        if maximum is not None and number > maximum:
            raise query_error(f"Value {number} is greater than maximum {maximum}", name)
        return number

    # -- checkpoints -----------------------------------------------------------------------------------------------
    @staticmethod
    def _encode_checkpoint(kind: str, seq: int) -> str:
        return base64.urlsafe_b64encode(f"{kind}:{seq}".encode()).decode().rstrip("=")

    @staticmethod
    def _decode_checkpoint(token: str, kind: str = "cgr") -> int:
        try:
            found, _, seq = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().partition(":")
            if found == kind and seq.isdigit():
                return int(seq)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            pass
        raise HttpError(400, "invalid_paging", "Invalid value for the from parameter")

    # -- answers ---------------------------------------------------------------------------------------------------
    def _paged(self, req: Request, records: list[dict], key: str, view, kind: str, *,
               paging_off_by_default: bool = False) -> Response:
        """``records`` (sorted by ``_seq``) as the page the query asks for, each shown through ``view``."""
        if req.arg("from") is not None or req.arg("take") is not None:
            take = self._int_arg(req, "take", 50, minimum=1, maximum=MAX_PER_PAGE)
            start = self._decode_checkpoint(req.arg("from"), kind) if req.arg("from") else 0
            rest = [r for r in records if r["_seq"] >= start]
            page, after = rest[:take], rest[take:]
            body = {key: [view(r) for r in page]}
            if after:
                body["next"] = self._encode_checkpoint(kind, after[0]["_seq"])
            return Response(200, body)
        totals = self._bool_arg(req, "include_totals", False)
        if paging_off_by_default and req.arg("page") is None and req.arg("per_page") is None:
            window, page, per_page = records, 0, len(records)  # "Paging is disabled if parameter not sent."
        else:
            page = self._int_arg(req, "page", 0, minimum=0)
            per_page = self._int_arg(req, "per_page", 50, minimum=1, maximum=MAX_PER_PAGE)
            window = records[page * per_page:(page + 1) * per_page]
        items = [view(r) for r in window]
        if totals:
            return Response(200, {key: items, "start": page * per_page, "limit": per_page, "total": len(records)})
        return Response(200, items)
