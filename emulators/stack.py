"""The whole local stack in one process: identity, Auth0, Key Vault, API Management (management plane and gateway,
with a sample backend behind it), Service Bus and Azurite.

``LocalStack(folder).start()`` binds every stand-in to a free loopback port, waits until each answers and exposes
``settings``: the app settings (as ``local.settings.json`` holds them) that point the app at the stack. Used by
``python -m emulators up`` (a background process), by ``make run`` and by the tests' fixtures.

The folder holds the CA and server certificate, the token signing key and the stand-ins' management credentials
(generated once, reused), ``stack.json`` (ports and PID) and, with ``persist=True``, each service's state.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .auth0 import Auth0StandIn
from .apim import ApimStandIn
from .apim_gateway import GatewayStandIn, SampleBackend
from .azurite import Azurite
from .identity import IdentityStandIn
from .keyvault import KeyVaultStandIn
from .tls import ensure_tls_files
from .tokens import TokenIssuer

ROOT = Path(__file__).resolve().parent.parent
API_AUDIENCE = "https://api.contoso.local/"
QUEUE = "customer-events"


@dataclass
class StackOptions:
    host: str = "127.0.0.1"
    persist: bool = False
    azurite: bool = True
    servicebus: bool = True
    servicebus_config: str | None = None
    # Point the app at another Service Bus instead of the stand-in: the official emulator or a real namespace.
    servicebus_connection: str | None = None   # a connection string
    servicebus_namespace: str | None = None    # a fully qualified namespace, with DefaultAzureCredential
    auth0_rate: float = 50.0
    auth0_burst: int = 100
    apim_sku: str = "Developer"
    apim_authorization_server_limit: int | None = None
    # ARM's per-principal buckets on the APIM stand-in: kind -> (rate, burst); None: no throttling
    arm_limits: dict | None = None
    keyvault_purge_protection: bool = False
    # The gateway's per-customer rate limit (the customer-rate-limit-* named values; the Bicep parameters'
    # defaults are the same)
    gateway_rate_limit_calls: int = 100
    gateway_rate_limit_period: int = 60


def max_concurrent_calls(host_json: Path = ROOT / "host.json") -> int:
    """host.json's Service Bus maxConcurrentCalls (the Functions default, 16 x cores, when it sets none)."""
    try:
        value = json.loads(host_json.read_text())["extensions"]["serviceBus"]["maxConcurrentCalls"]
        return int(value)
    except (OSError, ValueError, KeyError, TypeError):
        return 16 * (os.cpu_count() or 1)


def _private_json(path: Path, make) -> dict:
    if path.exists():
        return json.loads(path.read_text())
    value = make()
    _write_private_json(path, value)
    return value


def _write_private_json(path: Path, value: dict) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(value, f, indent=1)


