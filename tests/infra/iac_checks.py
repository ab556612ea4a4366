"""Checks over the parsed Bicep templates of infra/: the role set, the app settings, the Service Bus entities.

The templates are parsed by pycep-parser, which lives in .venv-iac with checkov (their pinned dependencies clash
with the app's packages), so parsing runs as a subprocess (bicep_to_json.py) and this module only reads its JSON.

Every checker returns a list of findings (strings, empty when all is well), so that the tests can show that a
mutated copy of a template (an Owner assignment, an unscoped one, a dropped app setting) is reported.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
IAC_VENV = ROOT / ".venv-iac"
IAC_PYTHON = IAC_VENV / "bin" / "python"
CHECKOV = IAC_VENV / "bin" / "checkov"
BICEP_TO_JSON = Path(__file__).resolve().parent / "bicep_to_json.py"
ROLE_ASSIGNMENT = "Microsoft.Authorization/roleAssignments"
ROLE_DEFINITION = "Microsoft.Authorization/roleDefinitions"


def require_iac_venv() -> None:
    """Skip (by hand) or fail (in CI, where `make test` must have created it) when .venv-iac is missing."""
    if IAC_PYTHON.exists() and CHECKOV.exists():
        return
    message = (f"{IAC_VENV.name} is missing: `make setup-iac` creates it (pycep-parser and checkov from "
               f"requirements-iac.txt); `make test` does so itself")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


# -- parsing --------------------------------------------------------------------------------------------------------

def bicep_files(infra: Path = INFRA) -> list[Path]:
    return sorted(infra.rglob("*.bicep"))


def parse_bicep(paths: list[Path]) -> dict[Path, dict]:
    """{path: pycep's parsed template, or {"error": message}} for every file, in one subprocess."""
    require_iac_venv()
    result = subprocess.run([str(IAC_PYTHON), str(BICEP_TO_JSON), *map(str, paths)], capture_output=True,
                            text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"bicep_to_json.py failed ({result.returncode}): {result.stderr[-2000:]}")
    return {Path(k): v for k, v in json.loads(result.stdout).items()}


def run_checkov(directory: Path = INFRA) -> dict:
    """checkov's JSON report for the Bicep files under `directory` (Azure policies; nothing downloaded)."""
    require_iac_venv()
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE")  # no download of the guideline mapping
    result = subprocess.run([str(CHECKOV), "--directory", str(directory), "--framework", "bicep", "--output", "json",
                             "--skip-download", "--compact"], capture_output=True, text=True, timeout=600,
                            env=env, cwd=str(ROOT), check=False)
    # 0: all passed, 1: something failed; anything else is checkov itself breaking.
    if result.returncode not in (0, 1):
        raise RuntimeError(f"checkov exited {result.returncode}: {result.stderr[-2000:]}")
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    bicep = [r for r in reports if r.get("check_type") == "bicep"]
    if not bicep:
        raise RuntimeError(f"checkov reported no Bicep results: {result.stdout[:1000]}")
    return bicep[0]


def copy_infra(tmp_path: Path) -> Path:
    """A copy of infra/ to mutate."""
    target = tmp_path / "infra"
    shutil.copytree(INFRA, target)
    return target


# -- reading parsed expressions -------------------------------------------------------------------------------------

def unwrap(config: dict) -> dict:
    """A conditional (`= if (...) {...}`) or looped resource keeps its body under config["config"]."""
    if isinstance(config, dict) and "config" in config and ("condition" in config or "loop_type" in config):
        return config["config"]
    return config


def accessor_path(expr: Any) -> list[str] | None:
    """`a.b.c` (pycep nests it to the right) as ["a", "b", "c"]; None for anything else."""
    if isinstance(expr, str):
        return [expr]
    if isinstance(expr, dict) and expr.get("operator", {}).get("type") == "property_accessor":
        operands = expr["operator"]["operands"]
        head, tail = operands["operand_1"], accessor_path(operands["operand_2"])
        if isinstance(head, str) and tail is not None:
            return [head, *tail]
    return None


@dataclass
class Template:
    path: Path
    tree: dict

    @property
    def params(self) -> dict:
        return self.tree.get("parameters") or {}

    @property
    def variables(self) -> dict:
        return self.tree.get("variables") or {}

    @property
    def resources(self) -> dict:
        return self.tree.get("resources") or {}

    @property
    def modules(self) -> dict:
        return self.tree.get("modules") or {}

    def resource(self, symbol: str) -> dict | None:
        return self.resources.get(symbol)

    def resources_of_type(self, type_: str) -> dict[str, dict]:
        return {k: v for k, v in self.resources.items() if v.get("type", "").lower() == type_.lower()}

    def resolve(self, expr: Any, overrides: dict | None = None) -> Any:
        """The value of a literal, a parameter (its default, or `overrides`), a variable, `var.key`, or a
        conditional over those; anything else comes back as it is (unresolved)."""
        overrides = overrides or {}
        if isinstance(expr, str):
            if expr in overrides:
                return overrides[expr]
            if expr in self.params:
                return self.resolve(self.params[expr].get("default"), overrides)
            if expr in self.variables:
                return self.resolve(self.variables[expr].get("value"), overrides)
            return expr
        if isinstance(expr, dict) and "operator" in expr:
            op = expr["operator"]
            if op.get("type") == "conditional":
                operands = op["operands"]
                condition = self.resolve(operands["condition"], overrides)
                if isinstance(condition, bool):
                    return self.resolve(operands["true_value" if condition else "false_value"], overrides)
                return expr
            path = accessor_path(expr)
            if path and len(path) >= 2:
                value = self.resolve(path[0], overrides)
                for key in path[1:]:
                    if not isinstance(value, dict) or key not in value:
                        return expr
                    value = value[key]
                return self.resolve(value, overrides)
        return expr


def load_templates(parsed: dict[Path, dict]) -> dict[Path, Template]:
    return {path: Template(path, tree) for path, tree in parsed.items()}


def named(templates: dict[Path, Template], file_name: str) -> Template:
    """The template whose file is called `file_name` (main.bicep, servicebus.bicep, ...)."""
    return next(t for p, t in templates.items() if p.name == file_name)


# -- roles ----------------------------------------------------------------------------------------------------------

ROLES = {
    # built-in roles the templates grant (id -> name)
    "4f6d3b9b-027b-4f4a-9142-0e5a2a2247e0": "Azure Service Bus Data Receiver",
    "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39": "Azure Service Bus Data Sender",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "76199698-9eea-4c19-bc75-cec21354c6b6": "Storage Table Data Reader",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}

#: roles that must never appear, whatever the scope: each grants far more than the app or the ops tool uses
BROAD_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": "Role Based Access Control Administrator",
    "312a565d-c81f-4fd8-895a-4e21e48d571c": "API Management Service Contributor",
    "090c5cfd-751d-490a-894a-3ce6f1109419": "Azure Service Bus Data Owner",
    "00482a5a-887f-4fb3-b363-3b7fe8e74483": "Key Vault Administrator",
    "17d1049b-9a84-46fb-8f53-869881c3d3ab": "Storage Account Contributor",
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": "Reader",
}

