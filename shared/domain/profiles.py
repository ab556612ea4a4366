"""Client profiles: the rule "what application does this customer get" as checked-in configuration.

Loaded and validated once at start-up (``load_profiles``); mistakes raise one :class:`ProfileConfigError` that lists
every problem of every profile (``problems``), each naming the profile and key, so a bad deploy fails loudly before
it touches a customer, and a typo in two profiles is fixed in one go. The rules mirror Auth0's own: a
third-party application may only use authorization_code, refresh_token and client_credentials, and
client_credentials needs a confidential client (https://auth0.com/docs/get-started/applications/confidential-and-public-applications/first-party-and-third-party-applications).
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .redirect_uris import local_refusal

APP_TYPES = {"non_interactive", "regular_web", "spa", "native"}
AUTH_METHODS = {"none", "client_secret_post", "client_secret_basic"}
GRANT_TYPES = {"client_credentials", "authorization_code", "refresh_token", "implicit", "password",
               "urn:ietf:params:oauth:grant-type:device_code"}
THIRD_PARTY_GRANTS = {"authorization_code", "refresh_token", "client_credentials"}
APIM_MODES = {"per-customer", "none"}
REDIRECT_MODES = {"none", "optional", "required"}
KEYS = {"description", "app_type", "grant_types", "token_endpoint_auth_method", "first_party", "token_lifetime",
        "audience", "scopes", "apim_product", "apim_authorization_server", "redirect_uris", "max_secret_age_days",
        "plans", "allow_local_redirect_uris"}
#: the longest max_secret_age_days accepted (ten years: anything longer is a typo for "never", which is leaving it out)
MAX_SECRET_AGE_DAYS = 3650
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ProfileConfigError(ValueError):
    """``problems``: every mistake found, one line each; ``str()`` joins them."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class ClientProfile:
    name: str
    description: str
    app_type: str
    grant_types: tuple[str, ...]
    token_endpoint_auth_method: str
    first_party: bool
    token_lifetime: int
    audience: str
    scopes: tuple[str, ...]
    apim_product: str
    apim_authorization_server: str = "per-customer"
    redirect_uris: str = "none"
    #: rotate the client secret once it is this many days old (checked by the reconciliation timer); None: only
    #: on request
    max_secret_age_days: int | None = None
    #: plan name -> the grant's scopes for a customer on that plan; a plan not listed gets ``scopes``
    plans: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: a third-party profile may take redirect URIs on localhost or a private network only when this says so
    #: (shared/domain/redirect_uris.py); a first-party one always may
    allow_local_redirect_uris: bool = False

    def local_redirect_refusal(self, uris) -> tuple[int, str] | None:
        """(index, rule) of the first of ``uris`` this profile may not use as a callback, or None."""
        return local_refusal(uris, first_party=self.first_party, allow_local=self.allow_local_redirect_uris)

    def scopes_for(self, plan: str | None) -> tuple[str, ...]:
        """The grant's scopes for a customer on ``plan`` (``data.plan`` of its events)."""
        return dict(self.plans).get(plan or "", self.scopes)

    @property
    def confidential(self) -> bool:
        """A confidential client has a secret: it goes to Key Vault and to the APIM entry."""
        return self.token_endpoint_auth_method != "none"

    @property
    def apim_grant_types(self) -> tuple[str, ...]:
        """APIM authorization server grant types that follow the Auth0 ones."""
        return ("clientCredentials",) if "client_credentials" in self.grant_types else ("authorizationCode",)

    @property
    def wants_authorization_server(self) -> bool:
        return self.apim_authorization_server == "per-customer"


def _expand(value, env: Mapping[str, str], where: str):
    if isinstance(value, str):
        def sub(m):
            if m.group(1) not in env or not env[m.group(1)]:
                raise ProfileConfigError(f"{where}: setting {m.group(1)} is not set")
            return env[m.group(1)]
        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [_expand(v, env, where) for v in value]
    return value


