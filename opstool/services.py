"""The app's own service, built from the app's settings, for the commands that look at Auth0, Key Vault and APIM
(``drift``, ``plan``): the same adapters, profiles and pacing as the function app, so they see what it sees."""
from __future__ import annotations

import logging
import os
import uuid
from typing import TextIO

from shared.settings import SettingsError

from .connection import load_values
from .errors import UsageError


#: what DefaultAzureCredential reads from the process environment only; a settings file's value (the local stack's
#: managed-identity stand-in) is exported when the environment has none, as the Functions host does
CREDENTIAL_ENVIRONMENT = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET")


def app_settings(path: str | None):
    from shared.bootstrap import load_app_settings

    values = load_values(path)
    for name in CREDENTIAL_ENVIRONMENT:
        if values.get(name) and not os.environ.get(name):
            os.environ[name] = values[name]
    try:
        return load_app_settings(values)
    except SettingsError as exc:
        raise UsageError("the app's settings are not usable (environment or local.settings.json):\n"
                         + "\n".join(f"  - {p}" for p in exc.problems)) from None


def app_service(settings, err: TextIO, *, role: str):
    """A ProvisioningService over the real adapters; its warnings (a fenced write, a repair's step) go to ``err``."""
    from shared.bootstrap import build_service

    logger = logging.getLogger("customer_provisioning")
    for old in [h for h in logger.handlers if getattr(h, "opstool", False)]:
        logger.removeHandler(old)  # a second command in one process (tests) writes to its own stream
    handler = logging.StreamHandler(err)
    handler.opstool = True
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.setLevel(logging.WARNING)
    logger.addHandler(handler)
    logging.getLogger("azure").setLevel(logging.WARNING)
    return build_service(settings, worker_id=f"opstool-{role}-{uuid.uuid4().hex[:8]}")