#: the custom role on API Management, by the name the checker gives it
CUSTOM_APIM_ROLE = "custom: customer provisioning on API Management"

#: the only actions the custom APIM role may hold: what shared/adapters/apim_gateway.py calls
APIM_ACTIONS = frozenset({
    "Microsoft.ApiManagement/service/read",
    "Microsoft.ApiManagement/service/authorizationServers/read",
    "Microsoft.ApiManagement/service/authorizationServers/write",
    "Microsoft.ApiManagement/service/authorizationServers/delete",
    "Microsoft.ApiManagement/service/subscriptions/read",
    "Microsoft.ApiManagement/service/subscriptions/write",
    "Microsoft.ApiManagement/service/subscriptions/delete",
    "Microsoft.ApiManagement/service/products/read",
})

_QUEUE = "Microsoft.ServiceBus/namespaces/queues"
_TOPIC = "Microsoft.ServiceBus/namespaces/topics"
_SUBSCRIPTION = "Microsoft.ServiceBus/namespaces/topics/subscriptions"
_CONTAINER = "Microsoft.Storage/storageAccounts/blobServices/containers"
_TABLE = "Microsoft.Storage/storageAccounts/tableServices/tables"
_VAULT = "Microsoft.KeyVault/vaults"
_APIM = "Microsoft.ApiManagement/service"
_APPINSIGHTS = "Microsoft.Insights/components"