def _validate(name: str, raw: dict, env: Mapping[str, str]) -> ClientProfile:
    """The profile, or ProfileConfigError listing every problem found in it."""
    where = f"profile {name!r}"
    problems: list[str] = []

    def check(cond: bool, msg: str) -> bool:
        if not cond:
            problems.append(f"{where}: {msg}")
        return bool(cond)

    check(bool(re.match(r"^[a-z0-9][a-z0-9-]{0,39}$", name)), "names are 1-40 lower-case letters, digits and -")
    if not check(isinstance(raw, dict), f"must be a table ([profiles.{name}])"):
        raise ProfileConfigError(problems)
    unknown = set(raw) - KEYS
    check(not unknown, f"unknown keys {sorted(unknown)}")
    missing = {"app_type", "grant_types", "token_endpoint_auth_method", "first_party", "audience", "scopes",
               "apim_product"} - set(raw)
    check(not missing, f"missing keys {sorted(missing)}")
    if missing:  # the rules below read those keys
        raise ProfileConfigError(problems)
    expanded, unexpanded = {}, set()
    for k, v in raw.items():
        try:
            expanded[k] = _expand(v, env, f"{where}.{k}")
        except ProfileConfigError as exc:
            problems.extend(exc.problems)
            expanded[k], _ = v, unexpanded.add(k)
    raw = expanded

    check(raw["app_type"] in APP_TYPES, f"app_type must be one of {sorted(APP_TYPES)}")
    grants = raw["grant_types"]
    grants_ok = check(isinstance(grants, list) and grants and all(isinstance(g, str) for g in grants)
                      and set(grants) <= GRANT_TYPES,
                      f"grant_types must be a non-empty list of {sorted(GRANT_TYPES)}")
    grants = grants if grants_ok else []
    check(raw["token_endpoint_auth_method"] in AUTH_METHODS,
          f"token_endpoint_auth_method must be one of {sorted(AUTH_METHODS)}")
    check(isinstance(raw["first_party"], bool), "first_party must be true or false")
    if raw["first_party"] is False:
        check(set(grants) <= THIRD_PARTY_GRANTS,
              f"a third-party application may only use {sorted(THIRD_PARTY_GRANTS)}")
    if "client_credentials" in grants:
        check(raw["token_endpoint_auth_method"] != "none",
              "client_credentials needs a confidential client (token_endpoint_auth_method other than none)")
    if raw["app_type"] == "spa":
        check(raw["token_endpoint_auth_method"] == "none", "a spa is a public client: token_endpoint_auth_method none")
    lifetime = raw.get("token_lifetime", 3600)
    check(isinstance(lifetime, int) and 60 <= lifetime <= 2592000, "token_lifetime must be 60-2592000 seconds")
    if "audience" not in unexpanded:  # an unset ${SETTING} is reported once, above
        check(isinstance(raw["audience"], str) and raw["audience"].startswith(("https://", "http://")),
              "audience must be the API identifier URL")
    scopes = raw["scopes"]
    check(isinstance(scopes, list) and all(isinstance(s, str) and s and " " not in s for s in scopes),
          "scopes must be a list of scope names")
    check(isinstance(raw["apim_product"], str) and bool(re.match(r"^[^*#&+:<>?/]{1,256}$", raw["apim_product"])),
          "apim_product must be an APIM product id")
    mode = raw.get("apim_authorization_server", "per-customer")
    check(mode in APIM_MODES, f"apim_authorization_server must be one of {sorted(APIM_MODES)}")
    redirects = raw.get("redirect_uris", "none")
    check(redirects in REDIRECT_MODES, f"redirect_uris must be one of {sorted(REDIRECT_MODES)}")
    if redirects != "none":
        check("authorization_code" in grants, "redirect_uris needs the authorization_code grant")
    max_age = raw.get("max_secret_age_days")
    if max_age is not None:
        check(isinstance(max_age, int) and not isinstance(max_age, bool) and 1 <= max_age <= MAX_SECRET_AGE_DAYS,
              f"max_secret_age_days must be a whole number of days, 1-{MAX_SECRET_AGE_DAYS}")
        check(raw["token_endpoint_auth_method"] != "none",
              "max_secret_age_days needs a confidential client: a public client (token_endpoint_auth_method none) "
              "has no secret to rotate")
    allow_local = raw.get("allow_local_redirect_uris", False)
    check(isinstance(allow_local, bool), "allow_local_redirect_uris must be true or false")
    plans = raw.get("plans", {})
    check(isinstance(plans, dict) and all(
        isinstance(p, str) and p and isinstance(v, list) and all(isinstance(s, str) and s and " " not in s for s in v)
        for p, v in plans.items()), "plans must map plan names to lists of scope names")
    if problems:
        raise ProfileConfigError(problems)
    return ClientProfile(name=name, description=str(raw.get("description", "")), app_type=raw["app_type"],
                         grant_types=tuple(grants), token_endpoint_auth_method=raw["token_endpoint_auth_method"],
                         first_party=raw["first_party"], token_lifetime=lifetime, audience=raw["audience"],
                         scopes=tuple(scopes), apim_product=raw["apim_product"], apim_authorization_server=mode,
                         redirect_uris=redirects, max_secret_age_days=max_age,
                         plans=tuple((p, tuple(v)) for p, v in sorted(plans.items())),
                         allow_local_redirect_uris=allow_local)


def parse_profiles(text: str, env: Mapping[str, str]) -> dict[str, ClientProfile]:
    """``env``: the app settings that ``${NAME}`` takes values from."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileConfigError(f"client profiles file is not valid TOML: {exc}") from None
    profiles = doc.get("profiles")
    if not isinstance(profiles, dict) or not profiles:
        raise ProfileConfigError("client profiles file needs at least one [profiles.<name>] table")
    unknown = set(doc) - {"profiles"}
    if unknown:
        raise ProfileConfigError(f"client profiles file: unknown top-level keys {sorted(unknown)}")
    valid, problems = {}, []
    for name, raw in profiles.items():  # every profile is checked: one start-up names every mistake
        try:
            valid[name] = _validate(name, raw, env)
        except ProfileConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ProfileConfigError(problems)
    return valid


def load_profiles(path: str | Path, env: Mapping[str, str]) -> dict[str, ClientProfile]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileConfigError(f"cannot read client profiles file {path}: {exc.strerror}") from None
    return parse_profiles(text, env)
