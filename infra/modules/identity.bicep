// The Function App's user-assigned managed identity. User-assigned, not system-assigned, so that every role
// assignment exists before the app's first start: the Key Vault references and the Service Bus trigger then work
// from the first instance instead of failing until the roles propagate.
param name string
param location string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
