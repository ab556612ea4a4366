"""The Auth0 stand-in's connections, read only: ``GET /api/v2/connections`` (``name`` and ``strategy`` filters,
checkpoint paging) and ``GET /api/v2/connections/{id}``, which is what an organization's enabled connections need
(they are added by connection id; a profile names connections by name).

A mixin of :class:`emulators.auth0.Auth0StandIn`; it expects ``self.connections`` (id -> record). A new tenant has
the database connection ``Username-Password-Authentication`` (strategy ``auth0``), as every Auth0 tenant starts
with; tests and the local stack add others through the control API (``config(connections=[{name, strategy,
is_domain_connection}])``). Ids are ``con_`` and 16 letters and digits, as a tenant's. Shape: auth0-python 6.8's
``ConnectionForList`` (``id``, ``name``, ``display_name``, ``strategy``, ``is_domain_connection``, ``realms``).

Operation names: ``connections.list`` ``.get``.
"""
from __future__ import annotations

from .auth0_schema import ALNUM, random_string
from .http_standin import HttpError, Request, Response, route

CONNECTION_SCOPES = {"connections.list": ("read:connections",), "connections.get": ("read:connections",)}
DEFAULT_CONNECTIONS = ({"name": "Username-Password-Authentication", "strategy": "auth0"},)


class ConnectionRoutes:
    def seed_connections(self, wanted) -> None:
        """Make sure a connection of each wanted name exists (idempotent: names are unique in a tenant)."""
        for item in wanted:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
                raise HttpError(400, "invalid_config", "a connection needs a name")
            if any(c["name"] == item["name"] for c in self.connections.values()):
                continue
            self._seq += 1
            cid = f"con_{random_string(ALNUM, 16)}"
            self.connections[cid] = {"id": cid, "name": item["name"], "strategy": str(item.get("strategy", "auth0")),
                                     "is_domain_connection": bool(item.get("is_domain_connection", False)),
                                     "realms": [item["name"]], "_seq": self._seq}

    @staticmethod
    def _connection_view(record: dict) -> dict:
        return {k: v for k, v in record.items() if not k.startswith("_")}

    @route("GET", r"/api/v2/connections", "connections.list")
    def list_connections(self, req: Request) -> Response:
        self._check_query(req, {"include_totals", "from", "take", "strategy", "name", "fields", "include_fields",
                                "page", "per_page"})
        name = req.arg("name")
        strategies = {s for value in req.query.get("strategy", []) for s in value.split(",") if s}
        records = [c for c in sorted(self.connections.values(), key=lambda c: c["_seq"])
                   if (name is None or c["name"] == name) and (not strategies or c["strategy"] in strategies)]
        fields = {f.strip() for f in (req.arg("fields") or "").split(",") if f.strip()}
        include = self._bool_arg(req, "include_fields", True)

        def view(record: dict) -> dict:
            shown = self._connection_view(record)
            return {k: v for k, v in shown.items() if (k in fields) == include} if fields else shown
        return self._paged(req, records, "connections", view, "con")

    @route("GET", r"/api/v2/connections/(?P<id>[^/]+)", "connections.get")
    def get_connection(self, req: Request) -> Response:
        self._check_query(req, {"fields", "include_fields"})
        record = self.connections.get(req.params["id"])
        if record is None:
            raise HttpError(404, "inexistent_connection", "The connection does not exist")
        return Response(200, self._connection_view(record))
