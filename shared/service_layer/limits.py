"""What the services allow, where the app writes names and metadata: Auth0's client_metadata and description
limits, API Management's display names, and the content type of the secret the app stores in Key Vault."""
from __future__ import annotations

SECRET_CONTENT_TYPE = "application/vnd.auth0.client-secret"
# Auth0: client_metadata holds at most 10 keys with string values of at most 255 characters; descriptions 140.
AUTH0_METADATA_MAX_KEYS = 10
AUTH0_METADATA_MAX_VALUE = 255
AUTH0_DESCRIPTION_MAX = 140
# API Management: authorization server display names 1-50 characters, subscription display names 1-100.
APIM_SERVER_NAME_MAX = 50
APIM_SUBSCRIPTION_NAME_MAX = 100
