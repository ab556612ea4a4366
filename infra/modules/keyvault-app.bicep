// The app's own Key Vault: the Auth0 Management API client's id and secret, written by the deployment through the
// control plane and read by the app through its Key Vault references (Key Vault Secrets User: read, never write).
// The customers' secrets, which the app writes, are in keyvault.bicep's vault: a role that writes secrets is never
// granted here, so the app cannot overwrite the credentials it runs with (tests/infra/test_roles.py checks it).
param name string
param location string
param tags object = {}
@description('Principal id of the Function App identity.')
param appPrincipalId string
@description('Names of the secrets that hold the Auth0 Management API client id and secret.')
param auth0ClientIdSecretName string = 'auth0-mgmt-client-id'
param auth0ClientSecretSecretName string = 'auth0-mgmt-client-secret'
@description('The Auth0 Management API client id; empty: keep the secret as it is (set it once, see docs/DEPLOYING.md).')
@secure()
param auth0ManagementClientId string = ''
@description('The Auth0 Management API client secret; empty: keep the secret as it is.')
@secure()
param auth0ManagementClientSecret string = ''
@description('Secrets written by this template expire after this many days (rotate before then: docs/DEPLOYING.md).')
param secretLifetimeDays int = 365
@description('Deployment time, for the expiry of the secrets written now.')
param now string = utcNow()

var roleIds = {
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
}
var expires = dateTimeToEpoch(dateTimeAdd(now, 'P${secretLifetimeDays}D'))

module store 'vault.bicep' = {
  name: 'vault-app'
  params: {
    name: name
    location: location
    tags: tags
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: name
}

// Written through the control plane by the deployment: nobody needs a data-plane role on the vault to set them.
module auth0ClientIdSecret 'keyvault-secret.bicep' = if (!empty(auth0ManagementClientId)) {
  name: 'secret-auth0-client-id'
  params: {
    vaultName: store.outputs.name
    name: auth0ClientIdSecretName
    value: auth0ManagementClientId
    expires: expires
  }
}

module auth0ClientSecretSecret 'keyvault-secret.bicep' = if (!empty(auth0ManagementClientSecret)) {
  name: 'secret-auth0-client-secret'
  params: {
    vaultName: store.outputs.name
    name: auth0ClientSecretSecretName
    value: auth0ManagementClientSecret
    expires: expires
  }
}

// The app resolves its Key Vault references (AUTH0_CLIENT_ID, AUTH0_CLIENT_SECRET): read only.
resource appSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, roleIds.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.keyVaultSecretsUser)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
  dependsOn: [
    store
  ]
}

output name string = store.outputs.name
// Key Vault references without a version: App Service picks up a rotated secret within a day, or at a restart.
output auth0ClientIdReference string = '@Microsoft.KeyVault(SecretUri=${store.outputs.uri}secrets/${auth0ClientIdSecretName}/)'
output auth0ClientSecretReference string = '@Microsoft.KeyVault(SecretUri=${store.outputs.uri}secrets/${auth0ClientSecretSecretName}/)'