#: (role, principal) -> the narrowest resource types it may be scoped to. Anything not listed is refused: the README's
#: roles table and this mapping say the same, and a test checks the README names every role here.
ALLOWED_GRANTS: dict[tuple[str, str], frozenset[str]] = {
    ("Azure Service Bus Data Receiver", "app"): frozenset({_QUEUE}),
    ("Azure Service Bus Data Sender", "app"): frozenset({_QUEUE, _TOPIC}),
    ("Key Vault Secrets Officer", "app"): frozenset({_VAULT}),
    ("Key Vault Secrets User", "app"): frozenset({_VAULT}),
    ("Storage Table Data Contributor", "app"): frozenset({_TABLE}),
    ("Storage Blob Data Owner", "app"): frozenset({_CONTAINER}),
    ("Storage Blob Data Contributor", "app"): frozenset({_CONTAINER}),
    ("Monitoring Metrics Publisher", "app"): frozenset({_APPINSIGHTS}),
    (CUSTOM_APIM_ROLE, "app"): frozenset({_APIM}),
    ("Azure Service Bus Data Receiver", "ops"): frozenset({_QUEUE}),
    ("Azure Service Bus Data Sender", "ops"): frozenset({_QUEUE}),
    ("Storage Table Data Reader", "ops"): frozenset({_TABLE}),
    ("Azure Service Bus Data Sender", "crm"): frozenset({_QUEUE}),
    ("Azure Service Bus Data Receiver", "crm"): frozenset({_SUBSCRIPTION}),
}

#: roles that let their holder write secrets: never on the vault that holds the app's own credentials
SECRET_WRITING_ROLES = frozenset({"Key Vault Secrets Officer", "Key Vault Administrator", "Key Vault Contributor"})

#: which template parameter names which principal
PRINCIPALS = {"appPrincipalId": "app", "opsPrincipalId": "ops", "crmPrincipalId": "crm"}

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class Grant:
    file: str
    symbol: str
    role: str
    principal: str
    scope_type: str


def _role_of(tpl: Template, expr: Any) -> tuple[str | None, str | None]:
    """(role name, problem) of a roleDefinitionId expression."""
    if isinstance(expr, dict) and "function" in expr:
        fn = expr["function"]
        params = fn.get("parameters") or {}
        if fn.get("type") in ("subscription_resource_id", "tenant_resource_id", "resource_id") and \
                str(params.get("resource_type", "")).lower() == ROLE_DEFINITION.lower():
            expr = tpl.resolve(params.get("resource_name_1"))
    path = accessor_path(expr)
    if path and len(path) == 2 and path[1] == "id":
        target = tpl.resource(path[0])
        if target and target.get("type", "").lower() == ROLE_DEFINITION.lower():
            return CUSTOM_APIM_ROLE, None
    value = tpl.resolve(expr)
    if isinstance(value, str):
        match = _GUID.search(value)
        if match:
            guid = match.group(0).lower()
            if guid in BROAD_ROLES:
                return BROAD_ROLES[guid], f"broad role {BROAD_ROLES[guid]}"
            if guid in ROLES:
                return ROLES[guid], None
            return guid, f"role {guid} is not one of the documented roles"
    return None, f"cannot tell which role {json.dumps(expr)[:200]} is"


def _writes_own_secrets(tpl: Template) -> bool:
    """The template writes secrets of its own into its vault (the Auth0 credentials, through keyvault-secret.bicep)."""
    return bool(tpl.resources_of_type("Microsoft.KeyVault/vaults/secrets")) or any(
        str((m.get("detail") or {}).get("path", "")).endswith("keyvault-secret.bicep") for m in tpl.modules.values())


