// One secret in the vault, written through the control plane by the deployment. A module of its own so that
// keyvault.bicep can write it only when a value is given (an empty parameter keeps the stored secret).
param vaultName string
param name string
@secure()
param value string
@description('Expiry, seconds since 1970-01-01 UTC.')
param expires int

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: name
  properties: {
    value: value
    contentType: 'text/plain'
    attributes: {
      enabled: true
      exp: expires
    }
  }
}
