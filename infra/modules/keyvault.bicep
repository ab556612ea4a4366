// The Key Vault: the customers' client secrets (written by the app) and the Auth0 Management API client's
// credentials (read by the app through Key Vault references). RBAC mode, soft delete and purge protection.
//
// Purge protection means a deleted secret cannot be purged before its retention ends: the app recovers a
// soft-deleted name instead (KEYVAULT_PURGE_DELETED=false, which the template sets).
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
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
}
var expires = dateTimeToEpoch(dateTimeAdd(now, 'P${secretLifetimeDays}D'))

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: the Flex Consumption app is not in a virtual network and Key Vault references from App Service do not pass the trusted-services bypass, so the vault must accept its public endpoint; RBAC mode: every request needs a role on this vault
  // checkov:skip=CKV_AZURE_189: same reason as CKV_AZURE_109
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

// Written through the control plane by the deployment: nobody needs a data-plane role on the vault to set them.
module auth0ClientIdSecret 'keyvault-secret.bicep' = if (!empty(auth0ManagementClientId)) {
  name: 'secret-auth0-client-id'
  params: {
    vaultName: vault.name
    name: auth0ClientIdSecretName
    value: auth0ManagementClientId
    expires: expires
  }
}

module auth0ClientSecretSecret 'keyvault-secret.bicep' = if (!empty(auth0ManagementClientSecret)) {
  name: 'secret-auth0-client-secret'
  params: {
    vaultName: vault.name
    name: auth0ClientSecretSecretName
    value: auth0ManagementClientSecret
    expires: expires
  }
}

// The app sets, reads, deletes and recovers the customers' secrets, and resolves its Key Vault references.
resource appSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, roleIds.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.keyVaultSecretsOfficer)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
// Key Vault references without a version: App Service picks up a rotated secret within a day, or at a restart.
output auth0ClientIdReference string = '@Microsoft.KeyVault(SecretUri=${vault.properties.vaultUri}secrets/${auth0ClientIdSecretName}/)'
output auth0ClientSecretReference string = '@Microsoft.KeyVault(SecretUri=${vault.properties.vaultUri}secrets/${auth0ClientSecretSecretName}/)'