def role_findings(templates: dict[Path, Template]) -> tuple[list[Grant], list[str]]:
    """Every role assignment as a Grant, and every problem: a broad role, a role or principal outside the documented
    set, no scope (the whole resource group), or a scope wider than the narrowest resource for that role."""
    grants: list[Grant] = []
    findings: list[str] = []
    for path, tpl in templates.items():
        if "error" in tpl.tree:
            findings.append(f"{path.name}: does not parse: {tpl.tree['error']}")
            continue
        for symbol, res in tpl.resources_of_type(ROLE_ASSIGNMENT).items():
            where = f"{path.name}:{symbol}"
            config = unwrap(res.get("config") or {})
            props = config.get("properties") or {}
            role, problem = _role_of(tpl, props.get("roleDefinitionId"))
            if problem:
                findings.append(f"{where}: {problem}")
            principal_expr = props.get("principalId")
            principal = PRINCIPALS.get(principal_expr) if isinstance(principal_expr, str) else None
            if principal is None:
                findings.append(f"{where}: principal {json.dumps(principal_expr)[:120]} is not the app's "
                                f"identity, the ops principal or the CRM's")
            scope = config.get("scope")
            if scope is None:
                findings.append(f"{where}: no scope, so it applies to the whole resource group of the deployment")
                continue
            target = tpl.resource(scope) if isinstance(scope, str) else None
            if target is None:
                findings.append(f"{where}: scope {json.dumps(scope)[:120]} is not a resource of this template")
                continue
            scope_type = target.get("type", "")
            if role is None or principal is None:
                continue
            grants.append(Grant(path.name, symbol, role, principal, scope_type))
            allowed = ALLOWED_GRANTS.get((role, principal))
            if allowed is None:
                findings.append(f"{where}: {role} for the {principal} principal is not in the documented role set")
            elif scope_type not in allowed:
                findings.append(f"{where}: {role} is scoped to a {scope_type}, wider than the narrowest resource "
                                f"({' or '.join(sorted(allowed))})")
            if scope_type == _VAULT and role in SECRET_WRITING_ROLES and _writes_own_secrets(tpl):
                findings.append(f"{where}: {role} on the vault of the app's own credentials (the deployment "
                                f"writes secrets there): the {principal} could overwrite them; grant Key Vault "
                                f"Secrets User there, and write roles only on the customers' vault")
        for symbol, res in tpl.resources_of_type(ROLE_DEFINITION).items():
            findings.extend(f"{path.name}:{symbol}: {p}" for p in _custom_role_problems(tpl, res))
    return grants, findings


def _custom_role_problems(tpl: Template, res: dict) -> list[str]:
    props = unwrap(res.get("config") or {}).get("properties") or {}
    problems = []
    for permission in props.get("permissions") or []:
        actions = tpl.resolve(permission.get("actions"))
        if not isinstance(actions, list):
            problems.append("cannot read its actions")
            continue
        for action in actions:
            if not isinstance(action, str) or "*" in action:
                problems.append(f"wildcard or unreadable action {action!r}")
            elif action not in APIM_ACTIONS:
                problems.append(f"action {action} is not one the app calls")
        for key in ("dataActions",):
            if tpl.resolve(permission.get(key)) not in (None, []):
                problems.append(f"{key} must be empty")
    for scope in props.get("assignableScopes") or []:
        path = accessor_path(scope)
        fn = scope.get("function", {}).get("type") if isinstance(scope, dict) else None
        if fn in ("subscription", "tenant", "management_group") or scope == "/" or \
                (path and path[0] in ("subscription", "tenant")):
            problems.append(f"assignable scope {json.dumps(scope)[:100]} is wider than a resource group")
    return problems


# -- app settings ---------------------------------------------------------------------------------------------------

SAMPLE_SETTINGS = ROOT / "local.settings.sample.json"


def app_setting_names() -> frozenset[str]:
    """Every setting a deployment gives the app: the app's own settings object says which."""
    from shared.settings import app_setting_names as names

    return names()


def sample_setting_names() -> frozenset[str]:
    return frozenset(json.loads(SAMPLE_SETTINGS.read_text(encoding="utf-8"))["Values"])


#: set by the template for the Functions host and the platform, not read by the app
PLATFORM_SETTINGS = {
    "AzureWebJobsStorage__accountName": "the host's storage, identity-based",
    "AzureWebJobsStorage__credential": "the host's storage, identity-based",
    "AzureWebJobsStorage__clientId": "the host's storage: which (user-assigned) identity",
    "ServiceBusConnection__credential": "the trigger's connection uses a managed identity",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "telemetry with Microsoft Entra ID (local auth is off); read by the "
                                                 "Azure Monitor exporter",
    "PYTHON_ENABLE_OPENTELEMETRY": "read by the Python worker: it hands each invocation's trace context to the app",
    "PYTHON_THREADPOOL_THREAD_COUNT": "read by the Python worker, not the app: its thread pool, sized to host.json's "
                                      "maxConcurrentCalls",
}

