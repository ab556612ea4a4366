// The Function App on a Flex Consumption plan: Python 3.13, the user-assigned identity for everything (host
// storage, the deployment package, Service Bus, Key Vault references, telemetry), and the app settings.
//
// The app settings are passed in whole from main.bicep, the one place that lists them; tests/infra checks that
// list against the settings the app reads.
param planName string
param appName string
param location string
param tags object = {}
@description('Resource id of the user-assigned identity.')
param identityId string
@description('Blob endpoint of the storage account that holds the deployment package.')
param storageBlobEndpoint string
param deploymentContainerName string
@description('Flex Consumption scale-out limit. Every instance paces its Auth0 calls at AUTH0_RATE_LIMIT, so this times that must stay within the app\'s share of the tenant\'s Management API limit (main.bicep computes it).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int
@allowed([
  2048
  4096
])
param instanceMemoryMB int = 2048
@description('Every app setting, as a list of name/value pairs (main.bicep).')
param appSettings array

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy of a Flex Consumption plan depends on the region; an event that meets a failed instance stays on the queue and is redelivered, so a zone outage delays, never loses
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: the app has no HTTP trigger (it is triggered by Service Bus); the public endpoint serves only deployments, which sign in with Microsoft Entra ID (basic publishing credentials are off below)
  // checkov:skip=CKV_AZURE_17: no HTTP trigger, so there is no client to present a certificate
  // checkov:skip=CKV_AZURE_213: no HTTP endpoint to probe; a broken instance shows as failed invocations and dead letters (docs/RUNBOOK.md)
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales to zero on purpose; the queue keeps events while no instance runs
  name: appName
  location: location
  tags: union(tags, {
    'azd-service-name': 'app'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    // Key Vault references (AUTH0_CLIENT_ID, AUTH0_CLIENT_SECRET) resolve with the user-assigned identity.
    keyVaultReferenceIdentity: identityId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.13'
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: appSettings
    }
  }
}

// No publishing with user names and passwords: a deployment signs in with Microsoft Entra ID.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = app.name
output defaultHostName string = app.properties.defaultHostName
