// One storage account for the Functions host (its blob containers and the Flex Consumption deployment package)
// and the ledger table. Shared keys are off: the host, the deployment and the app all use the app's identity, so
// no connection string or account key is in any setting.
param name string
param location string
param tags object = {}
@description('Principal id of the Function App identity.')
param appPrincipalId string
@description('Principal (user, group or service principal) that runs the ops tool; empty: none.')
param opsPrincipalId string = ''
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param opsPrincipalType string = 'Group'
@description('The ledger table (the app setting LEDGER_TABLE).')
param ledgerTableName string = 'customerledger'
@description('Replication. Geo-zone-redundant by default: the ledger is the record of every customer\'s resources. Standard_ZRS or Standard_GRS where a region has no GZRS.')
@allowed([
  'Standard_GZRS'
  'Standard_RAGZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_ZRS'
])
param skuName string = 'Standard_GZRS'
@description('Blob container that holds the Flex Consumption deployment package.')
param deploymentContainerName string = 'app-package'

var roleIds = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  storageTableDataReader: '76199698-9eea-4c19-bc75-cec21354c6b6'
}

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: the Flex Consumption app is not in a virtual network, so it reaches the account over its public endpoint; shared keys are off, so every request needs the app's identity and a role on one container or table
  // checkov:skip=CKV_AZURE_59: same reason as CKV_AZURE_35 (public endpoint, no shared keys, no anonymous blob access)
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

// The host's own containers are created here, so that the host's role can be scoped to them instead of the account.
resource hostsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: 'azure-webjobs-hosts'
  properties: {
    publicAccess: 'None'
  }
}

resource secretsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: 'azure-webjobs-secrets'
  properties: {
    publicAccess: 'None'
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

// Created here: the app's role is on this table only, so the app could not create it at first use.
resource ledgerTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: ledgerTableName
}

// The Functions host keeps its locks (blob leases) and keys in these two containers.
resource appHostsBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostsContainer.id, appPrincipalId, roleIds.storageBlobDataOwner)
  scope: hostsContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageBlobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appSecretsBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(secretsContainer.id, appPrincipalId, roleIds.storageBlobDataOwner)
  scope: secretsContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageBlobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Flex Consumption stores a published package here and reads it at start, both with the app's identity.
resource appPackageBlobContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deploymentContainer.id, appPrincipalId, roleIds.storageBlobDataContributor)
  scope: deploymentContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageBlobDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The ledger: the app reads and writes entities (claims, audit rows) in this one table.
resource appLedgerContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(ledgerTable.id, appPrincipalId, roleIds.storageTableDataContributor)
  scope: ledgerTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// docs/RUNBOOK.md: the ops tool reads the ledger beside the dead letters (list, show, customers).
resource opsLedgerReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(opsPrincipalId)) {
  name: guid(ledgerTable.id, opsPrincipalId, roleIds.storageTableDataReader)
  scope: ledgerTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageTableDataReader)
    principalId: opsPrincipalId
    principalType: opsPrincipalType
  }
}

output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output tableEndpoint string = account.properties.primaryEndpoints.table
output deploymentContainerName string = deploymentContainer.name
output ledgerTableName string = ledgerTable.name