#: settings the app knows but the template deliberately leaves unset, with the reason
NOT_IN_AZURE = {
    "LOCAL_STACK_CA_BUNDLE": "local stack only",
    "LEDGER_CONNECTION": "a connection string carries the account key; the template sets LEDGER_TABLE_ENDPOINT",
    "ServiceBusConnection": "a connection string carries a key; the template sets the __fullyQualifiedNamespace form",
    "AzureWebJobsStorage": "a connection string carries the account key; the template sets the __accountName form",
    "FUNCTIONS_WORKER_RUNTIME": "Flex Consumption takes the runtime from functionAppConfig and refuses this setting",
    "AzureWebJobsFeatureFlags": "worker indexing (the Python v2 model) is on by default in Azure",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "only with TELEMETRY_EXPORTER=otlp; the template sends telemetry to Application "
                                   "Insights (azure-monitor)",
}

#: set by the template ahead of the app code that reads it
AHEAD_OF_APP: dict[str, str] = {}

#: settings whose value is a secret: only a Key Vault reference may stand there
SECRET_SETTINGS = frozenset({"AUTH0_CLIENT_ID", "AUTH0_CLIENT_SECRET"})


def template_app_settings(main: Template) -> list[dict]:
    settings = main.variables.get("appSettings", {}).get("value")
    if not isinstance(settings, list):
        raise AssertionError(f"{main.path.name}: no `var appSettings = [...]` list")
    return settings


def settings_findings(main: Template, templates: dict[Path, Template], app_names: frozenset[str],
                      sample_names: frozenset[str]) -> list[str]:
    """The template's app settings against the app's: none missing, none unknown, no duplicate, every name of
    local.settings.sample.json accounted for, secrets only as Key Vault references, the list passed to the app."""
    findings = []
    entries = template_app_settings(main)
    names = [e.get("name") for e in entries]
    template_names = set(names)
    for name in sorted({n for n in names if names.count(n) > 1}):
        findings.append(f"{name}: set twice")
    for name in sorted(app_names - template_names - NOT_IN_AZURE.keys()):
        findings.append(f"{name}: the app reads it but the template does not set it")
    for name in sorted(template_names - app_names - PLATFORM_SETTINGS.keys() - AHEAD_OF_APP.keys()):
        findings.append(f"{name}: the template sets it but the app does not read it")
    for name in sorted(sample_names - template_names - NOT_IN_AZURE.keys()):
        findings.append(f"{name}: in local.settings.sample.json but neither in the template nor explained")
    for entry in entries:
        if entry.get("name") in SECRET_SETTINGS and not _is_key_vault_reference(main, templates, entry.get("value")):
            findings.append(f"{entry.get('name')}: a secret, but its value is not a Key Vault reference")
        value = main.resolve(entry.get("value"))
        if isinstance(value, str) and re.search(r"(AccountKey|SharedAccessKey)=", value):
            findings.append(f"{entry.get('name')}: holds a key")
    passed = [m for m in main.modules.values()
              if (m.get("config") or {}).get("params", {}).get("appSettings") == "appSettings"]
    if not passed:
        findings.append("appSettings: not passed to the Function App module")
    for path, tpl in templates.items():
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if re.search(r"\blist(Keys|ConnectionStrings|Secrets)\(", text):
            findings.append(f"{path.name}: reads keys or connection strings (list*()); use identity-based access")
    return findings


def _is_key_vault_reference(main: Template, templates: dict[Path, Template], expr: Any) -> bool:
    value = main.resolve(expr)
    if isinstance(value, str) and value.startswith("@Microsoft.KeyVault("):
        return True
    path = accessor_path(expr)
    if not path or len(path) != 3 or path[1] != "outputs" or path[0] not in main.modules:
        return False
    module_file = (main.path.parent / main.modules[path[0]]["detail"]["path"]).resolve()
    module = next((t for p, t in templates.items() if p.resolve() == module_file), None)
    output = module.tree.get("outputs", {}).get(path[2], {}) if module else {}
    return str(output.get("value", "")).startswith("@Microsoft.KeyVault(SecretUri=")


# -- Service Bus entities against the local stack's --------------------------------------------------------------

LOCAL_SERVICEBUS_CONFIG = ROOT / "emulators" / "servicebus" / "config.json"

