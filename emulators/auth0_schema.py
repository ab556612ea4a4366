"""The request schema of the Auth0 Management API as the stand-in enforces it: the body properties each call
accepts, the enumerations, and the validation errors Auth0 answers with (``auth0.py`` serves the calls)."""
from __future__ import annotations

import re
import secrets
import string
import urllib.parse

from .http_standin import HttpError

# Body properties the API schema accepts (additionalProperties: false). Lists taken from the request schemas as
# generated into auth0-python 6.8: RawClientsClient.create/update, RawClientGrantsClient.create/update.
CLIENT_CREATE_PROPS = frozenset("""
    name description logo_uri callbacks oidc_logout oidc_backchannel_logout session_transfer allowed_origins
    web_origins client_aliases allowed_clients allowed_logout_urls grant_types token_endpoint_auth_method
    is_token_endpoint_ip_header_trusted app_type is_first_party oidc_conformant jwt_configuration encryption_key sso
    cross_origin_authentication cross_origin_loc sso_disabled custom_login_page_on custom_login_page
    custom_login_page_preview form_template addons client_metadata mobile initiate_login_uri native_social_login
    fedcm_login refresh_token default_organization organization_usage organization_require_behavior
    organization_discovery_methods client_authentication_methods require_pushed_authorization_requests
    require_proof_of_possession signed_request_object token_vault_privileged_access compliance_level
    skip_non_verifiable_callback_uri_confirmation_prompt token_exchange par_request_expiry token_quota
    resource_server_identifier identity_assertion_authorization_grant anonymous_sessions
    enforce_anon_session_transfer_network_binding third_party_security_mode redirection_policy
    express_configuration b2b_integration_configuration my_organization_configuration
    async_approval_notification_channels oidc_support""".split())
CLIENT_UPDATE_PROPS = (CLIENT_CREATE_PROPS - {"resource_server_identifier"}) | {"client_secret"}
GRANT_CREATE_PROPS = frozenset({"client_id", "audience", "default_for", "organization_usage", "allow_any_organization",
                                "scope", "subject_type", "authorization_details_types", "allow_all_scopes"})
GRANT_UPDATE_PROPS = frozenset({"scope", "organization_usage", "allow_any_organization",
                                "authorization_details_types", "allow_all_scopes"})

# Enumerations from auth0-python 6.8 types/client_app_type_enum.py, client_token_endpoint_auth_method_enum.py and
# the grant_types description in types/client.py.
APP_TYPES = ("native", "spa", "regular_web", "non_interactive", "resource_server", "express_configuration", "rms",
             "box", "cloudbees", "concur", "dropbox", "mscrm", "echosign", "egnyte", "newrelic", "office365",
             "salesforce", "sentry", "sharepoint", "slack", "springcm", "zendesk", "zoom", "sso_integration", "oag")
AUTH_METHODS = ("none", "client_secret_post", "client_secret_basic")
GRANT_TYPES = ("authorization_code", "implicit", "refresh_token", "client_credentials", "password",
               "http://auth0.com/oauth/grant-type/password-realm", "http://auth0.com/oauth/grant-type/mfa-oob",
               "http://auth0.com/oauth/grant-type/mfa-otp", "http://auth0.com/oauth/grant-type/mfa-recovery-code",
               "urn:openid:params:grant-type:ciba", "urn:ietf:params:oauth:grant-type:device_code",
               "urn:auth0:params:oauth:grant-type:token-exchange:federated-connection-access-token")
# Third-party clients (enhanced security controls, "strict" mode) are limited to these grant types. Auth0's
# security-controls page lists authorization_code and refresh_token and announces client_credentials; the project
# brief allows client_credentials too.
# https://auth0.com/docs/get-started/applications/third-party-applications/security-controls
THIRD_PARTY_GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")

STRING_PROPS = {"name", "description", "logo_uri", "cross_origin_loc", "custom_login_page", "custom_login_page_preview",
                "form_template", "initiate_login_uri", "client_secret", "organization_usage",
                "organization_require_behavior", "compliance_level", "resource_server_identifier",
                "third_party_security_mode", "redirection_policy", "enforce_anon_session_transfer_network_binding"}
BOOL_PROPS = {"is_first_party", "oidc_conformant", "sso", "sso_disabled", "cross_origin_authentication",
              "custom_login_page_on", "is_token_endpoint_ip_header_trusted", "require_pushed_authorization_requests",
              "require_proof_of_possession", "skip_non_verifiable_callback_uri_confirmation_prompt"}
STRING_LIST_PROPS = {"callbacks", "allowed_origins", "web_origins", "client_aliases", "allowed_clients",
                     "allowed_logout_urls", "grant_types", "organization_discovery_methods"}
URL_LIST_PROPS = {"callbacks": "callback-url", "allowed_logout_urls": "logout-url",
                  "allowed_origins": "url-or-wildcard", "web_origins": "url-or-wildcard"}
# client_metadata keys: "alphanumeric and may only include the following special characters:
# :,-+=_*?"/\()<>@ [Tab] [Space]" (auth0-python 6.8 types/client_metadata.py)
METADATA_KEY = re.compile(r'^[A-Za-z0-9:,\-+=_*?"/\\()<>@\t ]+$')
URL_SHAPE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#]+\S*$")


def port_in_range(url: str) -> bool:
    """A URL's port is 0-65535 (RFC 3986 leaves its size open; every URL parser a browser uses stops there, and a
    URL with port 99999 is no URL to them)."""
    try:
        urllib.parse.urlsplit(url).port
    except ValueError:
        return False
    return True


def json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "unknown")


def payload_error(message: str, prop: str | None = None) -> HttpError:
    # Auth0's schema validation texts, e.g. "Payload validation error: 'Additional properties not allowed:
    # audience,client_id'." (alexkappa/terraform-provider-auth0#9) and "Payload validation error: 'Object didn't pass
    # validation for format callback-url: ...' on property callbacks[0]." (auth0/auth0-deploy-cli#155)
    where = f" on property {prop}" if prop else ""
    return HttpError(400, "invalid_body", f"Payload validation error: '{message}'{where}.")


def query_error(message: str, prop: str) -> HttpError:
    return HttpError(400, "invalid_query_string", f"Query validation error: '{message}' on property {prop}.")


def expect_type(value, expected: str, prop: str) -> None:
    actual = json_type(value)
    if actual != expected and not (expected == "number" and actual == "integer"):
        raise payload_error(f"Expected type {expected} but found type {actual}", prop)


ALNUM = string.ascii_letters + string.digits


def random_string(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))
