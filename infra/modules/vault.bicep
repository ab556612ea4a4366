// One Key Vault: RBAC mode (every request needs a role on the vault), soft delete and purge protection. The app has
// two, each with one role for it: keyvault.bicep (the customers' client secrets, which the app writes) and
// keyvault-app.bicep (the app's own Auth0 credentials, which it may only read).
//
// Purge protection means a deleted secret cannot be purged before its retention ends: the app recovers a
// soft-deleted name instead (KEYVAULT_PURGE_DELETED=false, which the template sets). A deleted vault is held the
// same 90 days, its name with it: docs/DEPLOYING.md (Removing everything, Redeploying) says what that means.
param name string
param location string
param tags object = {}

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

output name string = vault.name
output uri string = vault.properties.vaultUri
