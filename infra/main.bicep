// Customer provisioning: every Azure resource of the app in one resource group, plus a custom role on an existing
// API Management instance in its own resource group. `azd up` deploys it (azure.yaml), or
// `az deployment group create` (docs/DEPLOYING.md).
//
// Least privilege: the roles and their scopes are listed, with the reason for each, in README.md (Deploying to
// Azure); tests/infra fails on a broad role or an assignment wider than its resource.
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(32)
@description('Name of the environment (azd): part of every resource name, e.g. prod or staging.')
param environmentName string

@description('Region of every resource except API Management (which already exists).')
param location string = resourceGroup().location

// --- API Management (existing) -----------------------------------------------------------------------------------
@description('The existing API Management instance.')
param apimServiceName string
@description('Its resource group.')
param apimResourceGroupName string
@description('Its subscription (default: this deployment\'s).')
param apimSubscriptionId string = subscription().subscriptionId
@description('The products the client profiles name (config/client_profiles.toml, apim_product); they must exist.')
param apimProductIds array = [
  'oem'
  'partners'
]
@description('Written into each APIM authorization server entry (a page for developers); empty: the app\'s default.')
param apimClientRegistrationEndpoint string = ''
@description('The SaaS API\'s backend URL: where the gateway forwards the customers\' accepted calls (the Customer API of infra/apim/customer-api.json).')
param apiBackendUrl string
@description('Calls per customer in each rate-limit period at the gateway (named value customer-rate-limit-calls).')
@minValue(1)
param customerRateLimitCalls int = 100
@description('The gateway\'s per-customer rate-limit window in seconds, at most 300 (named value customer-rate-limit-period).')
@minValue(1)
@maxValue(300)
param customerRateLimitPeriod int = 60

// --- Auth0 ---------------------------------------------------------------------------------------------------------
@description('The Auth0 tenant\'s domain, e.g. contoso.eu.auth0.com.')
param auth0Domain string
@description('The Auth0 Management API client\'s id, stored in Key Vault; empty keeps the stored one.')
@secure()
param auth0ManagementClientId string = ''
@description('The Auth0 Management API client\'s secret, stored in Key Vault; empty keeps the stored one.')
@secure()
param auth0ManagementClientSecret string = ''
@description('Requests per second of the tenant\'s Management API limit that this app may use (2 on a free tenant, up to 16 on an enterprise one, shared with everything else that calls it); 0: no pacing.')
@minValue(0)
param auth0RateLimitShare int = 2
@description('Burst of that share (requests); 0: as many as the rate.')
@minValue(0)
param auth0RateLimitBurstShare int = 0
@description('Most Function App instances at once. Each instance paces its Auth0 calls at share / this, so scaling out never exceeds the share; keep share / this at least 0.1 request/s (the app\'s lower bound).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 2

// --- The app ------------------------------------------------------------------------------------------------------
@description('The API the customers\' applications are granted (API_AUDIENCE).')
param apiAudience string
@description('Prefix of the CloudEvents types, e.g. com.contoso. (EVENT_TYPE_PREFIX).')
param eventTypePrefix string = ''
@description('true: a session-enabled queue and trigger (per-customer order by SessionId).')
param customerEventsSessions bool = false

// --- People -------------------------------------------------------------------------------------------------------
@description('Object id of the principal (best a group) that runs the ops tool (docs/RUNBOOK.md); empty: none.')
param opsPrincipalId string = ''
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param opsPrincipalType string = 'Group'
@description('Object id of the CRM\'s (or billing system\'s) identity: it sends the events and reads the result events; empty: none.')
param crmPrincipalId string = ''
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param crmPrincipalType string = 'ServicePrincipal'

@description('Replication of the storage account (host and ledger); Standard_ZRS or Standard_GRS where the region has no GZRS.')
param storageSkuName string = 'Standard_GZRS'

param tags object = {}

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var allTags = union(tags, {
  'azd-env-name': environmentName
})
var names = {
  identity: 'id-cprov-${resourceToken}'
  logAnalytics: 'log-cprov-${resourceToken}'
  appInsights: 'appi-cprov-${resourceToken}'
  storage: 'stcprov${resourceToken}'
  serviceBus: 'sb-cprov-${resourceToken}'
  keyVault: 'kv-cprov-${resourceToken}'
  appKeyVault: 'kvapp-${resourceToken}'
  plan: 'plan-cprov-${resourceToken}'
  app: 'func-cprov-${resourceToken}'
}
var ledgerTableName = 'customerledger'

// AUTH0_RATE_LIMIT of one instance: the share divided by the instances, with three decimals (Bicep has no
// fractions, so in thousandths).
var auth0RateMilli = (auth0RateLimitShare * 1000) / maximumInstanceCount
var auth0RateLimit = auth0RateLimitShare == 0 ? '' : '${auth0RateMilli / 1000}.${padLeft(string(auth0RateMilli % 1000), 3, '0')}'
var auth0RateLimitBurst = auth0RateLimitBurstShare == 0 ? '' : string(max(1, auth0RateLimitBurstShare / maximumInstanceCount))

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: names.identity
    location: location
    tags: allTags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: names.logAnalytics
    applicationInsightsName: names.appInsights
    location: location
    tags: allTags
    appPrincipalId: identity.outputs.principalId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: names.storage
    location: location
    tags: allTags
    appPrincipalId: identity.outputs.principalId
    opsPrincipalId: opsPrincipalId
    opsPrincipalType: opsPrincipalType
    ledgerTableName: ledgerTableName
    skuName: storageSkuName
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  params: {
    namespaceName: names.serviceBus
    location: location
    tags: allTags
    appPrincipalId: identity.outputs.principalId
    opsPrincipalId: opsPrincipalId
    opsPrincipalType: opsPrincipalType
    crmPrincipalId: crmPrincipalId
    crmPrincipalType: crmPrincipalType
    sessionsEnabled: customerEventsSessions
  }
}

