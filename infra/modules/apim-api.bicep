// The Customer API in the existing API Management instance, as code: its definition (infra/apim/customer-api.json),
// the gateway policies that enforce the customers' credentials (infra/policies/*.xml, at the API and operation
// scopes), the named values those policies read, and its place in the products the client profiles name. The
// local gateway (emulators/apim_gateway) reads the same files, so what the tests enforce is what is deployed here.
// See docs/DESIGN.md, "The gateway: one customer's credentials, and only theirs".
param apimServiceName string
@description('Product ids the client profiles use; the API is added to each.')
param productIds array
@description('The Auth0 tenant\'s domain (AUTH0_DOMAIN): the tokens\' issuer and their keys\' OpenID configuration.')
param auth0Domain string
@description('The API\'s identifier in Auth0 (API_AUDIENCE): the tokens\' audience.')
param apiAudience string
@description('Where the gateway forwards accepted calls: the SaaS API\'s backend.')
param apiBackendUrl string
@description('Calls per customer (per Auth0 client) in each renewal period, at the gateway.')
@minValue(1)
param customerRateLimitCalls int
@description('The rate limit\'s sliding window in seconds (API Management allows at most 300).')
@minValue(1)
@maxValue(300)
param customerRateLimitPeriod int

var api = loadJsonContent('../apim/customer-api.json')
// Bicep loads files by constant paths only: every policy file the API definition names is listed here
// (tests/infra/test_apim_api.py checks that none is missing).
var policies = {
  'api.xml': loadTextContent('../policies/api.xml')
  'operation-read-data.xml': loadTextContent('../policies/operation-read-data.xml')
  'operation-write-data.xml': loadTextContent('../policies/operation-write-data.xml')
}
// The same values the app's settings get (main.bicep passes the same parameters to both).
var namedValues = {
  'auth0-domain': auth0Domain
  'api-audience': apiAudience
  'customer-rate-limit-calls': string(customerRateLimitCalls)
  'customer-rate-limit-period': string(customerRateLimitPeriod)
}

resource apim 'Microsoft.ApiManagement/service@2024-05-01' existing = {
  name: apimServiceName
}

resource values 'Microsoft.ApiManagement/service/namedValues@2024-05-01' = [for item in items(namedValues): {
  parent: apim
  name: item.key
  properties: {
    displayName: item.key
    value: item.value
    secret: false
  }
}]

resource customerApi 'Microsoft.ApiManagement/service/apis@2024-05-01' = {
  parent: apim
  name: api.id
  properties: {
    displayName: api.displayName
    description: api.description
    path: api.path
    protocols: api.protocols
    serviceUrl: apiBackendUrl
    subscriptionRequired: api.subscriptionRequired
    subscriptionKeyParameterNames: api.subscriptionKeyParameterNames
  }
}

resource apiPolicy 'Microsoft.ApiManagement/service/apis/policies@2024-05-01' = {
  parent: customerApi
  name: 'policy'
  properties: {
    format: 'rawxml'
    value: policies[api.policy]
  }
  dependsOn: [
    values
  ]
}

resource operations 'Microsoft.ApiManagement/service/apis/operations@2024-05-01' = [for op in api.operations: {
  parent: customerApi
  name: op.id
  properties: {
    displayName: op.displayName
    method: op.method
    urlTemplate: op.urlTemplate
  }
}]

resource operationPolicies 'Microsoft.ApiManagement/service/apis/operations/policies@2024-05-01' = [for (op, i) in api.operations: {
  parent: operations[i]
  name: 'policy'
  properties: {
    format: 'rawxml'
    value: policies[op.policy]
  }
  dependsOn: [
    values
  ]
}]

resource products 'Microsoft.ApiManagement/service/products@2024-05-01' existing = [for productId in productIds: {
  parent: apim
  name: productId
}]

resource productApis 'Microsoft.ApiManagement/service/products/apis@2024-05-01' = [for (productId, i) in productIds: {
  parent: products[i]
  name: customerApi.name
}]

output apiPath string = api.path
