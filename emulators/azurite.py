"""Azurite (Microsoft's Azure Storage emulator, from npm) for the ledger's Table Storage and AzureWebJobsStorage.

Installed by the project's own set-up (``npm ci`` from ``package.json``) and started with telemetry off
(Azurite collects telemetry unless ``--disableTelemetry`` is given).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented): https://learn.microsoft.com/azure/storage/common/storage-use-azurite#http-connection-strings
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def azurite_binary() -> str:
    local = ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if not found:
        raise RuntimeError("Azurite is not installed: run `make setup` (npm ci) in the repository root")
    return found


class Azurite:
    def __init__(self, folder: str | os.PathLike | None, host: str = "127.0.0.1", persist: bool = False,
                 ports: dict[str, int] | None = None):
        self.host = host
        self.folder = Path(folder) if folder else None
        self.persist = persist
        self.ports = ports or {"blob": free_port(host), "queue": free_port(host), "table": free_port(host)}
        self.process: subprocess.Popen | None = None

    @property
    def connection_string(self) -> str:
        p = self.ports
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
                f"BlobEndpoint=http://{self.host}:{p['blob']}/{ACCOUNT};"
                f"QueueEndpoint=http://{self.host}:{p['queue']}/{ACCOUNT};"
                f"TableEndpoint=http://{self.host}:{p['table']}/{ACCOUNT};")

    def start(self, timeout: float = 30.0) -> "Azurite":
        args = [azurite_binary(), "--silent", "--disableTelemetry", "--skipApiVersionCheck",
                "--blobHost", self.host, "--queueHost", self.host, "--tableHost", self.host,
                "--blobPort", str(self.ports["blob"]), "--queuePort", str(self.ports["queue"]),
                "--tablePort", str(self.ports["table"])]
        if self.persist and self.folder:
            location = self.folder / "azurite"
            location.mkdir(parents=True, exist_ok=True)
            args += ["--location", str(location)]
        else:
            args += ["--inMemoryPersistence"]  # Azurite refuses --location together with this
        log = open(self.folder / "azurite.log", "ab") if self.folder else subprocess.DEVNULL
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Azurite exited with code {self.process.returncode}; see azurite.log")
            if all(self._answers(port) for port in self.ports.values()):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Azurite did not answer within {timeout:.0f} s")

    def _answers(self, port: int) -> bool:
        try:
            with socket.create_connection((self.host, port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
