"""Redirect URIs (``data.redirectUris``) read as the URLs a browser will follow, before they become Auth0 callbacks.

Every event: ``https://``, then a host that is a DNS name (labels of letters, digits and ``-``, not at either end)
or an IP address (dotted-quad IPv4, or IPv6 in brackets; a name whose last label is a number is read as IPv4, as a
browser does, and must be one), an optional port 1-65535, an optional path and query; no fragment, no user info, no
wildcard, no percent-encoded host, and only the characters RFC 3986 allows, so no markup (``"><script>``), space or
invisible character (a zero-width space is U+200B) reaches the callback list.

Per profile: a host that only reaches the user's own machine or network (``localhost`` and ``*.localhost``,
``*.local``, a name of one label, a loopback, private, link-local or otherwise non-public address) is refused for a
third-party profile unless the profile sets ``allow_local_redirect_uris = true``: Auth0 tells production callbacks
not to point at localhost, and an application a third party controls must not collect codes on an address of the
user's own network.
"""
from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

MAX_CHARS = 2000
#: RFC 3986: unreserved, reserved and percent signs. Anything else (``<>"{}|\\^`` and the back quote, spaces,
#: controls, every non-ASCII character) is refused rather than encoded.
_URI_CHARS = re.compile(r"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*$")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_DECIMAL_OCTET = re.compile(r"^(0|[1-9][0-9]{0,2})$")
#: names no public DNS answers for: RFC 6761's localhost, mDNS's local, RFC 8375's home.arpa, and "internal"
LOCAL_SUFFIXES = (".localhost", ".local", ".home.arpa", ".internal")


def syntax_problem(uri: str) -> str | None:
    """Why ``uri`` is not an https URL the app accepts as a callback, or None."""
    if not uri.startswith("https://"):
        return "must be an https URL without a fragment"
    if not _URI_CHARS.fullmatch(uri):
        bad = next(ch for ch in uri if not _URI_CHARS.fullmatch(ch))
        return (f"must be a URL of the characters RFC 3986 allows (found U+{ord(bad):04X}); percent-encode others "
                "in the path")
    if _BAD_PERCENT.search(uri):
        return "has a % that is not followed by two hex digits"
    if "#" in uri:
        return "must be an https URL without a fragment"
    try:
        netloc = urlsplit(uri).netloc
    except ValueError:  # urllib's "Invalid IPv6 URL": brackets that do not hold an address
        return "has a host in brackets that is not an IPv6 address"
    if "@" in netloc:
        return "must not carry user information (user@host)"
    host, port = _host_and_port(netloc)
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        return "has a port that is not 1-65535"
    return host_problem(host)


def _host_and_port(netloc: str) -> tuple[str, str | None]:
    """The host and the port as written (None: no port). An IPv6 literal keeps its brackets."""
    if netloc.startswith("[") and "]" in netloc:
        end = netloc.index("]")
        host, rest = netloc[: end + 1], netloc[end + 1:]
        return host, (rest[1:] if rest.startswith(":") else rest) if rest else None
    host, sep, port = netloc.partition(":")
    return host, port if sep else None


def host_problem(host: str) -> str | None:
    if not host:
        return "must name a host"
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1] if host.endswith("]") else "")
        except ValueError:
            return "has a host in brackets that is not an IPv6 address"
        return None
    name = host[:-1] if host.endswith(".") else host  # a fully qualified name's final dot
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return ("must have a host that is a DNS name (letters, digits and -, not at either end of a label) or an IP "
                "address")
    if labels[-1].isdigit():  # read as IPv4 by browsers (WHATWG URL): it must be one, in dotted-quad form
        if len(labels) != 4 or not all(_DECIMAL_OCTET.fullmatch(x) and int(x) <= 255 for x in labels):
            return "has a numeric host that is not a dotted-quad IPv4 address"
    return None


def is_local(uri: str) -> bool:
    """The URI's host reaches only the user's own machine or network (see the module's docstring)."""
    host, _ = _host_and_port(urlsplit(uri).netloc)
    if host.startswith("["):
        return not ipaddress.IPv6Address(host[1:-1]).is_global
    name = host.lower().rstrip(".")
    if name.split(".")[-1].isdigit():
        return not ipaddress.IPv4Address(name).is_global
    return name == "localhost" or "." not in name or name.endswith(LOCAL_SUFFIXES)


def local_refusal(uris, *, first_party: bool, allow_local: bool) -> tuple[int, str] | None:
    """(index, rule) of the first URI a profile may not use, or None."""
    if first_party or allow_local:
        return None
    for i, uri in enumerate(uris):
        if is_local(uri):
            return i, ("points at the user's own machine or network (localhost, a private or loopback address, a "
                       "name no public DNS serves), which a third-party application may not use; a profile allows it "
                       "with allow_local_redirect_uris = true")
    return None
