"""``python -m opstool tenant plan|apply``: the Auth0 tenant's configuration from the repository's files.

plan   what apply would change: the API of config/auth0_api.toml (scopes, name, token lifetime) and the app's
       Management API grant (exactly the scopes the app uses); changes nothing
apply  the plan, then the same changes, after a yes (on a terminal; without one only with --yes, since removing a
       scope or a grant stops whoever relies on it); a second apply changes nothing

Settings: AUTH0_DOMAIN, API_AUDIENCE, AUTH0_CLIENT_ID (the app's own Management API client), CLIENT_PROFILES_PATH,
from the environment or local.settings.json. The admin credential only from the environment (shared/adapters/
auth0_tenant.py). Exit 0 done, 1 refused (a profile grants a scope the API does not define, or Auth0 refused),
2 usage, 3 the admin credential was refused.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from shared.settings import APP_ROOT, tool_values

from .context import ask
from .errors import EXIT_CONNECTION, EXIT_FAILED, EXIT_OK, UsageError
from .output import emit

API_FILE = APP_ROOT / "config" / "auth0_api.toml"
SYMBOL = {"create": "+", "update": "~", "none": "="}


def configure(sub, fmt) -> None:
    p = sub.add_parser("tenant", formatter_class=fmt, help="plan or apply the Auth0 tenant's configuration",
                       description=__doc__.split("\n\n", 1)[1] if "\n\n" in __doc__ else __doc__)
    p.add_argument("action", choices=("plan", "apply"))
    p.add_argument("--settings", metavar="PATH", help="local.settings.json to read (default: the repository's)")
    p.add_argument("--api-file", metavar="PATH", type=Path, default=API_FILE,
                   help="the API's definition (default: config/auth0_api.toml)")
    p.add_argument("--prune", action="store_true", help="also remove API scopes the file does not list")
    p.add_argument("--yes", action="store_true",
                   help="apply without asking (apply asks on a terminal and refuses without one)")
    p.set_defaults(fn=cmd_tenant, app_command=True)


def cmd_tenant(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from shared.adapters.auth0_tenant import Auth0Tenant, TenantAdminError, admin_token
    from shared.domain.profiles import ProfileConfigError, load_profiles
    from shared.domain.tenant import TenantConfigError, load_api_spec, plan_api, plan_management_grant, \
        undefined_scopes

    values = tool_values(args.settings)
    missing = [k for k in ("AUTH0_DOMAIN", "API_AUDIENCE", "AUTH0_CLIENT_ID") if not values.get(k)]
    if missing:
        raise UsageError(f"settings missing: {', '.join(missing)} (environment or local.settings.json)")
    try:
        spec = load_api_spec(args.api_file, values)
        profiles = load_profiles(APP_ROOT / values.get("CLIENT_PROFILES_PATH", "config/client_profiles.toml"),
                                 values)
    except (TenantConfigError, ProfileConfigError) as exc:
        raise UsageError(str(exc)) from None
    undefined = undefined_scopes(spec, profiles.values())
    if undefined:
        for scope, who in sorted(undefined.items()):
            emit(err, f"error: scope {scope} is granted by {', '.join(who)} but {args.api_file.name} does not "
                      f"define it")
        return EXIT_FAILED
    domain, ca = values["AUTH0_DOMAIN"], values.get("LOCAL_STACK_CA_BUNDLE") or None
    try:
        tenant = Auth0Tenant(domain, admin_token(domain, values, ca), ca)
        changes = [plan_api(spec, tenant.get_api(spec.identifier), prune=args.prune),
                   plan_management_grant(values["AUTH0_CLIENT_ID"], tenant.management_audience,
                                         tenant.get_management_grant(values["AUTH0_CLIENT_ID"]))]
    except TenantAdminError as exc:
        emit(err, f"error: {exc}")
        return EXIT_CONNECTION if exc.credential_refused else EXIT_FAILED
    emit(out, f"Auth0 tenant {domain}:")
    for c in changes:
        label = "API" if c.what == "api" else "Management API grant of the app's client"
        emit(out, f"  {SYMBOL[c.action]} {label} {c.target}: {c.detail}")
    todo = [c for c in changes if c.action != "none"]
    if args.action == "plan" or not todo:
        emit(out, f"Plan: {len(todo)} to change." + (" Nothing was changed." if todo else " Nothing to do."))
        return EXIT_OK
    ask(err, f"apply these {len(todo)} change(s) to the Auth0 tenant {domain}", yes=args.yes,
        how="Check them with `opstool tenant plan`")
    try:
        for c in todo:
            tenant.apply(c)
            emit(out, f"  applied: {c.what} {c.action}")
    except TenantAdminError as exc:
        emit(err, f"error: {exc}")
        return EXIT_FAILED
    emit(out, f"Applied: {len(todo)} change(s).")
    return EXIT_OK
