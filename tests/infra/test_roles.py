"""Least privilege, enforced: the exact role set of README.md's table, each assignment on the narrowest resource,
no broad role anywhere, and a custom API Management role with only the actions the app calls.

The mutation tests inject what must never land (an Owner assignment, one without a scope, one on a wider resource,
a wildcard action) into a copy of infra/ and show the checker reports it.
"""
from __future__ import annotations

import re

import pytest

import iac_checks
from iac_checks import CUSTOM_APIM_ROLE

Q = "Microsoft.ServiceBus/namespaces/queues"
T = "Microsoft.ServiceBus/namespaces/topics"
C = "Microsoft.Storage/storageAccounts/blobServices/containers"
TABLE = "Microsoft.Storage/storageAccounts/tableServices/tables"

#: (role, principal, scope type, how many): the README's roles table
EXPECTED = {
    ("Azure Service Bus Data Receiver", "app", Q): 1,
    ("Azure Service Bus Data Sender", "app", Q): 1,
    ("Azure Service Bus Data Sender", "app", T): 1,
    ("Key Vault Secrets Officer", "app", "Microsoft.KeyVault/vaults"): 1,
    ("Key Vault Secrets User", "app", "Microsoft.KeyVault/vaults"): 1,
    ("Storage Table Data Contributor", "app", TABLE): 1,
    ("Storage Blob Data Owner", "app", C): 2,
    ("Storage Blob Data Contributor", "app", C): 1,
    ("Monitoring Metrics Publisher", "app", "Microsoft.Insights/components"): 1,
    (CUSTOM_APIM_ROLE, "app", "Microsoft.ApiManagement/service"): 1,
    ("Azure Service Bus Data Receiver", "ops", Q): 1,
    ("Azure Service Bus Data Sender", "ops", Q): 1,
    ("Storage Table Data Reader", "ops", TABLE): 1,
    ("Azure Service Bus Data Sender", "crm", Q): 1,
    ("Azure Service Bus Data Receiver", "crm", "Microsoft.ServiceBus/namespaces/topics/subscriptions"): 1,
}


def test_no_role_finding(templates):
    _, findings = iac_checks.role_findings(templates)
    assert not findings


def test_the_role_set_is_the_documented_one(templates):
    grants, _ = iac_checks.role_findings(templates)
    actual: dict[tuple, int] = {}
    for g in grants:
        actual[(g.role, g.principal, g.scope_type)] = actual.get((g.role, g.principal, g.scope_type), 0) + 1
    assert actual == EXPECTED


def test_no_broad_role_id_anywhere_in_infra():
    """Not even in a comment or a variable nobody uses yet."""
    for path in iac_checks.bicep_files():
        text = path.read_text(encoding="utf-8").lower()
        for guid, name in iac_checks.BROAD_ROLES.items():
            assert guid not in text, f"{path.name} mentions {name} ({guid})"


def test_custom_apim_role_holds_exactly_the_actions_the_app_calls(templates):
    apim = iac_checks.named(templates, "apim.bicep")
    (symbol, role), = apim.resources_of_type(iac_checks.ROLE_DEFINITION).items()
    permissions = role["config"]["properties"]["permissions"]
    assert len(permissions) == 1
    assert set(apim.resolve(permissions[0]["actions"])) == iac_checks.APIM_ACTIONS
    assert not any("listSecrets" in a for a in iac_checks.APIM_ACTIONS)


