// Service Bus: the customer events queue the app is triggered by (and schedules its retries on), and the
// result-events topic with the CRM's subscription. Standard tier: duplicate detection, sessions and topics need it.
//
// The queue's defaults are the local stack's (emulators/servicebus/config.json); tests/infra compares the two, so
// local and cloud cannot drift. Change both together.
param namespaceName string
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
@description('Principal of the CRM (or billing system) that sends the events and reads the result events; empty: none.')
param crmPrincipalId string = ''
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param crmPrincipalType string = 'ServicePrincipal'

@description('true: a session-enabled queue (the app setting CUSTOMER_EVENTS_SESSIONS=true). RequiresSession cannot change on an existing queue, hence the separate name.')
param sessionsEnabled bool = false
@description('The queue (the app setting CUSTOMER_EVENTS_QUEUE).')
param queueName string = sessionsEnabled ? 'customer-events-sessions' : 'customer-events'
@description('Deliveries before a message goes to the dead-letter queue; the app relies on a small number (permanent failures dead-letter in seconds).')
@minValue(1)
param maxDeliveryCount int = 5
@description('Peek-lock duration; the host renews it (host.json maxAutoLockRenewalDuration).')
param lockDuration string = 'PT30S'
@description('Senders set MessageId = event id; the app\'s scheduled retries have deterministic ids. Both rely on it.')
param requiresDuplicateDetection bool = true
param duplicateDetectionHistoryTimeWindow string = 'PT10M'
param defaultMessageTimeToLive string = 'P14D'
@description('An expired event goes to the dead-letter queue (opstool lists it) instead of vanishing.')
param deadLetteringOnMessageExpiration bool = true

@description('The result-events topic (the app setting RESULT_EVENTS_TOPIC).')
param resultEventsTopicName string = 'customer-lifecycle'
@description('The CRM\'s subscription to the result events.')
param crmSubscriptionName string = 'crm'

var roleIds = {
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4a-9142-0e5a2a2247e0'
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
}

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: namespaceName
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: namespace
  name: queueName
  properties: {
    requiresSession: sessionsEnabled
    maxDeliveryCount: maxDeliveryCount
    lockDuration: lockDuration
    requiresDuplicateDetection: requiresDuplicateDetection
    duplicateDetectionHistoryTimeWindow: duplicateDetectionHistoryTimeWindow
    defaultMessageTimeToLive: defaultMessageTimeToLive
    deadLetteringOnMessageExpiration: deadLetteringOnMessageExpiration
  }
}

resource topic 'Microsoft.ServiceBus/namespaces/topics@2022-10-01-preview' = {
  parent: namespace
  name: resultEventsTopicName
  properties: {
    defaultMessageTimeToLive: defaultMessageTimeToLive
    // The app republishes a result event it cannot be sure was sent, under the same message id (outbox).
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionHistoryTimeWindow
  }
}

resource crmSubscription 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2022-10-01-preview' = {
  parent: topic
  name: crmSubscriptionName
  properties: {
    requiresSession: false
    maxDeliveryCount: maxDeliveryCount
    lockDuration: lockDuration
    defaultMessageTimeToLive: defaultMessageTimeToLive
    deadLetteringOnMessageExpiration: deadLetteringOnMessageExpiration
  }
}

// The trigger receives from the queue.
resource appQueueReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(queue.id, appPrincipalId, roleIds.serviceBusDataReceiver)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.serviceBusDataReceiver)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// A transient failure schedules a copy of the message on the same queue (shared/adapters/servicebus_retry.py).
resource appQueueSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(queue.id, appPrincipalId, roleIds.serviceBusDataSender)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.serviceBusDataSender)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The app publishes result events for the CRM on the topic.
resource appTopicSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(topic.id, appPrincipalId, roleIds.serviceBusDataSender)
  scope: topic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.serviceBusDataSender)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// docs/RUNBOOK.md: list, show and export receive (peek) from the dead-letter queue; replay and purge also send.
resource opsQueueReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(opsPrincipalId)) {
  name: guid(queue.id, opsPrincipalId, roleIds.serviceBusDataReceiver)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.serviceBusDataReceiver)
    principalId: opsPrincipalId
    principalType: opsPrincipalType
  }
}

resource opsQueueSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(opsPrincipalId)) {
  name: guid(queue.id, opsPrincipalId, roleIds.serviceBusDataSender)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.serviceBusDataSender)
    principalId: opsPrincipalId
    principalType: opsPrincipalType
  }
}

// The CRM sends customer events to the queue and reads the result events from its own subscription, nothing more.
resource crmQueueSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(crmPrincipalId)) {
  name: guid(queue.id, crmPrincipalId, roleIds.serviceBusDataSender)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.serviceBusDataSender)
    principalId: crmPrincipalId
    principalType: crmPrincipalType
  }
}

resource crmSubscriptionReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(crmPrincipalId)) {
  name: guid(crmSubscription.id, crmPrincipalId, roleIds.serviceBusDataReceiver)
  scope: crmSubscription
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.serviceBusDataReceiver)
    principalId: crmPrincipalId
    principalType: crmPrincipalType
  }
}

output namespaceName string = namespace.name
// https://<name>.servicebus.windows.net:443/ -> <name>.servicebus.windows.net (right in every cloud)
output fullyQualifiedNamespace string = replace(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':443/', '')
output queueName string = queue.name
output topicName string = topic.name