#: Config.json property -> the Bicep property of a queue (RequiresSession is compared separately)
QUEUE_PROPERTIES = {
    "MaxDeliveryCount": "maxDeliveryCount",
    "LockDuration": "lockDuration",
    "RequiresDuplicateDetection": "requiresDuplicateDetection",
    "DuplicateDetectionHistoryTimeWindow": "duplicateDetectionHistoryTimeWindow",
    "DefaultMessageTimeToLive": "defaultMessageTimeToLive",
    "DeadLetteringOnMessageExpiration": "deadLetteringOnMessageExpiration",
    "RequiresSession": "requiresSession",
}
TOPIC_PROPERTIES = {
    "DefaultMessageTimeToLive": "defaultMessageTimeToLive",
    "RequiresDuplicateDetection": "requiresDuplicateDetection",
    "DuplicateDetectionHistoryTimeWindow": "duplicateDetectionHistoryTimeWindow",
}
SUBSCRIPTION_PROPERTIES = {
    "MaxDeliveryCount": "maxDeliveryCount",
    "LockDuration": "lockDuration",
    "DefaultMessageTimeToLive": "defaultMessageTimeToLive",
    "DeadLetteringOnMessageExpiration": "deadLetteringOnMessageExpiration",
    "RequiresSession": "requiresSession",
}


def local_namespace() -> dict:
    return json.loads(LOCAL_SERVICEBUS_CONFIG.read_text(encoding="utf-8"))["UserConfig"]["Namespaces"][0]


def _single(tpl: Template, type_: str) -> tuple[str, dict]:
    found = tpl.resources_of_type(type_)
    if len(found) != 1:
        raise AssertionError(f"{tpl.path.name}: expected one {type_}, found {sorted(found)}")
    symbol, res = next(iter(found.items()))
    return symbol, unwrap(res["config"])


def _compare(tpl: Template, what: str, config: dict, local: dict, mapping: dict, overrides: dict) -> list[str]:
    findings = []
    props = config.get("properties") or {}
    for local_name, bicep_name in mapping.items():
        if local_name not in local:
            continue
        value = tpl.resolve(props.get(bicep_name), overrides)
        if value != local[local_name]:
            findings.append(f"{what}: {bicep_name} is {value!r} in {tpl.path.name}, {local[local_name]!r} in "
                            f"{LOCAL_SERVICEBUS_CONFIG.name} ({local_name})")
    return findings


def servicebus_findings(sb: Template, sessions: bool) -> list[str]:
    """The queue (with sessionsEnabled = `sessions`), the topic and the CRM subscription of servicebus.bicep, with
    its parameter defaults, against the local stack's Config.json: same name, same properties."""
    namespace = local_namespace()
    overrides = {"sessionsEnabled": sessions}
    findings = []
    _, queue = _single(sb, "Microsoft.ServiceBus/namespaces/queues")
    name = sb.resolve(queue.get("name"), overrides)
    local_queue = next((q for q in namespace["Queues"] if q["Name"] == name), None)
    if local_queue is None:
        findings.append(f"queue {name!r}: not in {LOCAL_SERVICEBUS_CONFIG.name} "
                        f"({[q['Name'] for q in namespace['Queues']]})")
    else:
        findings += _compare(sb, f"queue {name}", queue, local_queue["Properties"], QUEUE_PROPERTIES, overrides)
    _, topic = _single(sb, "Microsoft.ServiceBus/namespaces/topics")
    topic_name = sb.resolve(topic.get("name"))
    local_topic = next((t for t in namespace.get("Topics", []) if t["Name"] == topic_name), None)
    if local_topic is None:
        findings.append(f"topic {topic_name!r}: not in {LOCAL_SERVICEBUS_CONFIG.name}")
        return findings
    findings += _compare(sb, f"topic {topic_name}", topic, local_topic["Properties"], TOPIC_PROPERTIES, overrides)
    _, subscription = _single(sb, "Microsoft.ServiceBus/namespaces/topics/subscriptions")
    for local_sub in local_topic.get("Subscriptions", []):
        # The local stack's subscription is named for its use there (audit); the properties must match.
        findings += _compare(sb, f"subscription {sb.resolve(subscription.get('name'))}", subscription,
                             local_sub["Properties"], SUBSCRIPTION_PROPERTIES, overrides)
    return findings


def _main() -> int:  # pragma: no cover - `python tests/infra/iac_checks.py` by hand: the grants and findings
    templates = load_templates(parse_bicep(bicep_files()))
    grants, findings = role_findings(templates)
    for grant in grants:
        print(grant)
    print("\n".join(findings) or "no role findings")
    return 1 if findings else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
