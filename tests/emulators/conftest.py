"""Fixtures shared by the stand-in tests: the TLS files a module's stand-ins serve with, and an Auth0 stand-in per
module (each test resets it through the control API)."""
from __future__ import annotations

import pytest

from emulators.auth0 import Auth0StandIn
from emulators.tls import ensure_tls_files


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return ensure_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def auth0_server(tls):
    server = Auth0StandIn(tls=tls).start()
    yield server
    server.stop()