class LocalStack:
    def __init__(self, folder: str | os.PathLike, options: StackOptions | None = None):
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.options = options or StackOptions()
        self.identity = self.auth0 = self.keyvault = self.apim = None
        self.gateway: GatewayStandIn | None = None
        self.backend: SampleBackend | None = None
        self.servicebus = None
        self.azurite: Azurite | None = None
        self.tls = None
        self._servicebus_view: _ServiceBusView | None = None

    def _state(self, name: str) -> Path | None:
        return self.folder / "state" / f"{name}.json" if self.options.persist else None

    def start(self) -> "LocalStack":
        o = self.options
        if o.persist:
            (self.folder / "state").mkdir(exist_ok=True)
        self.tls = ensure_tls_files(self.folder / "tls")
        keys = _private_json(self.folder / "stack-secrets.json", lambda: {
            "token_signing_key": secrets.token_hex(32),
            "identity_header": secrets.token_urlsafe(24),
            "auth0_management_client_id": "mgmt" + secrets.token_hex(14),
            "auth0_management_client_secret": secrets.token_urlsafe(48),
        })
        if "auth0_admin_client_id" not in keys:  # a folder from before the tenant command
            keys.update(auth0_admin_client_id="admin" + secrets.token_hex(13),
                        auth0_admin_client_secret=secrets.token_urlsafe(48))
            _write_private_json(self.folder / "stack-secrets.json", keys)
        issuer = TokenIssuer(bytes.fromhex(keys["token_signing_key"]))
        ports = self._previous_ports()
        try:
            self.identity = _on_port(o.host, ports.get("identity"), lambda port: IdentityStandIn(
                issuer, header_secret=keys["identity_header"], host=o.host, port=port))
            # Two machine-to-machine apps on the Management API: the app's own, and the one a person uses for the
            # tenant configuration (python -m opstool tenant), whose token is the "first admin token" of DEPLOYING.md.
            self.auth0 = _on_port(o.host, ports.get("auth0"), lambda port: Auth0StandIn(
                management_clients={keys["auth0_management_client_id"]: keys["auth0_management_client_secret"],
                                    keys["auth0_admin_client_id"]: keys["auth0_admin_client_secret"]},
                rate=o.auth0_rate, burst=o.auth0_burst, apis={API_AUDIENCE: ["read:data", "write:data"]},
                host=o.host, port=port, tls=self.tls, state_file=self._state("auth0")))
            self.keyvault = _on_port(o.host, ports.get("keyvault"), lambda port: KeyVaultStandIn(
                issuer, tls=self.tls, purge_protection=o.keyvault_purge_protection, host=o.host, port=port,
                state_file=self._state("keyvault")))
            self.apim = _on_port(o.host, ports.get("apim"), lambda port: ApimStandIn(
                issuer, tls=self.tls, sku=o.apim_sku, authorization_server_limit=o.apim_authorization_server_limit,
                arm_limits=o.arm_limits, host=o.host, port=port, state_file=self._state("apim")))
            self.backend = _on_port(o.host, ports.get("backend"), lambda port: SampleBackend(host=o.host, port=port))
            self.gateway = _on_port(o.host, ports.get("gateway"), lambda port: GatewayStandIn(
                self.apim, backend_url=self.backend.url, ca_bundle=str(self.tls.ca_cert),
                products=[p["name"] for p in self.apim.dump_state()["products"].values()] or None,
                named_values=self.named_values, tls=self.tls, host=o.host, port=port))
            if o.azurite:
                previous = ports.get("azurite")
                if not (isinstance(previous, dict) and all(_port_free(o.host, p) for p in previous.values())):
                    previous = None
                self.azurite = Azurite(self.folder, host=o.host, persist=o.persist, ports=previous).start()
            if o.servicebus and not (o.servicebus_connection or o.servicebus_namespace):
                from .servicebus import ServiceBusStandIn, load_config
                config_path = o.servicebus_config or str(Path(__file__).parent / "servicebus" / "config.json")
                config = load_config(config_path)
                self.servicebus = _on_port(o.host, ports.get("servicebus"), lambda port: ServiceBusStandIn(
                    config, host=o.host, port=port, state_file=self._state("servicebus")))
                self._servicebus_view = _ServiceBusView(self.servicebus, o.host).start()
        except BaseException:
            self.stop()
            raise
        self._keys = keys
        if o.persist:
            self._save_ports()
        return self

    # With persist, a restarted stack takes the ports it had when they are free: a host left running (and the
    # settings, and the URLs the stand-ins' kept state holds) reach it again without a restart of their own.
    def _previous_ports(self) -> dict:
        if not self.options.persist:
            return {}
        try:
            return json.loads((self.folder / "ports.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _save_ports(self) -> None:
        ports = {name: getattr(self, name).port for name in ("identity", "auth0", "keyvault", "apim", "gateway",
                                                             "backend", "servicebus")
                 if getattr(self, name) is not None}
        if self.azurite:
            ports["azurite"] = dict(self.azurite.ports)
        (self.folder / "ports.json").write_text(json.dumps(ports, indent=1))

    def stop(self) -> None:
        for part in (self._servicebus_view, self.servicebus, self.azurite, self.gateway, self.backend, self.apim,
                     self.keyvault, self.auth0, self.identity):
            if part is not None:
                try:
                    part.stop()
                except Exception:  # stopping the rest matters more than one failure here
                    pass

    # -- what the app and tools need to reach the stack -------------------------------------------------------
    @property
    def auth0_domain(self) -> str:
        return f"{self.options.host}:{self.auth0.port}"

    @property
    def named_values(self) -> dict[str, str]:
        """The API Management named values the policies use, from the same settings as the app's (as the Bicep
        template sets them from its parameters)."""
        return {"auth0-domain": self.auth0_domain, "api-audience": API_AUDIENCE,
                "customer-rate-limit-calls": str(self.options.gateway_rate_limit_calls),
                "customer-rate-limit-period": str(self.options.gateway_rate_limit_period)}

    @property
    def admin_credentials(self) -> tuple[str, str]:
        """The tenant-admin machine-to-machine app's client id and secret (local stack only)."""
        return self._keys["auth0_admin_client_id"], self._keys["auth0_admin_client_secret"]

    @property
    def settings(self) -> dict[str, str]:
        """App settings pointing at the stack: the Values of local.settings.json."""
        k = self._keys
        values = {
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "AzureWebJobsFeatureFlags": "EnableWorkerIndexing",
            # The worker's thread pool as large as the concurrency host.json promises (its default is cores + 4).
            "PYTHON_THREADPOOL_THREAD_COUNT": str(max_concurrent_calls()),
            "CUSTOMER_EVENTS_QUEUE": QUEUE,
            "EVENT_TYPE_PREFIX": "",
            "CLIENT_PROFILES_PATH": "config/client_profiles.toml",
            "API_AUDIENCE": API_AUDIENCE,
            "AUTH0_DOMAIN": self.auth0_domain,
            "AUTH0_CLIENT_ID": k["auth0_management_client_id"],
            "AUTH0_CLIENT_SECRET": k["auth0_management_client_secret"],
            "KEYVAULT_URL": self.keyvault.url + "/",
            "KEYVAULT_PURGE_DELETED": "false",
            "APIM_SUBSCRIPTION_ID": self.apim.subscription_id,
            "APIM_RESOURCE_GROUP": self.apim.resource_group,
            "APIM_SERVICE_NAME": self.apim.service_name,
            "APIM_MANAGEMENT_ENDPOINT": self.apim.url,
            "LEDGER_TABLE": "customerledger",
            "LOCAL_STACK_CA_BUNDLE": str(self.tls.ca_cert),
            # The managed-identity stand-in: DefaultAzureCredential takes its real managed-identity path.
            "IDENTITY_ENDPOINT": self.identity.endpoint,
            "IDENTITY_HEADER": k["identity_header"],
        }
        if self.azurite:
            values["AzureWebJobsStorage"] = self.azurite.connection_string
            values["LEDGER_CONNECTION"] = self.azurite.connection_string
        if self.options.servicebus_connection:
            values["ServiceBusConnection"] = self.options.servicebus_connection
        elif self.options.servicebus_namespace:
            values["ServiceBusConnection__fullyQualifiedNamespace"] = self.options.servicebus_namespace
        elif self.servicebus:
            values["ServiceBusConnection"] = self.servicebus.connection_string
        return values

    def describe(self) -> dict:
        """Ports, URLs and control endpoints: written to stack.json for `down`, tools and tests."""
        parts = {name: getattr(self, name) for name in ("identity", "auth0", "keyvault", "apim", "gateway", "backend")}
        return {
            "pid": os.getpid(),
            "folder": str(self.folder),
            "persist": self.options.persist,
            "ca_cert": str(self.tls.ca_cert),
            "services": {name: {"url": p.url, "control": f"{p.url}/_control/"} for name, p in parts.items() if p},
            "azurite": self.azurite.ports if self.azurite else None,
            "servicebus": {"port": self.servicebus.port, "control": self._servicebus_view.url}
            if self.servicebus else None,
            # Where a customer calls the API: {gateway}/{path}/..., with its subscription key and Auth0 token.
            "api": {"url": f"{self.gateway.url}/{self.gateway.api.path}", "id": self.gateway.api.id}
            if self.gateway else None,
        }

    def control(self, service: str):
        from .control import StandInControl
        return StandInControl(getattr(self, service).url, verify=str(self.tls.ca_cert))


def _port_free(host: str, port) -> bool:
    if not isinstance(port, int) or port <= 0:
        return False
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is no obstacle
        try:
            probe.bind((host, port))
            return True
        except OSError:
            return False


def _on_port(host: str, port, make):
    """``make(port).start()`` on the port asked for when it is free, else on any free port."""
    if _port_free(host, port):
        try:
            return make(port).start()
        except OSError:
            pass  # taken between the probe and the bind
    return make(0).start()


class _ServiceBusView:
    """``GET /servicebus`` on a loopback port: the Service Bus stand-in's snapshot (counts, message metadata, never
    bodies) for processes other than the stack's own, such as ``python -m emulators show``."""

    def __init__(self, servicebus, host: str) -> None:
        self.servicebus = servicebus
        view = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.rstrip("/") != "/servicebus":
                    self.send_error(404)
                    return
                body = json.dumps(view.servicebus.snapshot()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/servicebus"

    def start(self) -> "_ServiceBusView":
        threading.Thread(target=self._server.serve_forever, name="servicebus-view", daemon=True,
                         kwargs={"poll_interval": 0.2}).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def write_local_settings(values: dict[str, str], path: str | os.PathLike) -> None:
    doc = {"IsEncrypted": False, "Values": values,
           "Host": {"LocalHttpPort": 7071}}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def write_env_file(values: dict[str, str], path: str | os.PathLike) -> None:
    import shlex
    lines = [f"export {k}={shlex.quote(v)}" for k, v in values.items()]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# Written by `python -m emulators up`: source it to point a shell at the local stack.\n")
        f.write("\n".join(lines) + "\n")
