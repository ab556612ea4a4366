"""Loading API Management policy documents for the local gateway: named values, the elements it implements, checks.

A policy document is ``<policies>`` with the sections ``inbound``, ``backend``, ``outbound``, ``on-error``. Named
values (``{{name}}``) are replaced first, as API Management does when it stores a policy; an unknown one is an error.
Then every element and attribute is checked against :data:`ELEMENTS`, the policies the gateway implements, with the
attributes each takes and the sections it may appear in (the "Usage" of each policy's reference page). Anything else,
an unknown element, attribute or expression, is refused with a :class:`PolicyError` naming it: the gateway never
runs a policy it would only pretend to enforce.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .expressions import ExpressionNotSupported, value_of


class PolicyError(ValueError):
    pass


SECTIONS = ("inbound", "backend", "outbound", "on-error")
_ALL = frozenset(SECTIONS)
_INBOUND = frozenset({"inbound"})

#: element -> (attributes, child elements, sections where it may appear; None: only as a child of another element)
ELEMENTS: dict[str, tuple[frozenset, frozenset, frozenset | None]] = {
    "base": (frozenset(), frozenset(), _ALL),
    "forward-request": (frozenset({"timeout"}), frozenset(), frozenset({"backend"})),
    "validate-jwt": (frozenset({"header-name", "query-parameter-name", "failed-validation-httpcode",
                                "failed-validation-error-message", "require-expiration-time", "require-scheme",
                                "require-signed-tokens", "clock-skew", "output-token-variable-name"}),
                     frozenset({"openid-config", "audiences", "issuers", "required-claims"}), _INBOUND),
    "openid-config": (frozenset({"url"}), frozenset(), None),
    "audiences": (frozenset(), frozenset({"audience"}), None),
    "audience": (frozenset(), frozenset(), None),
    "issuers": (frozenset(), frozenset({"issuer"}), None),
    "issuer": (frozenset(), frozenset(), None),
    "required-claims": (frozenset(), frozenset({"claim"}), None),
    "claim": (frozenset({"name", "match", "separator"}), frozenset({"value"}), None),
    "value": (frozenset(), frozenset(), None),
    "choose": (frozenset(), frozenset({"when", "otherwise"}), _ALL),
    "when": (frozenset({"condition"}), frozenset({"*"}), None),
    "otherwise": (frozenset(), frozenset({"*"}), None),
    "return-response": (frozenset(), frozenset({"set-status", "set-header", "set-body"}), _ALL),
    "set-status": (frozenset({"code", "reason"}), frozenset(), None),
    "set-body": (frozenset(), frozenset(), None),
    "set-header": (frozenset({"name", "exists-action"}), frozenset({"value"}), _ALL),
    "rate-limit-by-key": (frozenset({"calls", "renewal-period", "counter-key", "retry-after-header-name",
                                     "remaining-calls-header-name", "total-calls-header-name"}),
                          frozenset(), _INBOUND),
    "check-header": (frozenset({"name", "failed-check-httpcode", "failed-check-error-message", "ignore-case"}),
                     frozenset({"value"}), _INBOUND),
}
#: attributes whose value may be an expression (the reference's "Policy expressions are allowed")
EXPRESSION_ATTRIBUTES = {("when", "condition"), ("rate-limit-by-key", "counter-key"),
                         ("rate-limit-by-key", "calls"), ("rate-limit-by-key", "renewal-period")}
_NAMED_VALUE = re.compile(r"\{\{([A-Za-z0-9._-]+)\}\}")


@dataclass
class Node:
    tag: str
    attrs: dict[str, Any]          # constants, or compiled expressions where allowed
    children: list["Node"] = field(default_factory=list)
    text: Any = ""                 # a constant, or a compiled expression (set-header's value)
    path: str = ""

    def child(self, tag: str) -> "Node | None":
        return next((c for c in self.children if c.tag == tag), None)

    def all(self, tag: str) -> list["Node"]:
        return [c for c in self.children if c.tag == tag]


@dataclass
class PolicyDocument:
    source: str
    sections: dict[str, list[Node]]


def substitute_named_values(text: str, named_values: dict[str, str], source: str) -> str:
    def sub(m: re.Match) -> str:
        if m.group(1) not in named_values:
            raise PolicyError(f"{source}: named value {{{{{m.group(1)}}}}} is not defined")
        return named_values[m.group(1)]
    return _NAMED_VALUE.sub(sub, text)


def load_policy(path: str | Path, named_values: dict[str, str]) -> PolicyDocument:
    path = Path(path)
    return parse_policy(path.read_text(encoding="utf-8"), named_values, source=path.name)


def parse_policy(text: str, named_values: dict[str, str], source: str = "policy") -> PolicyDocument:
    text = substitute_named_values(text, named_values, source)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise PolicyError(f"{source}: not well-formed XML: {exc}") from None
    if root.tag != "policies":
        raise PolicyError(f"{source}: the root element must be <policies>, not <{root.tag}>")
    sections: dict[str, list[Node]] = {}
    for section in root:
        if section.tag not in SECTIONS:
            raise PolicyError(f"{source}: unknown section <{section.tag}>")
        if section.tag in sections:
            raise PolicyError(f"{source}: section <{section.tag}> appears twice")
        sections[section.tag] = [_node(el, section.tag, source, f"{section.tag}/{el.tag}") for el in section]
        if sum(1 for n in sections[section.tag] if n.tag == "base") > 1:
            raise PolicyError(f"{source}: <base /> appears more than once in <{section.tag}>")
    return PolicyDocument(source, sections)


def _node(el: ET.Element, section: str, source: str, path: str, parent: str | None = None) -> Node:
    where = f"{source}: {path}"
    spec = ELEMENTS.get(el.tag)
    if spec is None:
        raise PolicyError(f"{where}: the local gateway does not implement the policy <{el.tag}>")
    attributes, children, sections = spec
    if parent is None and sections is None:
        raise PolicyError(f"{where}: <{el.tag}> is only valid inside another policy")
    if parent is None and section not in sections:
        raise PolicyError(f"{where}: <{el.tag}> is not allowed in the {section} section")
    unknown = set(el.attrib) - attributes
    if unknown:
        raise PolicyError(f"{where}: <{el.tag}> attribute(s) not implemented: {', '.join(sorted(unknown))}")
    attrs: dict[str, Any] = {}
    for name, raw in el.attrib.items():
        try:
            is_expr, value = value_of(raw)
        except ExpressionNotSupported as exc:
            raise PolicyError(f"{where}: {exc}") from None
        if is_expr and (el.tag, name) not in EXPRESSION_ATTRIBUTES:
            raise PolicyError(f"{where}: attribute {name} of <{el.tag}> takes no expression here")
        attrs[name] = value
    node = Node(el.tag, attrs, path=path)
    text = (el.text or "").strip()
    if text:
        if el.tag not in ("value", "set-body", "audience", "issuer"):
            raise PolicyError(f"{where}: <{el.tag}> takes no text")
        try:
            is_expr, value = value_of(text)
        except ExpressionNotSupported as exc:
            raise PolicyError(f"{where}: {exc}") from None
        if is_expr and not (el.tag == "value" and parent == "set-header"):
            raise PolicyError(f"{where}: the local gateway evaluates expressions only in set-header values")
        node.text = value
    for child in el:
        allowed = children
        if "*" in allowed:  # when/otherwise hold policies of the section they are in
            node.children.append(_node(child, section, source, f"{path}/{child.tag}"))
            continue
        if child.tag not in allowed:
            raise PolicyError(f"{where}: <{child.tag}> is not allowed inside <{el.tag}>")
        node.children.append(_node(child, section, source, f"{path}/{child.tag}", parent=el.tag))
    _check(node, where)
    return node


def _check(node: Node, where: str) -> None:
    """Required attributes and values, as each policy's reference lists them."""
    a = node.attrs
    if node.tag == "validate-jwt":
        if sum(1 for k in ("header-name", "query-parameter-name") if k in a) != 1:
            raise PolicyError(f"{where}: validate-jwt needs exactly one of header-name, query-parameter-name")
        if node.child("openid-config") is None:
            raise PolicyError(f"{where}: the local gateway validates tokens against an openid-config only")
    elif node.tag == "rate-limit-by-key":
        for req in ("calls", "renewal-period", "counter-key"):
            if req not in a:
                raise PolicyError(f"{where}: rate-limit-by-key needs {req}")
        for name in ("calls", "renewal-period"):
            if isinstance(a[name], str) and not a[name].strip().isdigit():
                raise PolicyError(f"{where}: {name} must be a whole number, not {a[name]!r}")
        if isinstance(a["renewal-period"], str) and int(a["renewal-period"]) > 300:
            raise PolicyError(f"{where}: renewal-period is at most 300 seconds")
    elif node.tag == "set-header":
        if "name" not in a:
            raise PolicyError(f"{where}: set-header needs a name")
        action = a.get("exists-action", "override")
        if action not in ("override", "skip", "append", "delete"):
            raise PolicyError(f"{where}: exists-action must be override, skip, append or delete")
        if action != "delete" and not node.all("value"):
            raise PolicyError(f"{where}: set-header needs a value unless exists-action is delete")
    elif node.tag == "when" and "condition" not in a:
        raise PolicyError(f"{where}: when needs a condition")
    elif node.tag == "set-status" and not str(a.get("code", "")).isdigit():
        raise PolicyError(f"{where}: set-status needs a numeric code")
    elif node.tag == "claim" and "name" not in a:
        raise PolicyError(f"{where}: claim needs a name")
    elif node.tag == "claim" and a.get("match", "all") not in ("all", "any"):
        raise PolicyError(f"{where}: claim match must be all or any")
    elif node.tag == "check-header" and not {"name", "failed-check-httpcode", "failed-check-error-message",
                                             "ignore-case"} <= set(a):
        raise PolicyError(f"{where}: check-header needs name, failed-check-httpcode, failed-check-error-message "
                          "and ignore-case")
