// The existing API Management instance (deployed into its resource group) and the products the client profiles
// name. Nothing here changes the instance: it only checks that the products exist (the deployment fails, naming
// the missing product, if one does not) and gives the app's identity a custom role with the actions the app calls.
//
// Not API Management Service Contributor: that role can change every API, policy, backend and named value of the
// instance. The app only manages authorization servers and subscriptions (shared/adapters/apim_gateway.py).
param apimServiceName string
@description('Product ids the client profiles use (config/client_profiles.toml, apim_product).')
param productIds array
@description('Principal id of the Function App identity.')
param appPrincipalId string
@description('Names the custom role after the deployment, so two environments in one tenant do not collide.')
param roleNameSuffix string

// Every management-plane call of shared/adapters/apim_gateway.py, and nothing else:
//   service/read                  the tier, for the authorization-server limit (capacity check)
//   authorizationServers/read     the count for the capacity check, the idempotent get, the drift check
//   authorizationServers/write    create or update a customer's entry
//   authorizationServers/delete   remove it
//   subscriptions/read|write|delete  the customer's subscription to its profile's product; read also lists them for the drift check
//   products/read                 the profile's product, which a subscription is scoped to
// Not authorizationServers/listSecrets/action: the app never reads a client secret back.
var appActions = [
  'Microsoft.ApiManagement/service/read'
  'Microsoft.ApiManagement/service/authorizationServers/read'
  'Microsoft.ApiManagement/service/authorizationServers/write'
  'Microsoft.ApiManagement/service/authorizationServers/delete'
  'Microsoft.ApiManagement/service/subscriptions/read'
  'Microsoft.ApiManagement/service/subscriptions/write'
  'Microsoft.ApiManagement/service/subscriptions/delete'
  'Microsoft.ApiManagement/service/products/read'
]

resource apim 'Microsoft.ApiManagement/service@2024-05-01' existing = {
  name: apimServiceName
}

resource products 'Microsoft.ApiManagement/service/products@2024-05-01' existing = [for productId in productIds: {
  parent: apim
  name: productId
}]

resource provisioningRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(apim.id, 'customer-provisioning', roleNameSuffix)
  properties: {
    roleName: 'Customer provisioning on API Management (${roleNameSuffix})'
    description: 'Manage OAuth 2.0 authorization servers and product subscriptions of one API Management instance; read its products and tier.'
    type: 'CustomRole'
    permissions: [
      {
        actions: appActions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    // A custom role's assignable scopes are management groups, subscriptions or resource groups, never a single
    // resource: the narrowest is the instance's resource group. The assignment below is on the instance itself.
    assignableScopes: [
      resourceGroup().id
    ]
  }
}

resource appApimRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(apim.id, appPrincipalId, provisioningRole.id)
  scope: apim
  properties: {
    roleDefinitionId: provisioningRole.id
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output apimId string = apim.id
// Reading a property makes the deployment fail early, naming the product, when one does not exist.
output productNames array = [for (productId, i) in productIds: products[i].properties.displayName]
