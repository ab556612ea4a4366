// The customers' Key Vault: their client secrets, which the app sets, deletes and recovers (Key Vault Secrets
// Officer). Nothing else is kept here: the app's own Auth0 credentials are in keyvault-app.bicep's vault, where the
// app may only read, so code running as the app can write customers' secrets but never the credentials it runs with.
param name string
param location string
param tags object = {}
@description('Principal id of the Function App identity.')
param appPrincipalId string

var roleIds = {
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
}

module store 'vault.bicep' = {
  name: 'vault-customers'
  params: {
    name: name
    location: location
    tags: tags
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: name
}

// The app sets, reads, deletes and recovers the customers' secrets.
resource appSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, roleIds.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.keyVaultSecretsOfficer)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
  dependsOn: [
    store
  ]
}

output name string = store.outputs.name
output uri string = store.outputs.uri