def test_custom_apim_role_actions_cover_the_adapter_calls():
    """Each management-plane operation group shared/adapters/apim_gateway.py calls has its action."""
    source = (iac_checks.ROOT / "shared" / "adapters" / "apim_gateway.py").read_text(encoding="utf-8")
    calls = set(re.findall(r"self\._client\.(\w+)\.(\w+)\(", source))
    needed = {
        ("api_management_service", "get"): "Microsoft.ApiManagement/service/read",
        ("authorization_server", "list_by_service"): "Microsoft.ApiManagement/service/authorizationServers/read",
        ("authorization_server", "get"): "Microsoft.ApiManagement/service/authorizationServers/read",
        ("authorization_server", "create_or_update"): "Microsoft.ApiManagement/service/authorizationServers/write",
        # a rotation PATCHes the entry's client secret; an update its name, grant types and scope
        ("authorization_server", "update"): "Microsoft.ApiManagement/service/authorizationServers/write",
        ("authorization_server", "delete"): "Microsoft.ApiManagement/service/authorizationServers/delete",
        ("subscription", "update"): "Microsoft.ApiManagement/service/subscriptions/write",
        ("subscription", "create_or_update"): "Microsoft.ApiManagement/service/subscriptions/write",
        ("subscription", "delete"): "Microsoft.ApiManagement/service/subscriptions/delete",
        ("subscription", "get"): "Microsoft.ApiManagement/service/subscriptions/read",
        ("subscription", "list"): "Microsoft.ApiManagement/service/subscriptions/read",
    }
    unknown = calls - needed.keys()
    assert not unknown, f"apim_gateway.py calls {sorted(unknown)}: add its action to the custom role and here"
    assert {needed[c] for c in calls} <= iac_checks.APIM_ACTIONS