// Two vaults: the customers' secrets, which the app writes, and the app's own Auth0 credentials, which it only reads.
module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: names.keyVault
    location: location
    tags: allTags
    appPrincipalId: identity.outputs.principalId
  }
}

module appKeyVault 'modules/keyvault-app.bicep' = {
  name: 'keyvault-app'
  params: {
    name: names.appKeyVault
    location: location
    tags: allTags
    appPrincipalId: identity.outputs.principalId
    auth0ManagementClientId: auth0ManagementClientId
    auth0ManagementClientSecret: auth0ManagementClientSecret
  }
}

module apim 'modules/apim.bicep' = {
  name: 'apim-${resourceToken}'
  scope: resourceGroup(apimSubscriptionId, apimResourceGroupName)
  params: {
    apimServiceName: apimServiceName
    productIds: apimProductIds
    appPrincipalId: identity.outputs.principalId
    roleNameSuffix: '${environmentName}-${resourceToken}'
  }
}

// The Customer API and its gateway policies, with the same Auth0 domain and audience as the app's settings.
module customerApi 'modules/apim-api.bicep' = {
  name: 'apim-api-${resourceToken}'
  scope: resourceGroup(apimSubscriptionId, apimResourceGroupName)
  params: {
    apimServiceName: apimServiceName
    productIds: apimProductIds
    auth0Domain: auth0Domain
    apiAudience: apiAudience
    apiBackendUrl: apiBackendUrl
    customerRateLimitCalls: customerRateLimitCalls
    customerRateLimitPeriod: customerRateLimitPeriod
  }
}

