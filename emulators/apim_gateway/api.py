"""The API definition the gateway serves: ``infra/apim/customer-api.json`` and the policy files it names.

The same JSON is read by ``infra/modules/apim-api.bicep`` (``loadJsonContent``), which creates the API, its
operations and their policies in API Management; the gateway reads it and ``infra/policies/*.xml`` here, with the
named values the template sets from the same settings. One definition, two consumers: what the local gateway
enforces is what Azure's gateway is configured to enforce.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .policy import PolicyDocument, PolicyError, load_policy

INFRA = Path(__file__).resolve().parents[2] / "infra"
API_FILE = INFRA / "apim" / "customer-api.json"
POLICIES = INFRA / "policies"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")


@dataclass
class Operation:
    id: str
    method: str
    url_template: str
    policy: PolicyDocument | None

    def matches(self, method: str, rest: str) -> bool:
        return method == self.method and _template(self.url_template).fullmatch(rest) is not None


@dataclass
class ApiDefinition:
    id: str
    path: str
    header_name: str
    query_name: str
    subscription_required: bool
    policy: PolicyDocument | None
    operations: list[Operation]

    def split(self, path: str) -> str | None:
        """The part of ``path`` after the API's path (``/api/x`` -> ``/x``), or None when it is another API's."""
        prefix = "/" + self.path.strip("/")
        if path == prefix:
            return "/"
        if path.startswith(prefix + "/"):
            return path[len(prefix):]
        return None

    def operation(self, method: str, rest: str) -> Operation | None:
        return next((op for op in self.operations if op.matches(method, rest)), None)


def _template(url_template: str) -> re.Pattern:
    """API Management URL templates: ``/*`` matches any path, ``{name}`` one segment."""
    if url_template.endswith("/*"):
        head = re.escape(url_template[:-2])
        return re.compile(head + r"(/.*)?")
    parts = re.split(r"(\{[^}/]+\})", url_template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


def load_api(named_values: dict[str, str], api_file: Path = API_FILE, policies: Path = POLICIES) -> ApiDefinition:
    doc = json.loads(api_file.read_text(encoding="utf-8"))
    for key in ("id", "path", "operations"):
        if key not in doc:
            raise PolicyError(f"{api_file.name}: {key} is required")

    def policy(name: str | None) -> PolicyDocument | None:
        return load_policy(policies / name, named_values) if name else None

    operations = []
    for op in doc["operations"]:
        if op.get("method") not in METHODS:
            raise PolicyError(f"{api_file.name}: operation {op.get('id')}: method {op.get('method')!r}")
        operations.append(Operation(op["id"], op["method"], op.get("urlTemplate", "/*"), policy(op.get("policy"))))
    names = doc.get("subscriptionKeyParameterNames") or {}
    return ApiDefinition(doc["id"], doc["path"], names.get("header", "Ocp-Apim-Subscription-Key"),
                         names.get("query", "subscription-key"), bool(doc.get("subscriptionRequired", True)),
                         policy(doc.get("policy")), operations)