def test_readme_roles_table_lists_every_role():
    readme = (iac_checks.ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Deploying to Azure"):]
    section = section[:section.index("\n## ", 1)]
    for role, _principal in iac_checks.ALLOWED_GRANTS:
        name = "Customer provisioning on API Management" if role == CUSTOM_APIM_ROLE else role
        assert name in section, f"README's Deploying section does not list {name}"
    for name in iac_checks.BROAD_ROLES.values():
        assert f"| {name} |" not in section, f"README lists {name} as a role"


# -- mutated copies -------------------------------------------------------------------------------------------------

_APP_QUEUE_RECEIVER = "resource appQueueReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {"


@pytest.mark.parametrize("guid, name", [
    ("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner"),
    ("b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor"),
    ("18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", "User Access Administrator"),
    ("312a565d-c81f-4fd8-895a-4e21e48d571c", "API Management Service Contributor"),
])
def test_a_broad_role_is_reported(mutated, guid, name):
    injected = f"""resource sneaky 'Microsoft.Authorization/roleAssignments@2022-04-01' = {{
  name: guid(queue.id, appPrincipalId, 'sneaky')
  scope: queue
  properties: {{
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '{guid}')
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }}
}}

{_APP_QUEUE_RECEIVER}"""
    templates, _ = mutated("modules/servicebus.bicep", _APP_QUEUE_RECEIVER, injected)
    _, findings = iac_checks.role_findings(templates)
    assert f"servicebus.bicep:sneaky: broad role {name}" in findings


def test_a_broad_role_through_a_variable_is_reported(mutated):
    templates, _ = mutated("modules/keyvault.bicep",
                           "keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'",
                           "keyVaultSecretsOfficer: '8e3af657-a8ff-443c-a75c-2fe8c4bcb635'")
    _, findings = iac_checks.role_findings(templates)
    assert "keyvault.bicep:appSecretsOfficer: broad role Owner" in findings


def test_a_write_role_on_the_vault_of_the_apps_own_credentials_is_reported(mutated):
    """The app reads its Auth0 credentials and writes customers' secrets: a write role on its own vault would let
    code running as the app overwrite the credentials it runs with."""
    templates, _ = mutated("modules/keyvault-app.bicep",
                           "keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'",
                           "keyVaultSecretsUser: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'")
    _, findings = iac_checks.role_findings(templates)
    assert any(f.startswith("keyvault-app.bicep:appSecretsUser: Key Vault Secrets Officer on the vault of the app's "
                            "own credentials") for f in findings), findings
    assert not any(f.startswith("keyvault.bicep:") for f in findings), findings  # the customers' vault may


def test_the_apps_credentials_and_the_customers_secrets_are_in_two_vaults(main_template, templates):
    """The Key Vault references point at the app's own vault, KEYVAULT_URL at the customers' one."""
    main = (iac_checks.INFRA / "main.bicep").read_text(encoding="utf-8")
    assert "value: appKeyVault.outputs.auth0ClientIdReference" in main
    assert "value: appKeyVault.outputs.auth0ClientSecretReference" in main
    assert re.search(r"name: 'KEYVAULT_URL'\n\s+value: keyVault\.outputs\.uri", main)
    customers = iac_checks.named(templates, "keyvault.bicep")
    assert not iac_checks._writes_own_secrets(customers)
    assert iac_checks._writes_own_secrets(iac_checks.named(templates, "keyvault-app.bicep"))


def test_an_assignment_without_a_scope_is_reported(mutated):
    """No `scope:` means the deployment's scope: the whole resource group."""
    templates, _ = mutated("modules/servicebus.bicep",
                           f"{_APP_QUEUE_RECEIVER}\n  name: guid(queue.id, appPrincipalId, roleIds.serviceBusDataReceiver)\n  scope: queue\n",
                           f"{_APP_QUEUE_RECEIVER}\n  name: guid(queue.id, appPrincipalId, roleIds.serviceBusDataReceiver)\n")
    _, findings = iac_checks.role_findings(templates)
    assert any(f.startswith("servicebus.bicep:appQueueReceiver: no scope") for f in findings), findings


@pytest.mark.parametrize("file, anchor, wider, wider_type", [
    ("modules/servicebus.bicep", "  scope: queue\n", "  scope: namespace\n", "Microsoft.ServiceBus/namespaces"),
    ("modules/storage.bicep", "  scope: ledgerTable\n", "  scope: account\n", "Microsoft.Storage/storageAccounts"),
    ("modules/storage.bicep", "  scope: hostsContainer\n", "  scope: account\n", "Microsoft.Storage/storageAccounts"),
])
def test_an_assignment_on_a_wider_resource_is_reported(mutated, file, anchor, wider, wider_type):
    templates, _ = mutated(file, anchor, wider)
    _, findings = iac_checks.role_findings(templates)
    assert any(f"scoped to a {wider_type}, wider than" in f for f in findings), findings


def test_an_assignment_scoped_to_the_resource_group_is_reported(mutated):
    templates, _ = mutated("modules/keyvault.bicep", "  scope: vault\n", "  scope: resourceGroup()\n")
    _, findings = iac_checks.role_findings(templates)
    assert any(f.startswith("keyvault.bicep:appSecretsOfficer: scope") for f in findings), findings


def test_a_role_outside_the_documented_set_is_reported(mutated):
    """Even a narrow data role: the app has no use for Storage Table Data Reader (it has Contributor)."""
    templates, _ = mutated("modules/storage.bicep", "principalId: opsPrincipalId\n", "principalId: appPrincipalId\n")
    _, findings = iac_checks.role_findings(templates)
    assert "storage.bicep:opsLedgerReader: Storage Table Data Reader for the app principal is not in the " \
           "documented role set" in findings


@pytest.mark.parametrize("action, expected", [
    ("Microsoft.ApiManagement/service/*", "wildcard or unreadable action 'Microsoft.ApiManagement/service/*'"),
    ("Microsoft.ApiManagement/service/authorizationServers/listSecrets/action",
     "action Microsoft.ApiManagement/service/authorizationServers/listSecrets/action is not one the app calls"),
    ("Microsoft.ApiManagement/service/apis/write",
     "action Microsoft.ApiManagement/service/apis/write is not one the app calls"),
])
def test_a_custom_role_action_beyond_the_app_calls_is_reported(mutated, action, expected):
    templates, _ = mutated("modules/apim.bicep", "  'Microsoft.ApiManagement/service/products/read'\n",
                           f"  'Microsoft.ApiManagement/service/products/read'\n  '{action}'\n")
    _, findings = iac_checks.role_findings(templates)
    assert f"apim.bicep:provisioningRole: {expected}" in findings


def test_a_custom_role_assignable_at_the_subscription_is_reported(mutated):
    templates, _ = mutated("modules/apim.bicep", "      resourceGroup().id\n", "      subscription().id\n")
    _, findings = iac_checks.role_findings(templates)
    assert any("assignable scope" in f and "wider than a resource group" in f for f in findings), findings