// Every app setting, in one list: the settings the app reads (shared/adapters/settings.py and the trigger), then the
// host's own. Secrets only as Key Vault references; no connection string anywhere (identity-based access).
// tests/infra/test_app_settings.py compares these names with the app's.
var appSettings = [
  // Service Bus: the trigger's identity-based connection, also read by the retry scheduler
  {
    name: 'ServiceBusConnection__fullyQualifiedNamespace'
    value: serviceBus.outputs.fullyQualifiedNamespace
  }
  {
    name: 'ServiceBusConnection__clientId'
    value: identity.outputs.clientId
  }
  {
    name: 'ServiceBusConnection__credential'
    value: 'managedidentity'
  }
  {
    name: 'CUSTOMER_EVENTS_QUEUE'
    value: serviceBus.outputs.queueName
  }
  {
    name: 'CUSTOMER_EVENTS_SESSIONS'
    value: customerEventsSessions ? 'true' : 'false'
  }
  {
    name: 'RESULT_EVENTS_TOPIC'
    value: serviceBus.outputs.topicName
  }
  {
    name: 'EVENT_TYPE_PREFIX'
    value: eventTypePrefix
  }
  {
    name: 'CLIENT_PROFILES_PATH'
    value: 'config/client_profiles.toml'
  }
  {
    name: 'API_AUDIENCE'
    value: apiAudience
  }
  // Auth0 Management API
  {
    name: 'AUTH0_DOMAIN'
    value: auth0Domain
  }
  {
    name: 'AUTH0_CLIENT_ID'
    value: appKeyVault.outputs.auth0ClientIdReference
  }
  {
    name: 'AUTH0_CLIENT_SECRET'
    value: appKeyVault.outputs.auth0ClientSecretReference
  }
  {
    name: 'AUTH0_AUDIENCE'
    value: ''
  }
  {
    name: 'AUTH0_TIMEOUT_SECONDS'
    value: '10'
  }
  {
    // The longest wait for a turn under the rate limit; CLAIM_TTL_SECONDS must be at least twice the longest call
    // (this + AUTH0_TIMEOUT_SECONDS, or 3 x AZURE_TIMEOUT_SECONDS + 2) plus 2 s: the app refuses to start otherwise.
    name: 'PACING_MAX_WAIT_SECONDS'
    value: '30'
  }
  {
    name: 'AUTH0_RATE_LIMIT'
    value: auth0RateLimit
  }
  {
    name: 'AUTH0_RATE_LIMIT_BURST'
    value: auth0RateLimitBurst
  }
  // The Python worker's thread pool as large as host.json's maxConcurrentCalls (its default is cores + 4, fewer
  // than the 8 messages the trigger hands over at once); tests/infra checks the two agree.
  {
    name: 'PYTHON_THREADPOOL_THREAD_COUNT'
    value: '8'
  }
  // Every instance paces Auth0 and ARM calls on the rate-limit headers of the answers (a shared budget)
  {
    name: 'RATE_LIMIT_HEADER_PACING'
    value: 'true'
  }
  // Key Vault: purge protection is on, so a deleted name is recovered, never purged
  {
    name: 'KEYVAULT_URL'
    value: keyVault.outputs.uri
  }
  {
    name: 'KEYVAULT_PURGE_DELETED'
    value: 'false'
  }
  // API Management
  {
    name: 'APIM_SUBSCRIPTION_ID'
    value: apimSubscriptionId
  }
  {
    name: 'APIM_RESOURCE_GROUP'
    value: apimResourceGroupName
  }
  {
    name: 'APIM_SERVICE_NAME'
    value: apimServiceName
  }
  {
    name: 'APIM_MANAGEMENT_ENDPOINT'
    value: environment().resourceManager
  }
  {
    name: 'APIM_CLIENT_REGISTRATION_ENDPOINT'
    value: apimClientRegistrationEndpoint
  }
  // The ledger, identity-based
  {
    name: 'LEDGER_TABLE_ENDPOINT'
    value: storage.outputs.tableEndpoint
  }
  {
    name: 'LEDGER_TABLE'
    value: storage.outputs.ledgerTableName
  }
  {
    name: 'CLAIM_TTL_SECONDS'
    value: '300'
  }
  // Azure SDK clients
  {
    name: 'AZURE_CLIENT_ID'
    value: identity.outputs.clientId
  }
  {
    name: 'AZURE_TIMEOUT_SECONDS'
    value: '30'
  }
  // Retries of transient failures (README, Reliability)
  {
    name: 'RETRY_MAX_ATTEMPTS'
    value: '8'
  }
  {
    name: 'RETRY_MAX_TOTAL_SECONDS'
    value: '3600'
  }
  {
    name: 'RETRY_BASE_SECONDS'
    value: '2'
  }
  {
    name: 'RETRY_MAX_DELAY_SECONDS'
    value: '300'
  }
  // The drift reconciliation (README, Drift): hourly, report only
  {
    name: 'DRIFT_SCHEDULE'
    value: '0 0 * * * *'
  }
  {
    name: 'DRIFT_REPAIR'
    value: 'false'
  }
  // Clients, tokens and links made while the host connects the trigger, not by the first event (README, Settings)
  {
    name: 'WARM_UP'
    value: 'true'
  }
  // The Functions host: its storage with the identity, and telemetry with Microsoft Entra ID
  {
    name: 'AzureWebJobsStorage__accountName'
    value: storage.outputs.name
  }
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identity.outputs.clientId
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: monitoring.outputs.connectionString
  }
  // Traces and metrics of the app (shared/adapters/telemetry_setup.py): to Application Insights, with the host's
  // own telemetry in OpenTelemetry form (host.json telemetryMode) and the invocation's trace context handed to the
  // Python worker (PYTHON_ENABLE_OPENTELEMETRY), so the host's spans and the app's join in one trace.
  {
    name: 'TELEMETRY_EXPORTER'
    value: 'azure-monitor'
  }
  {
    name: 'PYTHON_ENABLE_OPENTELEMETRY'
    value: 'true'
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identity.outputs.clientId};Authorization=AAD'
  }
]

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    planName: names.plan
    appName: names.app
    location: location
    tags: allTags
    identityId: identity.outputs.id
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    maximumInstanceCount: maximumInstanceCount
    appSettings: appSettings
  }
  // The settings reference the other modules' outputs, so the app already waits for their role assignments; the
  // APIM role is referenced by nothing the app gets, so wait for it explicitly.
  dependsOn: [
    apim
  ]
}

output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = resourceGroup().name
output FUNCTION_APP_NAME string = functionApp.outputs.name
output SERVICEBUS_NAMESPACE string = serviceBus.outputs.namespaceName
output CUSTOMER_EVENTS_QUEUE string = serviceBus.outputs.queueName
output RESULT_EVENTS_TOPIC string = serviceBus.outputs.topicName
output KEYVAULT_NAME string = keyVault.outputs.name
output KEYVAULT_URL string = keyVault.outputs.uri
output APP_KEYVAULT_NAME string = appKeyVault.outputs.name
output LEDGER_TABLE_ENDPOINT string = storage.outputs.tableEndpoint
output LEDGER_TABLE string = storage.outputs.ledgerTableName
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
