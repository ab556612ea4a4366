"""The Auth0 tenant configuration as code: what the tenant must hold for the app and its customers, and the plan
that takes a tenant there.

Two things, both idempotent to apply:

- **the API** (resource server) of ``config/auth0_api.toml``: its identifier (``API_AUDIENCE``), name, token lifetime
  and scopes. Every scope a client profile or plan grants must be one the API defines (:func:`undefined_scopes`);
  scopes the tenant has beyond the file are kept unless pruning is asked for, since another application may use
  them;
- **the app's Management API grant**: the client grant of the app's own machine-to-machine application
  (``AUTH0_CLIENT_ID``) to the Management API, with exactly :data:`APP_MANAGEMENT_SCOPES`, the scopes of the calls
  ``shared/adapters/auth0_identity.py`` makes: no more (a leaked secret reaches no further), no fewer (a missing one
  fails a customer's event with 403).
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from .profiles import ClientProfile

#: The Management API scopes of the app's calls: clients create/get/list/update/delete, rotate-secret (client keys),
#: client grants create/list/update/delete. read:client_keys returns a confidential client's secret (a rotation's
#: recovery reads it back).
APP_MANAGEMENT_SCOPES = ("read:clients", "create:clients", "update:clients", "delete:clients", "read:client_keys",
                         "update:client_keys", "read:client_grants", "create:client_grants", "update:client_grants",
                         "delete:client_grants")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TenantConfigError(ValueError):
    pass


@dataclass(frozen=True)
class ApiSpec:
    identifier: str
    name: str
    token_lifetime: int
    scopes: tuple[tuple[str, str], ...]  # (value, description), in the file's order

    @property
    def scope_values(self) -> tuple[str, ...]:
        return tuple(v for v, _ in self.scopes)


def load_api_spec(path: str | Path, env: Mapping[str, str]) -> ApiSpec:
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TenantConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TenantConfigError(f"{path.name} is not valid TOML: {exc}") from None
    unknown = set(doc) - {"identifier", "name", "token_lifetime", "scopes"}
    if unknown:
        raise TenantConfigError(f"{path.name}: unknown keys {sorted(unknown)}")

    def expand(value: str) -> str:
        def sub(m: re.Match) -> str:
            if not env.get(m.group(1)):
                raise TenantConfigError(f"{path.name}: setting {m.group(1)} is not set")
            return env[m.group(1)]
        return _VAR.sub(sub, value)

    identifier = expand(str(doc.get("identifier", "")))
    if not identifier.startswith(("https://", "http://")):
        raise TenantConfigError(f"{path.name}: identifier must be the API's URL, not {identifier!r}")
    lifetime = doc.get("token_lifetime", 86400)
    if not isinstance(lifetime, int) or not 1 <= lifetime <= 2592000:
        raise TenantConfigError(f"{path.name}: token_lifetime must be 1-2592000 seconds")
    scopes = doc.get("scopes") or {}
    if not isinstance(scopes, dict) or not all(isinstance(k, str) and k and " " not in k and isinstance(v, str)
                                               for k, v in scopes.items()):
        raise TenantConfigError(f"{path.name}: [scopes] maps scope names (no spaces) to descriptions")
    return ApiSpec(identifier, str(doc.get("name") or identifier), lifetime, tuple(scopes.items()))


def granted_scopes(profiles: Iterable[ClientProfile], audience: str) -> dict[str, list[str]]:
    """scope -> the profiles (and ``profile/plan``) that grant it, for the profiles of ``audience``."""
    out: dict[str, list[str]] = {}
    for p in profiles:
        if p.audience != audience:
            continue
        for scope in p.scopes:
            out.setdefault(scope, []).append(p.name)
        for plan, scopes in p.plans:
            for scope in scopes:
                out.setdefault(scope, []).append(f"{p.name}/{plan}")
    return out


def undefined_scopes(api: ApiSpec, profiles: Iterable[ClientProfile]) -> dict[str, list[str]]:
    """The scopes profiles grant that the API does not define (scope -> who grants it): must be empty."""
    defined = set(api.scope_values)
    return {s: who for s, who in granted_scopes(profiles, api.identifier).items() if s not in defined}


@dataclass(frozen=True)
class CurrentApi:
    id: str
    name: str
    token_lifetime: int | None
    scopes: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class CurrentGrant:
    id: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class Change:
    action: str     # create | update | none
    what: str       # api | management_grant
    target: str
    detail: str
    payload: dict = field(default_factory=dict, compare=False)


def plan_api(spec: ApiSpec, current: CurrentApi | None, *, prune: bool = False) -> Change:
    wanted = [{"value": v, "description": d} for v, d in spec.scopes]
    if current is None:
        return Change("create", "api", spec.identifier,
                      f"API {spec.name!r} with scopes {', '.join(spec.scope_values) or '-'}",
                      {"identifier": spec.identifier, "name": spec.name, "token_lifetime": spec.token_lifetime,
                       "scopes": wanted})
    have = dict(current.scopes)
    extra = [v for v in have if v not in dict(spec.scopes)]
    merged = wanted + ([] if prune else [{"value": v, "description": have[v]} for v in extra])
    notes = []
    missing = [v for v in spec.scope_values if v not in have]
    if missing:
        notes.append(f"add scopes {', '.join(missing)}")
    changed = [v for v, d in spec.scopes if v in have and have[v] != d]
    if changed:
        notes.append(f"describe {', '.join(changed)}")
    if extra:
        notes.append(f"remove scopes {', '.join(extra)}" if prune else f"keep scopes {', '.join(extra)} "
                                                                          "(not in the file; --prune removes them)")
    payload = {}
    if missing or changed or (prune and extra):
        payload["scopes"] = merged
    if current.name != spec.name:
        payload["name"] = spec.name
        notes.append(f"rename to {spec.name!r}")
    if current.token_lifetime != spec.token_lifetime:
        payload["token_lifetime"] = spec.token_lifetime
        notes.append(f"token lifetime {current.token_lifetime} -> {spec.token_lifetime} s")
    if not payload:
        return Change("none", "api", spec.identifier, "; ".join(["matches"] + notes[-1:] if extra else ["matches"]))
    return Change("update", "api", spec.identifier, "; ".join(notes), {"id": current.id, **payload})


def plan_management_grant(client_id: str, audience: str, current: CurrentGrant | None) -> Change:
    target = f"{client_id} -> {audience}"
    wanted = list(APP_MANAGEMENT_SCOPES)
    if current is None:
        return Change("create", "management_grant", target, f"grant with {' '.join(wanted)}",
                      {"client_id": client_id, "audience": audience, "scope": wanted})
    extra = [s for s in current.scopes if s not in wanted]
    missing = [s for s in wanted if s not in current.scopes]
    if not extra and not missing:
        return Change("none", "management_grant", target, "exactly the scopes the app uses")
    notes = ([f"add {' '.join(missing)}"] if missing else []) + ([f"remove {' '.join(extra)}"] if extra else [])
    return Change("update", "management_grant", target, "; ".join(notes), {"id": current.id, "scope": wanted})
